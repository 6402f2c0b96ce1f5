"""Pure planner of the one pod of a workload: create, keep, or replace it, and never run two at once.

The workload's Lease is the lock that decides which runtime drives the process (shopfloor_inpod.lease); pods only
carry runtimes. So a lost node is a hint to look, not a trigger: a pod that holds the Lease is replaced once its
Lease has expired on the operator's clock (shopfloor_operator.leases), whatever its node reports, and never before.
The Lease is then handed to the replacement by name, guarded by the version judged expired, before the old pod is
force-deleted and the new one created: a holder that renewed meanwhile makes the hand-over fail instead.
A pod that holds nothing (pending, starting, or waiting for a Lease still held by a pod that is gone) follows the
node-lost grace as before.

With hot standby the workload wants two live pods: the Lease holder is the primary and the other one its standby;
which is which is the Lease's business alone (the standby takes it over by itself), never the operator's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from shopfloor_operator.leases import LeaseView


@dataclass(frozen=True)
class PodView:
    name: str
    incarnation: int
    phase: str  # Pending | Running | Succeeded | Failed | Unknown
    node_name: str
    deleting: bool
    ready: bool
    hot_standby: bool = False  # its runtime runs as primary or standby (it syncs, and reports its standby)


@dataclass(frozen=True)
class NodeView:
    name: str
    ready: bool
    since: datetime | None  # last transition of the Ready condition


@dataclass(frozen=True)
class CreatePod:
    incarnation: int


@dataclass(frozen=True)
class DeletePod:
    name: str
    reason: str
    force: bool = False  # the node is gone or lost: its kubelet will never confirm
    replacement: bool = False  # counts as a replacement (metrics, Events)


@dataclass(frozen=True)
class HandOver:
    """The Lease of `holder` expired: give it to the pod of `to_incarnation` (guarded by `version`), then
    force-delete `victim` (when it still exists) and create that pod unless it exists already."""

    to_incarnation: int
    holder: str
    version: str
    victim: str | None
    create: bool
    reason: str


@dataclass(frozen=True)
class WaitPod:
    reason: str
    recheck_after: float


@dataclass(frozen=True)
class KeepPod:
    pod: PodView


PodAction = CreatePod | DeletePod | HandOver | WaitPod | KeepPod


def _lost_for(node: NodeView | None, now: datetime) -> timedelta | None:
    """How long the node has been lost (gone or NotReady); None when it is fine."""
    if node is None:
        return timedelta.max
    if node.ready:
        return None
    return now - node.since if node.since else timedelta(0)


def _node_hint(pods: list[PodView], holder: str, nodes: dict[str, NodeView]) -> str:
    node = next((pod.node_name for pod in pods if pod.name == holder), "")
    if not node:
        return ""
    view = nodes.get(node)
    if view is None:
        return f"; node {node} removed"
    return "" if view.ready else f"; node {node} NotReady"


def plan_lease(
    pods: list[PodView],
    nodes: dict[str, NodeView],
    next_incarnation: int,
    next_pod_name: str,
    lease: LeaseView,
) -> PodAction | None:
    """What the Lease alone decides, or None to go on with the pod rules."""
    live = [pod for pod in pods if not pod.deleting]
    holder_pod = next((pod for pod in pods if pod.name == lease.holder), None)
    if lease.free:
        return None
    if lease.expired and not (holder_pod is not None and not holder_pod.deleting and not lease.taken):
        # The holder stopped renewing and is fenced by now: the Lease goes to a pod that waits for it, or to a new one.
        duration = f"{lease.duration_s:g}s"
        reason = (
            f"Lease of {lease.holder} expired (not renewed within {duration}){_node_hint(pods, lease.holder, nodes)}"
        )
        # With hot standby, the standby the holder last reported in sync has the freshest state.
        in_sync = next((pod for pod in live if pod.name == lease.standby != lease.holder), None)
        waiting = in_sync or next((pod for pod in live if pod.name != lease.holder), None)
        victim = holder_pod.name if holder_pod is not None else None
        if waiting is not None:
            return HandOver(waiting.incarnation, lease.holder, lease.version, victim, False, reason)
        return HandOver(next_incarnation, lease.holder, lease.version, victim, True, reason)
    if holder_pod is None:
        if lease.holder == next_pod_name:
            return CreatePod(next_incarnation)  # handed over, the pod not created yet (an interrupted pass)
        if not live:
            # Its pod is gone but a runtime may still drive with it (a force-deleted pod on a cut-off node).
            return WaitPod(f"waiting for the Lease of {lease.holder} to expire", max(0.2, lease.expires_in))
    return None


def _extra(live: list[PodView], holder: str, desired: int) -> DeletePod:
    """One pod too many: the oldest that does not hold the Lease (never the holder, to make room)."""
    victim = next((pod for pod in live if pod.name != holder), live[0])
    if desired > 1:
        reason = f"{len(live)} pods, {desired} wanted"
    elif holder != live[-1].name and any(pod.name == holder for pod in live):
        reason = f"pod {holder} holds the Lease"
    else:
        reason = f"a newer pod {live[-1].name} exists"
    return DeletePod(victim.name, reason, force=False)


def plan_pod(
    pods: list[PodView],
    nodes: dict[str, NodeView],
    next_incarnation: int,
    now: datetime,
    grace: timedelta,
    replace_reason: str | None = None,
    lease: LeaseView | None = None,
    next_pod_name: str = "",
    desired: int = 1,
    drift: Mapping[str, str] | None = None,
    previous_holder: str = "",
) -> PodAction:
    """`replace_reason` asks for a replacement (spec drift, a Restart rollout); an expired Lease triggers one at once;
    lost nodes and failed pods whose pod holds no Lease trigger one after `grace`. `desired` is the number of live
    pods wanted (2 with hot standby); `drift` the replacement reason of each pod (hot standby) and
    `previous_holder` the holder recorded by the last pass (status.lock)."""
    terminating = [pod for pod in pods if pod.deleting]
    live = sorted((pod for pod in pods if not pod.deleting), key=lambda pod: pod.incarnation)
    holder = lease.holder if lease is not None else ""
    if len(live) > desired:
        return _extra(live, holder, desired)
    if lease is not None:
        decided = plan_lease(pods, nodes, next_incarnation, next_pod_name, lease)
        if decided is not None:
            return decided
    waiting = _terminating(terminating, holder, nodes, now, grace)
    if waiting is not None:
        return waiting
    if desired > 1:
        return _plan_pair(
            live, nodes, next_incarnation, now, grace, replace_reason, lease, drift or {}, previous_holder
        )
    if not live:
        return CreatePod(next_incarnation)
    pod = live[0]
    if pod.phase in ("Failed", "Succeeded"):
        return DeletePod(pod.name, f"pod {pod.name} {pod.phase.lower()}", replacement=True)
    lost = _lost_pod(pod, nodes, now, grace, lease)
    if lost is not None:
        return lost
    if replace_reason:
        return DeletePod(pod.name, replace_reason)
    return KeepPod(pod)


def _terminating(
    terminating: list[PodView], holder: str, nodes: dict[str, NodeView], now: datetime, grace: timedelta
) -> DeletePod | WaitPod | None:
    for pod in terminating:
        if holder and holder != pod.name:
            # It holds nothing (the Lease is someone else's): nothing to wait for.
            return DeletePod(pod.name, f"pod {pod.name} does not hold the Lease", force=True)
        lost = _lost_for(nodes.get(pod.node_name), now) if pod.node_name else None
        if lost is not None and lost >= grace:
            return DeletePod(pod.name, f"pod {pod.name} cannot terminate on lost node {pod.node_name}", force=True)
        # The old pod must be gone before a new one starts: never two running.
        return WaitPod(f"waiting for pod {pod.name} to terminate", 1.0)
    return None


def _lost_pod(
    pod: PodView, nodes: dict[str, NodeView], now: datetime, grace: timedelta, lease: LeaseView | None
) -> DeletePod | WaitPod | None:
    """What a pod on a lost node needs: waiting for its Lease, waiting for the grace, or replacing; None when its node
    is fine."""
    if not pod.node_name:
        return None
    node = nodes.get(pod.node_name)
    lost = _lost_for(node, now)
    if lost is None:
        return None
    if lease is not None and lease.holder == pod.name and lease.taken:
        # The pod holds the Lease: only its expiry moves the PLC (handled above); the node is a hint.
        reason = f"node {pod.node_name} NotReady; waiting for the Lease of {pod.name} to expire"
        return WaitPod(reason, max(0.2, lease.expires_in))
    if node is None:
        return DeletePod(pod.name, f"node {pod.node_name} was removed", force=True, replacement=True)
    if lost >= grace:
        seconds = int(lost.total_seconds())
        reason = f"node {pod.node_name} NotReady for {seconds}s (grace {int(grace.total_seconds())}s)"
        return DeletePod(pod.name, reason, force=True, replacement=True)
    return WaitPod(f"node {pod.node_name} NotReady", max(0.5, (grace - lost).total_seconds()))


def primary_of(live: list[PodView], holder: str) -> PodView | None:
    """The primary among the live pods: the Lease holder, else (nobody holds it yet) the oldest."""
    ordered = sorted(live, key=lambda pod: pod.incarnation)
    return next((pod for pod in ordered if pod.name == holder), None) or next(iter(ordered), None)


def _plan_pair(
    live: list[PodView],
    nodes: dict[str, NodeView],
    next_incarnation: int,
    now: datetime,
    grace: timedelta,
    replace_reason: str | None,
    lease: LeaseView | None,
    drift: Mapping[str, str],
    previous_holder: str,
) -> PodAction:
    """Primary and hot standby (at most two live pods here; nobody terminating)."""
    holder = lease.holder if lease is not None else ""
    waits: dict[str, WaitPod] = {}
    for pod in live:
        if pod.phase in ("Failed", "Succeeded"):
            return DeletePod(pod.name, f"pod {pod.name} {pod.phase.lower()}", replacement=True)
        # A pod holding nothing on a lost node is replaced after the grace, as a single pod is. That includes a
        # former primary whose standby took the Lease over: its renewals now fail with 409, after which its runtime
        # is Superseded and never drives again, so removing it endangers nothing.
        lost = _lost_pod(pod, nodes, now, grace, lease)
        if isinstance(lost, DeletePod):
            return lost
        if lost is not None:
            waits[pod.name] = lost
    superseded = next((pod for pod in live if pod.name == previous_holder != holder), None)
    if superseded is not None and superseded.name not in waits and any(pod.name == holder for pod in live):
        # The standby took the Lease over while its primary's node is fine (a hung runtime, a cut link between
        # the two): a superseded runtime never takes a Lease again, so it is no standby either. A graceful stop.
        reason = f"pod {superseded.name} lost the Lease to its standby {holder}"
        return DeletePod(superseded.name, reason, replacement=True)
    if waits:
        return min(waits.values(), key=lambda wait: wait.recheck_after)
    if len(live) < 2:
        return CreatePod(next_incarnation)  # a missing slot; the next pass fills the next one
    primary = primary_of(live, holder)
    assert primary is not None
    reasons = {pod.name: drift.get(pod.name) or replace_reason or "" for pod in live}
    standby = next(pod for pod in live if pod.name != primary.name)
    if reasons[standby.name]:
        # The standby first: it drives nothing, and the primary is replaced only once a new standby is in sync.
        return DeletePod(standby.name, f"{reasons[standby.name]} (the standby first)")
    if reasons[primary.name]:
        if primary.name != holder or not primary.hot_standby:
            # Nobody drives through it, or it runs without hot standby (the mode was just switched on) and never
            # reports a standby in sync: a plain stop gives the Lease up, and the standby starts from it cold.
            return DeletePod(primary.name, f"{reasons[primary.name]} (no standby in sync)")
        if lease is not None and lease.standby == standby.name:
            # A graceful stop: the runtime hands its Lease straight to the standby that is in sync.
            return DeletePod(primary.name, f"{reasons[primary.name]}; standby {standby.name} in sync takes over")
        return WaitPod(f"waiting for standby {standby.name} to be in sync before replacing {primary.name}", 1.0)
    return KeepPod(primary)
