"""Every pod the operator builds, admitted by the real API server's PodSecurity admission at `restricted`.

The pods come from the builders the reconcilers use (plc_pod_workload / bridge_workload, then pod()), each created
with a server-side dry run: the whole admission chain runs (ServiceAccount, RuntimeClass, PodSecurity) and nothing
is stored. One namespace enforces `restricted`; another only warns at `restricted`, and a pod admitted there without
a `Warning` response header is one that `warn` (and `audit`, the same policy evaluated for the audit log, which this
control plane does not write) has nothing to say about. The negative controls add one violation to an otherwise
admitted pod and see it rejected with 403 where `restricted` is enforced, and warned about where it only warns:
the namespaces really check, and so would catch a builder that drifted.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes import client

from shopfloor_api import VirtualPLC, parse_manifest
from shopfloor_api.protocolbridge import ProtocolBridge
from shopfloor_operator.bridge import CONFIG_HASH_ANNOTATION
from shopfloor_operator.builders import config
from shopfloor_operator.builders.pod import pod, spec_hash
from shopfloor_operator.builders.workload import Workload
from shopfloor_operator.builders.workloads import bridge_workload
from shopfloor_operator.plc import plc_pod_workload
from shopfloor_operator.settings import OperatorSettings
from tests.support.waiting import wait_for

from .manifests import bridge, plc

PSA = "pod-security.kubernetes.io"
# Generous for dry runs that take milliseconds: the first test run also pays for the session's control plane start.
TIMEOUT = 180


def psa_labels(*modes: str) -> dict[str, str]:
    """The Pod Security labels of a namespace: each mode at `restricted`, the policy of this API server's version."""
    return {
        label: value
        for mode in modes
        for label, value in ((f"{PSA}/{mode}", "restricted"), (f"{PSA}/{mode}-version", "latest"))
    }


ENFORCING = psa_labels("enforce", "warn", "audit")
WARN_ONLY = psa_labels("warn", "audit")  # enforce: the API server's default, privileged
SETTINGS = OperatorSettings()
HOT = {"mode": "HotStandby", "takeoverAfter": "500ms", "syncInterval": "20ms"}


def plc_workload_in(namespace: str, name: str, **spec: Any) -> Workload:
    document = plc(name, **spec)
    document["metadata"].update(namespace=namespace, uid=f"uid-{name}")
    manifest = parse_manifest(document)
    assert isinstance(manifest, VirtualPLC)
    return plc_pod_workload(manifest, SETTINGS)


def bridge_pod(namespace: str) -> dict[str, Any]:
    """The bridge with everything that adds to its pod: the store-and-forward state volume and three Secrets."""
    document = bridge(
        "line-bridge",
        "mixer",
        sinks={
            "mqtt": {
                "url": "mqtts://broker:8883",
                "credentialsSecretRef": {"name": "broker-creds"},
                "sparkplug": {"groupId": "plant", "edgeNodeId": "line-1"},
            },
            "opcua": {"enabled": True, "certificateSecretRef": {"name": "bridge-server-cert"}},
        },
    )
    document["spec"]["sources"].append(
        {
            "name": "oven",
            "opcua": {
                "endpoint": "opc.tcp://oven:4840",
                "certificateSecretRef": {"name": "bridge-client-cert"},
                "nodes": [{"name": "Temp", "nodeId": "ns=2;s=Temp"}],
            },
        }
    )
    document["metadata"].update(namespace=namespace, uid="uid-line-bridge")
    manifest = parse_manifest(document)
    assert isinstance(manifest, ProtocolBridge)
    workload = bridge_workload(manifest, SETTINGS)
    # As BridgeReconciler does: the configuration's hash is an annotation of the pod.
    config_hash = spec_hash(config.bridge_config_map(workload, manifest)["data"])
    built = pod(workload.with_pod_annotations({CONFIG_HASH_ANNOTATION: config_hash}), SETTINGS, 0)
    assert any(volume["name"] == "state" for volume in built["spec"]["volumes"])
    assert len([volume for volume in built["spec"]["volumes"] if "secret" in volume]) == 3
    return built


