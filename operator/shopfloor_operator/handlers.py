"""kopf handlers: thin. One daemon per object runs the level-based reconcile loop; watches on pods, Leases, nodes
and the objects themselves only wake the right daemon. Indexes keep what the reconcilers read in memory.

Wake-up handlers are coroutines on purpose: kopf runs plain functions in worker threads, where setting an
asyncio.Event would not wake the daemon's loop."""

from __future__ import annotations

from typing import Any

import kopf

from shopfloor_operator.builders.workload import MANAGED_BY
from shopfloor_operator.controller import Controller, Key
from shopfloor_operator.passes import Observed

GROUP, VERSION = "shopfloor.io", "v1alpha1"
OWNED = {"app.kubernetes.io/managed-by": MANAGED_BY}
KINDS = {"virtualplcs": "VirtualPLC", "protocolbridges": "ProtocolBridge"}


def _plain(body: Any) -> dict[str, Any]:
    return {key: body[key] for key in body}


def _owner_key(labels: Any, namespace: str | None) -> Key | None:
    kind, name = labels.get("shopfloor.io/kind"), labels.get("app.kubernetes.io/instance")
    if not kind or not name or namespace is None:
        return None
    return (str(kind), namespace, str(name))


def register(registry: kopf.OperatorRegistry, controller: Controller) -> None:
    """Register every handler on `registry`, bound to `controller`."""

    @kopf.index("pods", id="owned_pods", labels=OWNED, registry=registry)
    def owned_pods(body: kopf.Body, labels: kopf.Labels, namespace: str | None, **_: Any) -> dict[Key, Any] | None:
        key = _owner_key(labels, namespace)
        return {key: _plain(body)} if key else None

    @kopf.index("coordination.k8s.io", "v1", "leases", id="owned_leases", labels=OWNED, registry=registry)
    def owned_leases(body: kopf.Body, labels: kopf.Labels, namespace: str | None, **_: Any) -> dict[Key, Any] | None:
        key = _owner_key(labels, namespace)
        return {key: _plain(body)} if key else None

    @kopf.index("nodes", id="nodes", registry=registry)
    def nodes(body: kopf.Body, name: str, **_: Any) -> dict[str, Any]:
        return {name: _plain(body)}

    @kopf.on.event("pods", id="pod_changed", labels=OWNED, registry=registry)
    async def child_changed(labels: kopf.Labels, namespace: str | None, **_: Any) -> None:
        key = _owner_key(labels, namespace)
        if key:
            controller.wake(key)

    @kopf.on.event("coordination.k8s.io", "v1", "leases", id="lease_changed", labels=OWNED, registry=registry)
    async def lease_changed(
        labels: kopf.Labels, namespace: str | None, body: kopf.Body, type: str | None, **_: Any
    ) -> None:
        key = _owner_key(labels, namespace)
        if key and type != "DELETED":
            controller.lease_changed(key, _plain(body))

    @kopf.on.event("nodes", id="node_changed", registry=registry)
    async def node_changed(name: str, **kwargs: Any) -> None:
        owned_pods: kopf.Index[Key, Any] = kwargs["owned_pods"]
        for key, pods in owned_pods.items():
            if any((pod.get("spec") or {}).get("nodeName") == name for pod in pods):
                controller.wake(key)

    for plural, kind in KINDS.items():
        _register_kind(registry, controller, plural, kind)


def _register_kind(registry: kopf.OperatorRegistry, controller: Controller, plural: str, kind: str) -> None:
    @kopf.on.event(GROUP, VERSION, plural, id=f"{plural}_changed", registry=registry)
    async def changed(name: str, namespace: str | None, body: kopf.Body, type: str | None, **_: Any) -> None:
        if type != "DELETED":
            controller.wake((kind, namespace or "", name), _plain(body))

    @kopf.daemon(GROUP, VERSION, plural, id=f"{plural}_reconcile", cancellation_timeout=10.0, registry=registry)
    async def run(
        name: str, namespace: str | None, uid: str, body: kopf.Body, stopped: kopf.DaemonStopped, **kwargs: Any
    ) -> None:
        key: Key = (kind, namespace or "", name)
        owned_pods: kopf.Index[Key, Any] = kwargs["owned_pods"]
        owned_leases: kopf.Index[Key, Any] = kwargs["owned_leases"]
        nodes: kopf.Index[str, Any] = kwargs["nodes"]

        def inputs() -> Observed:
            leases = list(owned_leases.get(key, []))
            return Observed(
                body=_plain(body),
                pods=list(owned_pods.get(key, [])),
                nodes={node_name: next(iter(store)) for node_name, store in nodes.items()},
                lease=leases[0] if leases else None,
            )

        try:
            await controller.run_object(key, inputs, stopped)
        finally:
            controller.forget(key, uid)
