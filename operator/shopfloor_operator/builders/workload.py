"""What the builders need to know about one VirtualPLC or ProtocolBridge, independent of its kind."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

from shopfloor_api.common import NetworkPeer, Placement, Quantity
from shopfloor_api.runtime_contract import DEFAULT_LEASE_DURATION_S, SYNC_SECRET_SUFFIX, StandbyTiming

MANAGED_BY = "shopfloor-operator"


@dataclass(frozen=True)
class ServicePort:
    """A port served by the workload: `port` on the Service, `container_port` in the pod."""

    name: str
    port: int
    container_port: int


@dataclass(frozen=True)
class Workload:
    """One workload (a vPLC runtime or a bridge) as the builders see it."""

    kind: str  # VirtualPLC | ProtocolBridge
    name: str
    namespace: str
    uid: str
    component: str  # vplc | bridge: the app name in labels and the container name
    image: str
    args: list[str]
    cpus: float
    memory: Quantity
    placement: Placement
    realtime_priority: int = 0
    service_ports: list[ServicePort] = field(default_factory=list)
    client_ports: list[str] = field(default_factory=list)  # names of service ports open to allowed clients
    allowed_clients: list[NetworkPeer] = field(default_factory=list)
    secret_names: list[str] = field(default_factory=list)  # mounted read-only, never copied
    extra_pod_labels: dict[str, str] = field(default_factory=dict)
    pod_annotations: dict[str, str] = field(default_factory=dict)  # part of the pod's hash: a change replaces it
    extra_env: dict[str, str] = field(default_factory=dict)
    state_bytes: int = 0  # > 0: a disk-backed scratch volume of this size at STATE_DIR (the bridge's buffer)
    lease_duration_s: float = DEFAULT_LEASE_DURATION_S  # spec.failover.leaseDuration
    hot_standby: StandbyTiming | None = None  # spec.redundancy HotStandby: two runtime pods, primary and standby

    def with_pod_annotations(self, annotations: dict[str, str]) -> Workload:
        return replace(self, pod_annotations={**self.pod_annotations, **annotations})

    @property
    def pod_count(self) -> int:
        """How many runtime pods the workload wants alive."""
        return 1 if self.hot_standby is None else 2

    @property
    def config_map_name(self) -> str:
        return f"{self.name}-runtime"

    @property
    def retain_config_map_name(self) -> str:
        return f"{self.name}-retain"

    @property
    def lease_name(self) -> str:
        return self.name

    @property
    def sync_secret_name(self) -> str:
        """The hot standby pair's shared key (builders.config.sync_secret)."""
        return f"{self.name}{SYNC_SECRET_SUFFIX}"

    @property
    def service_account_name(self) -> str:
        return f"{self.name}-{self.component}"

    @property
    def selector_labels(self) -> dict[str, str]:
        return {"app.kubernetes.io/name": f"shopfloor-{self.component}", "app.kubernetes.io/instance": self.name}

    @property
    def labels(self) -> dict[str, str]:
        return {
            **self.selector_labels,
            "app.kubernetes.io/component": self.component,
            "app.kubernetes.io/part-of": "shopfloor",
            "app.kubernetes.io/managed-by": MANAGED_BY,
            "shopfloor.io/kind": self.kind,
        }

    def pod_name(self, incarnation: int) -> str:
        """Deterministic per incarnation, so a retried create finds its own pod instead of making a second one."""
        suffix = hashlib.sha256(f"{self.uid}/{incarnation}".encode()).hexdigest()[:5]
        return f"{self.name}-{suffix}"

    def owner_reference(self) -> dict[str, object]:
        return {
            "apiVersion": "shopfloor.io/v1alpha1",
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }

    def metadata(self, name: str, labels: dict[str, str] | None = None) -> dict[str, object]:
        """Metadata of a child: namespace, labels, and the owner reference that garbage-collects it."""
        return {
            "name": name,
            "namespace": self.namespace,
            "labels": {**self.labels, **(labels or {})},
            "ownerReferences": [self.owner_reference()],
        }


def plc_client_label(plc_name: str) -> str:
    """Label put on pods (bridges) that read a VirtualPLC, opening its NetworkPolicy to them: a conduit."""
    return f"plc.shopfloor.io/{plc_name}"