def operator_pods(namespace: str, runtime_class: str) -> dict[str, dict[str, Any]]:
    """Every kind of pod the operator creates (builders.pod.pod() is its only Pod builder), as PlcReconciler and
    BridgeReconciler build them."""
    plain = plc_workload_in(namespace, "mixer")
    realtime = plc_workload_in(
        namespace,
        "tank",
        realtimePriority=80,
        resources={"cpus": 2},
        placement={"realtime": "Required", "nodeName": "edge-rt-1", "runtimeClassName": runtime_class},
    )
    assert realtime.realtime_priority == 80
    twin = plc_workload_in(namespace, "twin", redundancy=HOT)
    opcua = plc_workload_in(
        namespace,
        "press",
        io={"opcua": {"enabled": True, "certificateSecretRef": {"name": "press-opcua-cert"}}},
    )
    return {
        "plc-plain": pod(plain, SETTINGS, 0),
        "plc-realtime": pod(realtime, SETTINGS, 0),
        "plc-hot-standby-first": pod(twin, SETTINGS, 0),
        "plc-hot-standby-second": pod(twin, SETTINGS, 1),
        # A takeover's replacement (podstep._hand_over) and a lost pod's: another node preferred.
        "plc-hot-standby-replacement": pod(twin, SETTINGS, 2, avoid_node="edge-rt-1"),
        "plc-replacement": pod(plain, SETTINGS, 1, avoid_node="edge-rt-1"),
        "plc-opcua": pod(opcua, SETTINGS, 0),
        "bridge": bridge_pod(namespace),
    }


POD_KINDS = list(operator_pods("x", "x"))


@dataclass
class Admitted:
    pod: client.V1Pod
    warnings: list[str]


def dry_run(core: client.CoreV1Api, manifest: dict[str, Any]) -> Admitted:
    """Create the pod with dryRun=All: admitted or an ApiException, and the response's Warning headers."""
    created, status, headers = core.create_namespaced_pod_with_http_info(
        manifest["metadata"]["namespace"], manifest, dry_run="All"
    )
    assert status == 201
    return Admitted(created, [warning_text(value) for value in headers.getlist("Warning")])


def warning_text(header: str) -> str:
    """The text of one `Warning: 299 - "<text>"` response header (RFC 7234: a quoted string)."""
    quoted = re.fullmatch(r'\d{3} \S+ "((?:[^"\\]|\\.)*)"', header)
    assert quoted, f"not a Warning header: {header!r}"
    return re.sub(r"\\(.)", r"\1", quoted.group(1))


def forbidden_message(error: client.ApiException) -> str:
    return str(json.loads(error.body).get("message", ""))


def in_namespace(manifest: dict[str, Any], namespace: str) -> dict[str, Any]:
    moved = json.loads(json.dumps(manifest))
    moved["metadata"]["namespace"] = namespace
    return moved


def add_capability(manifest: dict[str, Any]) -> None:
    manifest["spec"]["containers"][0]["securityContext"]["capabilities"]["add"] = ["SYS_NICE"]


def allow_privilege_escalation(manifest: dict[str, Any]) -> None:
    manifest["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True


VIOLATIONS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    # What the real-time pod used to carry: SCHED_FIFO now comes from the node's RuntimeClass.
    "capabilities-add-SYS_NICE": (
        add_capability,
        'unrestricted capabilities (container "vplc" must not include "SYS_NICE" in securityContext.capabilities.add)',
    ),
    "allowPrivilegeEscalation": (
        allow_privilege_escalation,
        'allowPrivilegeEscalation != false (container "vplc" must set securityContext.allowPrivilegeEscalation=false)',
    ),
}


@dataclass
class Restricted:
    core: client.CoreV1Api
    enforcing: str
    warn_only: str
    runtime_class: str

    def pods(self, namespace: str) -> dict[str, dict[str, Any]]:
        return operator_pods(namespace, self.runtime_class)


def admission_sees(site: Restricted) -> bool:
    """Admission reads RuntimeClasses from an informer cache: true once the real-time pod's is found, and a pod with
    one violation is rejected where `restricted` is enforced and warned about where it is not (so no test below can
    pass against a namespace whose labels admission has not seen)."""
    realtime = site.pods(site.enforcing)["plc-realtime"]
    try:
        dry_run(site.core, realtime)
    except client.ApiException as error:
        if error.status == 403 and "not found" in forbidden_message(error):
            return False
    violating = json.loads(json.dumps(realtime))
    add_capability(violating)
    try:
        dry_run(site.core, violating)
        return False
    except client.ApiException as error:
        if "violates PodSecurity" not in forbidden_message(error):
            return False
    warned = dry_run(site.core, in_namespace(violating, site.warn_only))
    return any("would violate PodSecurity" in warning for warning in warned.warnings)


