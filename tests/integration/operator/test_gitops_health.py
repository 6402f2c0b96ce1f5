"""What Argo CD and Flux (kstatus) say about the status the operator really writes, in every phase, computed by
their own code: Argo CD's Lua evaluation with the chart's health checks read from argocd-cm by Argo CD's settings
manager, and sigs.k8s.io/cli-utils' kstatus. Suspended (a paused rollout) has no case: there is no rollout
resource to pause yet.

SHOPFLOOR_WRITE_ARGOCD_TESTDATA=1 also writes the captured objects into the chart's Argo CD testdata/ folders."""

from __future__ import annotations

import copy
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from shopfloor_st import source_revision
from tests.gitops.verdicts import KINDS, RESOURCE_CUSTOMIZATIONS, install_argocd_cm, verdicts
from tests.support.waiting import wait_for

from .conftest import Cluster, OperatorFactory
from .manifests import GOOD_SOURCE, NEW_SOURCE, OTHER_SOURCE, bridge, plc

# (Argo CD health, a pattern its message matches, kstatus status) the operator's status must give, per case.
Expected = tuple[str, str, str]
REVISION = r"sha256:[0-9a-f]{64}"
EXPECTED: dict[str, Expected] = {
    "created": ("Progressing", r"Waiting for the operator to report the PLC's status", "InProgress"),
    "starting": ("Progressing", r"Starting", "InProgress"),
    "running": ("Healthy", rf"Running on edge-rt-[12], revision {REVISION}", "Current"),
    "spec-changed": ("Progressing", r"Waiting for the operator to observe generation 2", "InProgress"),
    "updating": ("Progressing", rf"Updating to revision {REVISION}", "InProgress"),
    "rolled-back": ("Degraded", r"Degraded \(RolledBack\): .*division by zero", "Failed"),
    "faulted": ("Degraded", r"Faulted: .*watchdog expired", "Failed"),
    "scheduling": ("Progressing", r"Scheduling: .*label zone=moon missing", "InProgress"),
    "checksum-mismatch": ("Degraded", r"Pending \(ChecksumMismatch\): ", "Failed"),
    "bridge-starting": ("Progressing", r"Starting", "InProgress"),
    "bridge-scheduling": ("Progressing", r"Scheduling: .*label zone=moon missing", "InProgress"),
    "bridge-running": ("Healthy", r"Running on edge-[12]", "Current"),
    "bridge-faulted": ("Degraded", r"Faulted: .*broker refused", "Failed"),
}


@pytest.fixture(scope="module")
def argocd_namespace(kube_api: client.ApiClient) -> Iterator[str]:
    namespace = f"argocd-{uuid.uuid4().hex[:6]}"
    install_argocd_cm(kube_api, namespace)
    yield namespace
    client.CoreV1Api(kube_api).delete_namespace(namespace)


class Captured:
    """Objects as the API server serves them, per case, and the two tools' verdicts on them."""

    def __init__(self, cluster: Cluster, kubeconfig: Path, argocd_namespace: str) -> None:
        self.cluster, self.kubeconfig, self.argocd_namespace = cluster, kubeconfig, argocd_namespace
        self.objects: dict[str, dict[str, Any]] = {}

    def take(self, case: str, kind: str, name: str) -> dict[str, Any]:
        self.objects[case] = copy.deepcopy(self.cluster.get(KINDS[kind], name))
        return self.objects[case]

    def assert_verdicts(self) -> None:
        cases = list(self.objects)
        judged = verdicts([self.objects[c] for c in cases], self.kubeconfig, self.argocd_namespace)
        wrong = {
            case: verdict
            for case, verdict in zip(cases, judged, strict=True)
            if (verdict.argocd, verdict.kstatus) != (EXPECTED[case][0], EXPECTED[case][2])
            or not re.fullmatch(EXPECTED[case][1] + ".*", verdict.argocd_message, re.S)
        }
        assert not wrong, wrong


@pytest.fixture
def captured(cluster: Cluster, kubeconfig: Path, argocd_namespace: str) -> Iterator[Captured]:
    capture = Captured(cluster, kubeconfig, argocd_namespace)
    yield capture
    if os.environ.get("SHOPFLOOR_WRITE_ARGOCD_TESTDATA"):
        for case, obj in capture.objects.items():
            folder = RESOURCE_CUSTOMIZATIONS / "shopfloor.io" / obj["kind"] / "testdata"
            (folder / f"{case}.yaml").write_text(yaml.safe_dump(_as_testdata(obj), sort_keys=False))


def _as_testdata(obj: dict[str, Any]) -> dict[str, Any]:
    metadata = obj["metadata"]
    for volatile in ("managedFields", "uid", "resourceVersion", "annotations"):
        metadata.pop(volatile, None)
    metadata["namespace"] = "line-1"
    return obj


