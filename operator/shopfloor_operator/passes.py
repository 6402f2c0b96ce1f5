"""What every reconcile pass shares: its inputs and result, validating the object, starting the common children."""

from __future__ import annotations

import contextlib
import functools
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shopfloor_api.loader import Manifest, ManifestError, parse_manifest
from shopfloor_operator import conditions
from shopfloor_operator.builders import config, network, rbac
from shopfloor_operator.builders.workload import Workload
from shopfloor_operator.children import Batch, ChildApplier, Mode
from shopfloor_operator.conditions import Observation
from shopfloor_operator.kube import Kube
from shopfloor_operator.leases import LeaseView
from shopfloor_operator.settings import OperatorSettings
from shopfloor_operator.status import StatusWriter

DEFAULT_RECHECK = math.inf  # nothing due: the next look is the periodic resync (settings.resync_seconds)


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


def start_children(
    applier: ChildApplier,
    workload: Workload,
    settings: OperatorSettings,
    before_pod: list[tuple[Mode, dict[str, Any]]],
) -> tuple[Batch, Batch]:
    """Start the children's requests concurrently, in two batches. The first is everything the pod needs before it
    may exist, because its runtime uses it from its first second: the ServiceAccount (admission refuses a pod
    without it), Role and RoleBinding (its credentials), the Lease (its lock), its NetworkPolicy (the pod never
    serves unprotected) and `before_pod` (what it runs). Beside it goes the Service, which only routes clients."""
    role = applier.start(("apply", rbac.role(workload)))
    first = applier.start(
        ("apply", rbac.service_account(workload)),
        ("exists", config.lease(workload)),
        ("apply", network.network_policy(workload, settings)),
        *before_pod,
    )
    # The RoleBinding after its Role: an operator allowed to bind a Role only by holding its rules (the chart's,
    # without the `bind` verb) is refused a binding to a Role that does not exist yet.
    try:
        role.wait()
    except Exception:
        with contextlib.suppress(Exception):
            first.wait()
        raise
    first.futures.extend(applier.start(("apply", rbac.role_binding(workload))).futures)
    beside = applier.start(("apply", network.service(workload)))
    return first, beside


def post_events(applier: ChildApplier, kube: Kube, body: dict[str, Any], events: list[tuple[str, str, str]]) -> None:
    """Events (type, reason, message) on `body`, sent beside the pass: nothing waits for them, and failing to record
    one is not fatal."""
    involved = {"apiVersion": body["apiVersion"], "kind": body["kind"], "metadata": dict(body["metadata"])}
    for kind, reason, message in events:
        applier.submit(functools.partial(kube.event, involved, kind, reason, message))
