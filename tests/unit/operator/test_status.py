"""Conditions (kstatus), runtime reports from Leases, and unschedulable explanations."""

from datetime import UTC, datetime, timedelta

from shopfloor_operator import conditions
from shopfloor_operator.conditions import Observation, merge
from shopfloor_operator.health import runtime_report
from shopfloor_operator.placement import explain_unschedulable
from shopfloor_operator.settings import OperatorSettings

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_transition_time_changes_only_with_status() -> None:
    first = merge([], [Observation("Ready", False, "Starting")], 1, NOW)
    later = merge(first, [Observation("Ready", False, "StillStarting", "msg")], 2, NOW + timedelta(seconds=5))
    assert later[0]["lastTransitionTime"] == first[0]["lastTransitionTime"]
    assert later[0]["reason"] == "StillStarting" and later[0]["observedGeneration"] == 2
    flipped = merge(later, [Observation("Ready", True, "Running")], 2, NOW + timedelta(seconds=9))
    assert flipped[0]["lastTransitionTime"] == "2026-01-01T00:00:09Z"
    assert conditions.status_of(flipped, "Stalled") == "Unknown"


def test_conditions_listed_in_kstatus_order() -> None:
    merged = merge([], [Observation("Scheduled", True, "x"), Observation("Ready", True, "y")], 1, NOW)
    assert [c["type"] for c in merged] == ["Ready", "Scheduled"]


def lease(holder: str, state: str, renewed: datetime, revision: str = "sha256:1") -> dict:
    return {
        "metadata": {
            "annotations": {
                "shopfloor.io/active-revision": revision,
                "shopfloor.io/state": state,
                "shopfloor.io/fault": "divide by zero at 3:7",
            }
        },
        "spec": {"holderIdentity": holder, "renewTime": renewed.strftime("%Y-%m-%dT%H:%M:%S.%fZ")},
    }


def test_runtime_report() -> None:
    assert runtime_report(None, "p", NOW).reason == "NoReport"
    assert runtime_report(lease("other", "Running", NOW), "p", NOW).reason == "NoReport"
    healthy = runtime_report(lease("p", "Running", NOW - timedelta(seconds=3)), "p", NOW)
    assert healthy.healthy and healthy.active_revision == "sha256:1"
    assert runtime_report(lease("p", "Running", NOW - timedelta(seconds=40)), "p", NOW).reason == "ReportStale"
    faulted = runtime_report(lease("p", "Faulted", NOW), "p", NOW)
    assert not faulted.healthy and "divide by zero at 3:7" in faulted.message


def node(name: str, labels: dict, taints: list, ready: bool = True) -> dict:
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {"taints": taints},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def test_explain_unschedulable_names_nodes_and_causes() -> None:
    settings = OperatorSettings()
    rt_label = dict(settings.realtime_node_selector)
    taint = {"key": "shopfloor.io/realtime", "value": "true", "effect": "NoSchedule"}
    nodes = [
        node("edge-1", {}, []),
        node("edge-2", {}, []),
        node("edge-rt-1", rt_label, [taint], ready=False),
        node("edge-rt-2", rt_label, [taint]),
    ]
    pod_spec = {"nodeSelector": rt_label, "tolerations": []}
    text = explain_unschedulable(pod_spec, nodes)
    assert "edge-1, edge-2: label feature.node.kubernetes.io/kernel-config.PREEMPT_RT=true missing" in text
    assert "edge-rt-1, edge-rt-2: taint shopfloor.io/realtime=true:NoSchedule not tolerated" in text
    tolerated = {**pod_spec, "tolerations": [{"key": "shopfloor.io/realtime", "operator": "Exists"}]}
    assert explain_unschedulable(tolerated, nodes) == ""
    pinned = {
        **tolerated,
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["edge-rt-1"]}]}
                    ]
                }
            }
        },
    }
    assert "edge-rt-1: NotReady" in explain_unschedulable(pinned, nodes)
