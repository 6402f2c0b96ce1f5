"""Pure planner of the one pod of a workload: create, keep, or replace it, and never run two at once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class PodView:
    name: str
    incarnation: int
    phase: str  # Pending | Running | Succeeded | Failed | Unknown
    node_name: str
    deleting: bool
    ready: bool


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
class WaitPod:
    reason: str
    recheck_after: float


@dataclass(frozen=True)
class KeepPod:
    pod: PodView


PodAction = CreatePod | DeletePod | WaitPod | KeepPod


def _lost_for(node: NodeView | None, now: datetime) -> timedelta | None:
    """How long the node has been lost (gone or NotReady); None when it is fine."""
    if node is None:
        return timedelta.max
    if node.ready:
        return None
    return now - node.since if node.since else timedelta(0)


def plan_pod(
    pods: list[PodView],
    nodes: dict[str, NodeView],
    next_incarnation: int,
    now: datetime,
    grace: timedelta,
    replace_reason: str | None = None,
) -> PodAction:
    """`replace_reason` asks for a replacement (spec drift, a Restart rollout); lost nodes and failed pods trigger
    one on their own after `grace`."""
    terminating = [pod for pod in pods if pod.deleting]
    live = sorted((pod for pod in pods if not pod.deleting), key=lambda pod: pod.incarnation)
    if len(live) > 1:
        extra = live[0]
        return DeletePod(extra.name, f"a newer pod {live[-1].name} exists", force=False)
    for pod in terminating:
        lost = _lost_for(nodes.get(pod.node_name), now) if pod.node_name else None
        if lost is not None and lost >= grace:
            return DeletePod(pod.name, f"pod {pod.name} cannot terminate on lost node {pod.node_name}", force=True)
        # The old pod must be gone before a new one starts: never two running.
        return WaitPod(f"waiting for pod {pod.name} to terminate", 1.0)
    if not live:
        return CreatePod(next_incarnation)
    pod = live[0]
    if pod.phase in ("Failed", "Succeeded"):
        return DeletePod(pod.name, f"pod {pod.name} {pod.phase.lower()}", replacement=True)
    if pod.node_name:
        node = nodes.get(pod.node_name)
        lost = _lost_for(node, now)
        if lost is not None:
            if node is None:
                return DeletePod(pod.name, f"node {pod.node_name} was removed", force=True, replacement=True)
            if lost >= grace:
                seconds = int(lost.total_seconds())
                reason = f"node {pod.node_name} NotReady for {seconds}s (grace {int(grace.total_seconds())}s)"
                return DeletePod(pod.name, reason, force=True, replacement=True)
            return WaitPod(f"node {pod.node_name} NotReady", max(0.5, (grace - lost).total_seconds()))
    if replace_reason:
        return DeletePod(pod.name, replace_reason)
    return KeepPod(pod)
