"""Hot standby in the builders: the runtime's environment, the sync port, required anti-affinity between the PLC's
own pods, and a NetworkPolicy that opens the sync port to those pods only. A single runtime's pod is unchanged."""

from __future__ import annotations

from typing import Any

from shopfloor_api import runtime_contract as contract
from shopfloor_operator.builders.network import network_policy
from shopfloor_operator.builders.pod import SPEC_HASH_ANNOTATION, pod
from shopfloor_operator.plc import plc_pod_workload
from shopfloor_operator.settings import OperatorSettings

from .conftest import plc_manifest

HOT = {"mode": "HotStandby", "takeoverAfter": "400ms", "syncInterval": "25ms"}


def container(manifest: dict[str, Any]) -> dict[str, Any]:
    return manifest["spec"]["containers"][0]  # type: ignore[no-any-return]


def env(manifest: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value") for e in container(manifest)["env"]}


def test_hot_standby_pods_get_the_runtimes_environment_and_the_sync_port(settings: OperatorSettings) -> None:
    built = pod(plc_pod_workload(plc_manifest(redundancy=HOT), settings), settings, 0)
    variables = env(built)
    assert variables[contract.ENV_REDUNDANCY] == contract.REDUNDANCY_HOT_STANDBY
    assert variables[contract.ENV_TAKEOVER_AFTER] == "0.4" and variables[contract.ENV_SYNC_INTERVAL] == "0.025"
    timing = contract.StandbyTiming.from_env_values(
        variables[contract.ENV_TAKEOVER_AFTER], variables[contract.ENV_SYNC_INTERVAL]
    )
    assert timing == contract.StandbyTiming(0.4, 0.025)
    ports = {p["name"]: p["containerPort"] for p in container(built)["ports"]}
    assert ports[contract.SYNC_PORT_NAME] == contract.SYNC_PORT == 8093
    assert container(built)["readinessProbe"]["httpGet"]["path"] == "/readyz", "the runtime answers 503 as standby"


def test_the_two_pods_must_not_share_a_node(settings: OperatorSettings) -> None:
    workload = plc_pod_workload(plc_manifest(redundancy=HOT), settings)
    built = pod(workload, settings, 0)
    required = built["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert required == [
        {"labelSelector": {"matchLabels": workload.selector_labels}, "topologyKey": "kubernetes.io/hostname"}
    ]
    labels = built["metadata"]["labels"]
    assert all(labels[key] == value for key, value in workload.selector_labels.items()), "selects its own pods"


def test_a_hand_over_still_prefers_another_node_than_the_suspect_one(settings: OperatorSettings) -> None:
    workload = plc_pod_workload(plc_manifest(redundancy=HOT, placement={"nodeName": "edge-rt-2"}), settings)
    plain, avoiding = pod(workload, settings, 3), pod(workload, settings, 3, avoid_node="edge-rt-1")
    affinity = avoiding["spec"]["affinity"]
    assert affinity["podAntiAffinity"] == plain["spec"]["affinity"]["podAntiAffinity"]
    assert affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]  # the pin stays
    preferred = affinity["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert preferred[-1]["preference"]["matchFields"][0] == {
        "key": "metadata.name",
        "operator": "NotIn",
        "values": ["edge-rt-1"],
    }
    assert (
        avoiding["metadata"]["annotations"][SPEC_HASH_ANNOTATION]
        == plain["metadata"]["annotations"][SPEC_HASH_ANNOTATION]
    ), "the preference does not make the pod drift"


def test_a_single_runtime_is_built_as_before(settings: OperatorSettings) -> None:
    built = pod(plc_pod_workload(plc_manifest(), settings), settings, 0)
    assert "affinity" not in built["spec"]
    assert contract.ENV_REDUNDANCY not in env(built) and contract.ENV_TAKEOVER_AFTER not in env(built)
    assert contract.SYNC_PORT_NAME not in {p["name"] for p in container(built)["ports"]}
    assert plc_pod_workload(plc_manifest(), settings).pod_count == 1
    assert plc_pod_workload(plc_manifest(redundancy=HOT), settings).pod_count == 2


def test_timing_changes_replace_the_pods(settings: OperatorSettings) -> None:
    first = pod(plc_pod_workload(plc_manifest(redundancy=HOT), settings), settings, 0)
    slower = pod(plc_pod_workload(plc_manifest(redundancy={**HOT, "takeoverAfter": "1s"}), settings), settings, 0)
    assert (
        first["metadata"]["annotations"][SPEC_HASH_ANNOTATION]
        != slower["metadata"]["annotations"][SPEC_HASH_ANNOTATION]
    )


def test_the_sync_port_is_open_to_the_plcs_own_pods_only(settings: OperatorSettings) -> None:
    workload = plc_pod_workload(plc_manifest(redundancy=HOT), settings)
    ingress = network_policy(workload, settings)["spec"]["ingress"]
    sync = [rule for rule in ingress if {"port": "sync", "protocol": "TCP"} in rule["ports"]]
    assert sync == [
        {
            "from": [{"podSelector": {"matchLabels": workload.selector_labels}}],
            "ports": [{"port": contract.SYNC_PORT_NAME, "protocol": "TCP"}],
        }
    ]
    others = [rule for rule in ingress if rule not in sync]
    assert all(port["port"] != "sync" for rule in others for port in rule["ports"])
    single = network_policy(plc_pod_workload(plc_manifest(), settings), settings)["spec"]["ingress"]
    assert all(port["port"] != "sync" for rule in single for port in rule["ports"])
