"""The workload's Pod: placement, Guaranteed QoS, restricted security context, HTTP probes, and a hash of itself.

The operator manages its pods directly (no Deployment), so it decides exactly when a replacement starts; the Lease
guarantees that a PLC never drives twice. With hot standby there are two pods, kept on different nodes.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from shopfloor_api import runtime_contract as contract
from shopfloor_api.common import RealtimeMode
from shopfloor_operator.builders.workload import Workload
from shopfloor_operator.settings import OperatorSettings

SPEC_HASH_ANNOTATION = "shopfloor.io/pod-spec-hash"
INCARNATION_ANNOTATION = "shopfloor.io/incarnation"
SECRETS_DIR = "/etc/shopfloor/secrets"
STATE_DIR = "/var/lib/shopfloor/state"
SYNC_KEY_VOLUME = "sync-key"  # a fixed name: `secret-<plc>-sync` could pass the 63 characters of a volume name
RUN_AS = 65532  # the distroless "nonroot" user
HOSTNAME_TOPOLOGY_KEY = "kubernetes.io/hostname"


def cpu_quantity(cpus: float) -> str:
    return str(int(cpus)) if float(cpus).is_integer() else f"{round(cpus * 1000)}m"


def _affinity(workload: Workload, settings: OperatorSettings) -> dict[str, Any] | None:
    node_affinity: dict[str, Any] = {}
    if workload.placement.node_name:
        # Pinned through the scheduler (like DaemonSets do), not spec.nodeName: taints and resources still count.
        node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {
            "nodeSelectorTerms": [
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [workload.placement.node_name]}]}
            ]
        }
    if workload.placement.realtime is RealtimeMode.PREFERRED:
        expressions = [
            {"key": key, "operator": "In", "values": [value]} for key, value in settings.realtime_node_selector.items()
        ]
        node_affinity["preferredDuringSchedulingIgnoredDuringExecution"] = [
            {"weight": 100, "preference": {"matchExpressions": expressions}}
        ]
    affinity: dict[str, Any] = {"nodeAffinity": node_affinity} if node_affinity else {}
    if workload.hot_standby is not None:
        # Required, not preferred: a standby on its primary's node dies with it and protects nothing.
        affinity["podAntiAffinity"] = {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": dict(workload.selector_labels)}, "topologyKey": HOSTNAME_TOPOLOGY_KEY}
            ]
        }
    return affinity or None


def _tolerations(workload: Workload, settings: OperatorSettings) -> list[dict[str, Any]]:
    tolerations: list[dict[str, Any]] = []
    if workload.placement.realtime is not RealtimeMode.NONE:
        tolerations.append(
            {
                "key": settings.realtime_toleration_key,
                "operator": "Exists",
                "effect": settings.realtime_toleration_effect,
            }
        )
    for toleration in workload.placement.tolerations:
        tolerations.append(toleration.model_dump(mode="json", exclude_none=True, exclude_defaults=False))
    return tolerations


def _node_selector(workload: Workload, settings: OperatorSettings) -> dict[str, str]:
    selector = dict(workload.placement.node_selector)
    if workload.placement.realtime is RealtimeMode.REQUIRED:
        selector.update(settings.realtime_node_selector)
    return selector


def sync_key_dir(workload: Workload) -> str:
    return f"{SECRETS_DIR}/{workload.sync_secret_name}"


def sync_key_file(workload: Workload) -> str:
    return f"{sync_key_dir(workload)}/{contract.SYNC_KEY}"


def _env(workload: Workload, settings: OperatorSettings) -> list[dict[str, Any]]:
    def field_ref(path: str) -> dict[str, Any]:
        return {"fieldRef": {"fieldPath": path}}

    witness = [{"name": contract.ENV_WITNESS_URL, "value": settings.witness_url}] if settings.witness_url else []
    # Only with hot standby: a single runtime's environment (and so its pod's hash) stays as it was.
    standby = workload.hot_standby
    redundancy = (
        [
            {"name": contract.ENV_REDUNDANCY, "value": contract.REDUNDANCY_HOT_STANDBY},
            {"name": contract.ENV_TAKEOVER_AFTER, "value": f"{standby.takeover_after_s:g}"},
            {"name": contract.ENV_SYNC_INTERVAL, "value": f"{standby.sync_interval_s:g}"},
            {"name": contract.ENV_SYNC_KEY_FILE, "value": sync_key_file(workload)},
        ]
        if standby is not None
        else []
    )
    return [
        {"name": contract.ENV_KIND, "value": workload.kind},
        {"name": contract.ENV_NAME, "value": workload.name},
        {"name": contract.ENV_NAMESPACE, "valueFrom": field_ref("metadata.namespace")},
        {"name": contract.ENV_POD_NAME, "valueFrom": field_ref("metadata.name")},
        {"name": contract.ENV_POD_IP, "valueFrom": field_ref("status.podIP")},
        {"name": contract.ENV_CONFIGMAP, "value": workload.config_map_name},
        {"name": contract.ENV_LEASE, "value": workload.lease_name},
        {"name": contract.ENV_LEASE_DURATION, "value": f"{workload.lease_duration_s:g}"},
        *witness,
        {"name": contract.ENV_RETAIN_CONFIGMAP, "value": workload.retain_config_map_name},
        {"name": contract.ENV_HTTP_PORT, "value": str(settings.health_port)},
        {"name": contract.ENV_SECRETS_DIR, "value": SECRETS_DIR},
        *redundancy,
        *({"name": name, "value": value} for name, value in sorted(workload.extra_env.items())),
    ]


def _container(workload: Workload, settings: OperatorSettings) -> dict[str, Any]:
    # No capabilities, real-time or not: Kubernetes does not make added capabilities ambient, so a non-root process
    # loses them at exec. The node grants SCHED_FIFO through a real-time RuntimeClass (docs/realtime-nodes.md), and
    # every pod stays admissible under the `restricted` Pod Security level.
    capabilities: dict[str, Any] = {"drop": ["ALL"]}
    resources = {"cpu": cpu_quantity(workload.cpus), "memory": str(workload.memory)}
    ports = [
        {"name": port.name, "containerPort": port.container_port, "protocol": "TCP"} for port in workload.service_ports
    ]
    if workload.hot_standby is not None:
        # Not on the Service: the standby reaches its primary's pod directly (shopfloor.io/sync-endpoint).
        ports.append({"name": contract.SYNC_PORT_NAME, "containerPort": contract.SYNC_PORT, "protocol": "TCP"})

    def probe(path: str, period: int, failures: int) -> dict[str, Any]:
        return {
            "httpGet": {"path": path, "port": "http"},
            "periodSeconds": period,
            "timeoutSeconds": 1,
            "failureThreshold": failures,
        }

    return {
        "name": workload.component,
        "image": workload.image,
        "imagePullPolicy": settings.image_pull_policy,
        "args": list(workload.args),
        "env": _env(workload, settings),
        "ports": ports,
        # requests == limits with whole cpus: Guaranteed QoS, exclusive cores under the static CPU manager.
        "resources": {"requests": dict(resources), "limits": dict(resources)},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": capabilities,
        },
        # HTTP probes only: exec probes fork inside the pod and disturb exclusive cores.
        "startupProbe": probe("/healthz", 1, 60),
        "livenessProbe": probe("/healthz", 5, 3),
        "readinessProbe": probe("/readyz", 2, 2),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}]
        + ([{"name": "state", "mountPath": STATE_DIR}] if workload.state_bytes else [])
        + [
            {"name": f"secret-{name}", "mountPath": f"{SECRETS_DIR}/{name}", "readOnly": True}
            for name in workload.secret_names
        ]
        + (
            [{"name": SYNC_KEY_VOLUME, "mountPath": sync_key_dir(workload), "readOnly": True}]
            if workload.hot_standby is not None
            else []
        ),
    }


def pod_spec(workload: Workload, settings: OperatorSettings) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "serviceAccountName": workload.service_account_name,
        "automountServiceAccountToken": True,
        "enableServiceLinks": False,
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": settings.termination_grace_seconds,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [_container(workload, settings)],
        "volumes": [{"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}}]
        + ([{"name": "state", "emptyDir": {"sizeLimit": str(workload.state_bytes)}}] if workload.state_bytes else [])
        + [{"name": f"secret-{name}", "secret": {"secretName": name}} for name in workload.secret_names]
        + (
            # Only the key, and the pod does not start without it (not optional): a pair never runs unauthenticated.
            [
                {
                    "name": SYNC_KEY_VOLUME,
                    "secret": {
                        "secretName": workload.sync_secret_name,
                        "items": [{"key": contract.SYNC_KEY, "path": contract.SYNC_KEY}],
                    },
                }
            ]
            if workload.hot_standby is not None
            else []
        ),
    }
    node_selector = _node_selector(workload, settings)
    if node_selector:
        spec["nodeSelector"] = node_selector
    affinity = _affinity(workload, settings)
    if affinity:
        spec["affinity"] = affinity
    tolerations = _tolerations(workload, settings)
    if tolerations:
        spec["tolerations"] = tolerations
    if workload.placement.runtime_class_name:
        spec["runtimeClassName"] = workload.placement.runtime_class_name
    if workload.placement.priority_class_name:
        spec["priorityClassName"] = workload.placement.priority_class_name
    return spec


def spec_hash(spec: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def pod(workload: Workload, settings: OperatorSettings, incarnation: int, avoid_node: str = "") -> dict[str, Any]:
    """The complete Pod of one incarnation of the workload. `avoid_node`: a replacement prefers any other node than
    the one whose runtime stopped renewing (that node may still look Ready: it is cut off, not down). The
    preference is not part of the pod's hash, so the pod does not drift from the spec."""
    spec = pod_spec(workload, settings)
    metadata = workload.metadata(workload.pod_name(incarnation), labels=workload.extra_pod_labels)
    metadata["annotations"] = {
        **workload.pod_annotations,
        SPEC_HASH_ANNOTATION: spec_hash({"spec": spec, "annotations": workload.pod_annotations}),
        INCARNATION_ANNOTATION: str(incarnation),
    }
    if avoid_node:
        node_affinity = spec.setdefault("affinity", {}).setdefault("nodeAffinity", {})
        node_affinity.setdefault("preferredDuringSchedulingIgnoredDuringExecution", []).append(
            {
                "weight": 100,
                "preference": {"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": [avoid_node]}]},
            }
        )
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}