def test_a_plc_through_start_update_and_rollback(
    start_operator: OperatorFactory, cluster: Cluster, captured: Captured
) -> None:
    take, taken = captured.take, captured.objects
    start_operator()
    good, new, other = (source_revision(s) for s in (GOOD_SOURCE, NEW_SOURCE, OTHER_SOURCE))
    created = cluster.create("virtualplcs", plc("tank", updateStrategy={"verifyFor": "1s"}))
    taken["created"] = _as_testdata(copy.deepcopy(created))
    wait_for(lambda: cluster.status("virtualplcs", "tank").get("phase") == "Starting", what="tank Starting")
    take("starting", "VirtualPLC", "tank")
    pod = wait_for(lambda: next((p for p in cluster.live_pods("tank") if p.spec.node_name), None), what="tank's pod")
    assert isinstance(pod, client.V1Pod)
    cluster.play_runtime("tank", pod.metadata.name, good)
    wait_for(lambda: cluster.status("virtualplcs", "tank")["program"].get("lastKnownGoodRevision") == good)
    wait_for(lambda: cluster.status("virtualplcs", "tank").get("phase") == "Running", what="tank Running")
    running = take("running", "VirtualPLC", "tank")
    # A spec applied (by a sync) and not yet seen by the operator: what the API server serves in between.
    taken["spec-changed"] = {**running, "metadata": {**running["metadata"], "generation": 2}}

    cluster.patch_spec("virtualplcs", "tank", {"program": {"source": NEW_SOURCE}})
    wait_for(lambda: cluster.status("virtualplcs", "tank").get("phase") == "Updating", what="tank Updating")
    take("updating", "VirtualPLC", "tank")
    cluster.play_runtime("tank", pod.metadata.name, new)
    wait_for(lambda: cluster.status("virtualplcs", "tank")["program"].get("lastKnownGoodRevision") == new)

    cluster.patch_spec("virtualplcs", "tank", {"program": {"source": OTHER_SOURCE}})
    wait_for(lambda: (cluster.config_map("tank-runtime") or client.V1ConfigMap()).data["revision"] == other)
    cluster.play_runtime("tank", pod.metadata.name, other, state="Faulted", fault="3:10: division by zero")
    wait_for(lambda: cluster.status("virtualplcs", "tank").get("phase") == "Degraded", what="tank Degraded")
    take("rolled-back", "VirtualPLC", "tank")

    captured.assert_verdicts()


def test_plcs_and_bridges_that_cannot_run(
    start_operator: OperatorFactory, cluster: Cluster, captured: Captured
) -> None:
    take = captured.take
    start_operator()
    cluster.create("virtualplcs", plc("nowhere", placement={"nodeSelector": {"zone": "moon"}}))
    cluster.create("virtualplcs", plc("pinned-wrong", program={"source": GOOD_SOURCE, "sha256": "0" * 64}))
    cluster.create("virtualplcs", plc("first-fault", updateStrategy={"verifyFor": "5s"}))
    cluster.create("virtualplcs", plc("mixer"))
    cluster.create("protocolbridges", bridge("line-bridge", "mixer"))
    cluster.create("protocolbridges", bridge("broken-bridge", "mixer"))
    cluster.create("protocolbridges", bridge("nowhere-bridge", "mixer", placement={"nodeSelector": {"zone": "moon"}}))

    def pod_of(name: str) -> client.V1Pod:
        found = wait_for(lambda: next((p for p in cluster.live_pods(name) if p.spec.node_name), None), what=name)
        assert isinstance(found, client.V1Pod)
        return found

    fault = "2:1: watchdog expired"
    cluster.play_runtime(
        "first-fault", pod_of("first-fault").metadata.name, source_revision(GOOD_SOURCE), "Faulted", fault
    )
    line_bridge_pod = pod_of("line-bridge")
    wait_for(lambda: cluster.status("protocolbridges", "line-bridge").get("phase") == "Starting", what="Starting")
    take("bridge-starting", "ProtocolBridge", "line-bridge")
    cluster.play_runtime("line-bridge", line_bridge_pod.metadata.name, "")
    cluster.play_runtime(
        "broken-bridge", pod_of("broken-bridge").metadata.name, "", "Faulted", "broker refused: not authorised"
    )
    for kind, name, condition in [
        ("virtualplcs", "nowhere", lambda s: _reason(s, "Scheduled") == "Unschedulable"),
        ("virtualplcs", "pinned-wrong", lambda s: _reason(s, "ProgramValid") == "ChecksumMismatch"),
        ("virtualplcs", "first-fault", lambda s: s.get("phase") == "Faulted"),
        ("protocolbridges", "line-bridge", lambda s: s.get("phase") == "Running"),
        ("protocolbridges", "broken-bridge", lambda s: s.get("phase") == "Faulted"),
        ("protocolbridges", "nowhere-bridge", lambda s: _reason(s, "Scheduled") == "Unschedulable"),
    ]:
        wait_for(lambda: condition(cluster.status(kind, name)), what=f"{name}'s status")  # noqa: B023
    take("scheduling", "VirtualPLC", "nowhere")
    take("checksum-mismatch", "VirtualPLC", "pinned-wrong")
    take("faulted", "VirtualPLC", "first-fault")
    take("bridge-running", "ProtocolBridge", "line-bridge")
    take("bridge-faulted", "ProtocolBridge", "broken-bridge")
    take("bridge-scheduling", "ProtocolBridge", "nowhere-bridge")

    captured.assert_verdicts()


def _reason(status: dict[str, Any], kind: str) -> str:
    return next((str(c.get("reason")) for c in status.get("conditions") or [] if c["type"] == kind), "")
