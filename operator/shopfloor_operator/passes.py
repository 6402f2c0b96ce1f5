"""What every reconcile pass shares: its inputs and result, validating the object, applying the common children."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shopfloor_api.loader import Manifest, ManifestError, parse_manifest
from shopfloor_operator import conditions
from shopfloor_operator.builders import config, network, rbac
from shopfloor_operator.builders.workload import Workload
from shopfloor_operator.children import ChildApplier
from shopfloor_operator.conditions import Observation
from shopfloor_operator.leases import LeaseView
from shopfloor_operator.settings import OperatorSettings
from shopfloor_operator.status import StatusWriter

DEFAULT_RECHECK = 30.0


@dataclass
class Observed:
    """What the API said about one object and its surroundings (from the operator's watches)."""

    body: dict[str, Any]
    pods: list[dict[str, Any]]
    nodes: dict[str, dict[str, Any]]
    lease: dict[str, Any] | None
    lock: LeaseView | None = None  # the Lease judged on the operator's clock (filled in by the controller)


def lock_status(lock: LeaseView | None, previous: dict[str, Any] | None) -> dict[str, Any]:
    """status.lock: the holder and epoch as last seen (kept as they were while no Lease is seen)."""
    if lock is None:
        return dict(previous or {"holder": "", "epoch": 0})
    return {"holder": lock.holder, "epoch": lock.epoch}


@dataclass
class Outcome:
    phase: str
    recheck_after: float
    ready: bool = False
    replaced: str = ""
    rolled_back: str = ""


def parse_or_stall(writer: StatusWriter, body: dict[str, Any], now: datetime) -> Manifest | None:
    """The validated manifest, or None after recording `Stalled=True` (InvalidSpec) with every problem."""
    try:
        return parse_manifest({**body, "status": None}, source=body["metadata"]["name"])
    except ManifestError as error:
        status = {**(body.get("status") or {}), "observedGeneration": int(body["metadata"].get("generation", 0))}
        observation = Observation(conditions.STALLED, True, "InvalidSpec", "; ".join(error.problems))
        writer.write(body, status, [observation], now)
        return None


def apply_children(
    applier: ChildApplier, workload: Workload, settings: OperatorSettings, configuration: dict[str, Any]
) -> None:
    """RBAC, the Lease, the workload's configuration ConfigMap (or its retain ConfigMap), Service, NetworkPolicy."""
    for child in (rbac.service_account(workload), rbac.role(workload), rbac.role_binding(workload)):
        applier.apply(child)
    applier.ensure_exists(config.lease(workload))
    if configuration.get("data") is None:
        applier.ensure_exists(configuration)
    else:
        applier.apply(configuration)
    applier.apply(network.service(workload))
    applier.apply(network.network_policy(workload, settings))
