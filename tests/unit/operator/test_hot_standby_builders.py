"""Hot standby in the builders: the runtime's environment, the sync port, required anti-affinity between the PLC's
own pods, a NetworkPolicy that opens the sync port to those pods only, and the pair's key Secret and its mount. A
single runtime's pod is unchanged."""

from __future__ import annotations

import base64
from typing import Any

from shopfloor_api import runtime_contract as contract
from shopfloor_operator.builders import config
from shopfloor_operator.builders.network import network_policy
from shopfloor_operator.builders.pod import SPEC_HASH_ANNOTATION, pod
from shopfloor_operator.children import ChildApplier
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


def test_the_pairs_key_secret_is_random_immutable_and_owned_by_the_plc(settings: OperatorSettings) -> None:
    workload = plc_pod_workload(plc_manifest(redundancy=HOT), settings)
    secret = config.sync_secret(workload)
    assert secret["metadata"]["name"] == "mixer-1-sync" == workload.sync_secret_name
    assert secret["metadata"]["ownerReferences"] == [workload.owner_reference()], "deleted with the PLC"
    assert secret["immutable"] is True and secret["type"] == "Opaque"
    key = base64.b64decode(secret["data"][contract.SYNC_KEY])
    assert len(key) == contract.SYNC_KEY_BYTES == 32
    assert key != base64.b64decode(config.sync_secret(workload)["data"][contract.SYNC_KEY]), "random for each"


def test_hot_standby_pods_mount_the_key_read_only_and_name_its_file(settings: OperatorSettings) -> None:
    workload = plc_pod_workload(plc_manifest(redundancy=HOT), settings)
    built = pod(workload, settings, 0)
    assert env(built)[contract.ENV_SYNC_KEY_FILE] == "/etc/shopfloor/secrets/mixer-1-sync/sync.key"
    volumes = {volume["name"]: volume for volume in built["spec"]["volumes"]}
    assert volumes["sync-key"]["secret"] == {
        "secretName": "mixer-1-sync",
        "items": [{"key": contract.SYNC_KEY, "path": contract.SYNC_KEY}],
    }, "not optional: the pod does not start without its key"
    mounts = {mount["name"]: mount for mount in container(built)["volumeMounts"]}
    assert mounts["sync-key"] == {
        "name": "sync-key",
        "mountPath": "/etc/shopfloor/secrets/mixer-1-sync",
        "readOnly": True,
    }
    single = pod(plc_pod_workload(plc_manifest(), settings), settings, 0)
    assert contract.ENV_SYNC_KEY_FILE not in env(single)
    assert "sync-key" not in {volume["name"] for volume in single["spec"]["volumes"]}
    assert "sync-key" not in {mount["name"] for mount in container(single)["volumeMounts"]}


class RecordingKube:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def create(self, manifest: dict[str, Any]) -> bool:
        self.calls.append(("create", manifest["metadata"]["name"]))
        return True

    def delete(self, path: str) -> None:
        self.calls.append(("delete", path))


def test_the_key_is_created_once_and_deleted_once_when_the_pair_goes(settings: OperatorSettings) -> None:
    kube = RecordingKube()
    applier = ChildApplier(kube)  # type: ignore[arg-type]
    workload = plc_pod_workload(plc_manifest(redundancy=HOT), settings)
    for _ in range(3):  # every pass: one create (a 409 on an existing Secret keeps its key), then remembered
        applier.start(("exists", config.sync_secret(workload))).wait()
    for _ in range(3):
        applier.start(("absent", config.sync_secret(workload))).wait()
    applier.start(("exists", config.sync_secret(workload))).wait()
    assert kube.calls == [
        ("create", "mixer-1-sync"),
        ("delete", "/api/v1/namespaces/line-1/secrets/mixer-1-sync"),
        ("create", "mixer-1-sync"),
    ]