@pytest.fixture(scope="module")
def restricted(kube_api: client.ApiClient) -> Iterator[Restricted]:
    core = client.CoreV1Api(kube_api)
    node = client.NodeV1Api(kube_api)
    suffix = uuid.uuid4().hex[:8]
    site = Restricted(core, f"psa-restricted-{suffix}", f"psa-warn-{suffix}", f"shopfloor-realtime-{suffix}")
    # The real-time PLC names its RuntimeClass and RuntimeClass admission rejects a pod naming one that does not
    # exist; cluster-wide, so a name of this module's own.
    node.create_runtime_class({"metadata": {"name": site.runtime_class}, "handler": "shopfloor-realtime"})
    try:
        for namespace, labels in ((site.enforcing, ENFORCING), (site.warn_only, WARN_ONLY)):
            core.create_namespace({"metadata": {"name": namespace, "labels": {"shopfloor.io/test": "true", **labels}}})
            # ServiceAccount admission rejects a pod whose ServiceAccount does not exist, so the ones the operator
            # creates beside its pods (builders/rbac.py) are created first: by name only, since their owner
            # references name a PLC that does not exist and the garbage collector would delete them. The Secrets
            # the pods mount are not needed: a volume's Secret is looked up by the kubelet, not by admission.
            for account in sorted(
                {manifest["spec"]["serviceAccountName"] for manifest in site.pods(namespace).values()}
            ):
                core.create_namespaced_service_account(namespace, {"metadata": {"name": account}})
        wait_for(lambda: admission_sees(site), what="admission seeing the RuntimeClass and both namespaces' labels")
        yield site
    finally:
        for namespace in (site.enforcing, site.warn_only):
            try:
                core.delete_namespace(namespace)
            except client.ApiException as error:
                if error.status != 404:
                    raise
        node.delete_runtime_class(site.runtime_class)


@pytest.mark.timeout(TIMEOUT)
@pytest.mark.parametrize("kind", POD_KINDS)
def test_operator_pod_is_admitted_under_restricted(restricted: Restricted, kind: str) -> None:
    manifest = restricted.pods(restricted.enforcing)[kind]
    try:
        admitted = dry_run(restricted.core, manifest)
    except client.ApiException as error:
        pytest.fail(f"{kind} rejected where restricted is enforced: {error.status} {forbidden_message(error)}")
    assert admitted.pod.metadata.name == manifest["metadata"]["name"]
    assert admitted.warnings == [], f"{kind}: warnings where restricted is enforced"
    # Admission saw the pod as it would run: with its ServiceAccount's token mounted (a projected volume).
    assert any(volume.projected for volume in admitted.pod.spec.volumes)

    warned = dry_run(restricted.core, in_namespace(manifest, restricted.warn_only))
    assert warned.warnings == [], f"{kind}: PodSecurity warn=restricted has something to say"


@pytest.mark.timeout(TIMEOUT)
def test_dry_runs_store_nothing(restricted: Restricted) -> None:
    for namespace in (restricted.enforcing, restricted.warn_only):
        for manifest in restricted.pods(namespace).values():
            dry_run(restricted.core, manifest)
        assert restricted.core.list_namespaced_pod(namespace).items == []


@pytest.mark.timeout(TIMEOUT)
@pytest.mark.parametrize("violation", list(VIOLATIONS))
def test_one_violation_is_rejected_where_enforced_and_warned_about_where_warned(
    restricted: Restricted, violation: str
) -> None:
    violate, expected = VIOLATIONS[violation]
    manifest = restricted.pods(restricted.enforcing)["plc-realtime"]
    dry_run(restricted.core, manifest)  # as built: admitted
    violate(manifest)
    with pytest.raises(client.ApiException) as raised:
        dry_run(restricted.core, manifest)
    message = forbidden_message(raised.value)
    assert raised.value.status == 403, message
    assert 'violates PodSecurity "restricted:latest"' in message and expected in message, message

    warned = dry_run(restricted.core, in_namespace(manifest, restricted.warn_only))
    assert len(warned.warnings) == 1 and 'would violate PodSecurity "restricted:latest"' in warned.warnings[0]
    assert expected in warned.warnings[0], warned.warnings
