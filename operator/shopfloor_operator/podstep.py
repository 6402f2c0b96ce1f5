"""The pod step shared by both kinds: observe the workload's pods and nodes, run the pod planner, act on it."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shopfloor_api.runtime_contract import (
    ANNOTATION_ACTIVE_REVISION,
    ANNOTATION_FAULT,
    ANNOTATION_HANDOVER,
    ANNOTATION_STATE,
    ENV_REDUNDANCY,
    REDUNDANCY_HOT_STANDBY,
)
from shopfloor_operator import conditions
from shopfloor_operator.builders.pod import INCARNATION_ANNOTATION, SPEC_HASH_ANNOTATION, pod
from shopfloor_operator.builders.workload import Workload
from shopfloor_operator.conditions import Observation
from shopfloor_operator.drift import pod_drift
from shopfloor_operator.health import parse_time
from shopfloor_operator.kube import Kube, object_path
from shopfloor_operator.passes import Observed
from shopfloor_operator.placement import explain_unschedulable
from shopfloor_operator.podplan import (
    CreatePod,
    DeletePod,
    HandOver,
    KeepPod,
    NodeView,
    PodAction,
    PodView,
    WaitPod,
    plan_pod,
    primary_of,
)
from shopfloor_operator.settings import OperatorSettings


def pod_view(pod_object: dict[str, Any]) -> PodView:
    metadata, spec, status = pod_object["metadata"], pod_object.get("spec") or {}, pod_object.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    incarnation = (metadata.get("annotations") or {}).get(INCARNATION_ANNOTATION, "0")
    env = [variable for container in spec.get("containers") or [] for variable in container.get("env") or []]
    hot_standby = any(v.get("name") == ENV_REDUNDANCY and v.get("value") == REDUNDANCY_HOT_STANDBY for v in env)
    return PodView(
        name=metadata["name"],
        incarnation=int(incarnation) if incarnation.isdigit() else 0,
        phase=status.get("phase", "Pending"),
        node_name=spec.get("nodeName", ""),
        deleting=bool(metadata.get("deletionTimestamp")),
        ready=ready,
        hot_standby=hot_standby,
    )


def node_view(node: dict[str, Any]) -> NodeView:
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            since = parse_time(condition.get("lastTransitionTime"))
            return NodeView(node["metadata"]["name"], condition.get("status") == "True", since)
    return NodeView(node["metadata"]["name"], False, None)


@dataclass(frozen=True)
class PodOutcome:
    # The current pod, when one exists and is not terminating; with hot standby the primary (the Lease holder, also
    # while it terminates and hands the Lease over).
    live: dict[str, Any] | None
    incarnation: int
    scheduled: Observation
    replaced_reason: str  # non-empty when this pass replaced the pod (lost node, failure)
    recheck_after: float | None
    standby: dict[str, Any] | None = None  # hot standby: the live pod that is not the primary


def _unscheduled(pod_object: dict[str, Any]) -> str:
    for condition in (pod_object.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return str(condition.get("message") or condition.get("reason") or "unschedulable")
    return ""


def pod_step(
    kube: Kube,
    workload: Workload,
    settings: OperatorSettings,
    observed: Observed,
    incarnation: int | None,
    now: datetime,
    replace_reason: str | None = None,
    previous_holder: str = "",
) -> PodOutcome:
    """`incarnation` is the status' current one (None before the first pod); a new pod gets the next.
    `replace_reason` asks for a new pod. The pods, nodes and the Lease (judged in `observed.lock`) are as observed.
    `previous_holder` is the Lease holder the last pass recorded (status.lock.holder)."""
    pods, nodes, lease, lease_view = observed.pods, observed.nodes, observed.lease, observed.lock
    views = [pod_view(p) for p in pods]
    live_pairs = [(p, v) for p, v in zip(pods, views, strict=True) if not v.deleting]
    live = [p for p, _ in live_pairs]
    desired = workload.pod_count
    drift: dict[str, str] = {}
    if desired > 1:
        for live_pod, view in live_pairs:
            reason = pod_drift(pod(workload, settings, view.incarnation), live_pod, SPEC_HASH_ANNOTATION)
            if reason:
                drift[view.name] = reason
    elif replace_reason is None and len(live) == 1:
        current = pod(workload, settings, live_pairs[0][1].incarnation)
        replace_reason = pod_drift(current, live[0], SPEC_HASH_ANNOTATION)
    grace = timedelta(seconds=settings.node_lost_grace.seconds)
    known = [v.incarnation for v in views] + ([incarnation] if incarnation is not None else [])
    next_incarnation = max(known) + 1 if known else 0
    current_incarnation = incarnation if incarnation is not None else 0
    action = plan_pod(
        views,
        {n: node_view(o) for n, o in nodes.items()},
        next_incarnation,
        now,
        grace,
        replace_reason,
        lease_view,
        workload.pod_name(next_incarnation),
        desired=desired,
        drift=drift,
        previous_holder=previous_holder,
    )
    if desired > 1:
        return _pair_step(kube, workload, settings, observed, views, action, current_incarnation, now)
    pending = Observation(conditions.SCHEDULED, False, "Pending", "no pod yet")
    if isinstance(action, HandOver):
        assert lease is not None
        return _hand_over(kube, workload, settings, pods, live, nodes, lease, action, now)
    if isinstance(action, CreatePod):
        desired_pod = _create(kube, workload, settings, action)
        created = Observation(conditions.SCHEDULED, False, "Pending", f"pod {desired_pod['metadata']['name']} created")
        return PodOutcome(desired_pod, action.incarnation, created, "", 1.0)
    if isinstance(action, DeletePod):
        _delete(kube, workload, pods, action, replace_reason)
        reason = action.reason if action.replacement else ""
        return PodOutcome(None, current_incarnation, pending, reason, 0.5)
    if isinstance(action, WaitPod):
        current_live = live[0] if live else None
        scheduled = scheduled_of(current_live, nodes)
        return PodOutcome(current_live, current_incarnation, scheduled, "", action.recheck_after)
    assert isinstance(action, KeepPod)
    current = next(p for p in live if p["metadata"]["name"] == action.pod.name)
    return PodOutcome(current, action.pod.incarnation, scheduled_of(current, nodes), "", None)


def _create(kube: Kube, workload: Workload, settings: OperatorSettings, action: CreatePod) -> dict[str, Any]:
    desired = pod(workload, settings, action.incarnation)
    kube.create(desired)
    return desired


def _delete(
    kube: Kube, workload: Workload, pods: list[dict[str, Any]], action: DeletePod, replace_reason: str | None
) -> None:
    victim = next(p for p in pods if p["metadata"]["name"] == action.name)
    path = object_path("v1", "Pod", workload.namespace, action.name)
    kube.delete(path, grace_seconds=0 if action.force else None, uid=victim["metadata"].get("uid"))
    if action.replacement or replace_reason:
        node = victim.get("spec", {}).get("nodeName", "")
        kube.event(
            {"apiVersion": "shopfloor.io/v1alpha1", "kind": workload.kind, "metadata": _owner_meta(workload)},
            "Warning" if action.replacement else "Normal",
            "Replacing",
            f"replacing pod {action.name}{f' on {node}' if node else ''}: {action.reason}",
        )


def _pair_step(
    kube: Kube,
    workload: Workload,
    settings: OperatorSettings,
    observed: Observed,
    views: list[PodView],
    action: PodAction,
    current_incarnation: int,
    now: datetime,
) -> PodOutcome:
    """Hot standby: act on the planner's action, then report the primary (the Lease holder) and its standby."""
    pods, nodes = observed.pods, observed.nodes
    holder = observed.lock.holder if observed.lock is not None else ""
    live = {v.name: p for p, v in zip(pods, views, strict=True) if not v.deleting}
    live_views = [v for v in views if not v.deleting]
    highest = max([current_incarnation] + [v.incarnation for v in live_views])
    replaced, recheck = "", None
    if isinstance(action, HandOver):
        assert observed.lease is not None
        outcome = _hand_over(kube, workload, settings, pods, list(live.values()), nodes, observed.lease, action, now)
        # The Lease names the new primary; the standby slot is filled by the next pass.
        return PodOutcome(
            outcome.live, max(highest, action.to_incarnation), outcome.scheduled, outcome.replaced_reason, 0.5
        )
    if isinstance(action, CreatePod):
        created = _create(kube, workload, settings, action)
        live[created["metadata"]["name"]] = created
        live_views.append(pod_view(created))
        highest = max(highest, action.incarnation)
        recheck = 1.0
    elif isinstance(action, DeletePod):
        _delete(kube, workload, pods, action, None)
        live.pop(action.name, None)
        live_views = [v for v in live_views if v.name != action.name]
        replaced = action.reason if action.replacement else ""
        recheck = 0.5
    elif isinstance(action, WaitPod):
        recheck = action.recheck_after
    # The primary is the Lease holder, also while it terminates (it drives until it hands the Lease over); else
    # (nobody holds it yet) the oldest live pod.
    forced = action.name if isinstance(action, DeletePod) and action.force else ""
    primary = next((p for p in pods if p["metadata"]["name"] == holder and holder != forced), None)
    if primary is None:
        primary_view = primary_of(live_views, holder)
        primary = live[primary_view.name] if primary_view is not None else None
    primary_name = primary["metadata"]["name"] if primary is not None else ""
    standby = next((live[v.name] for v in live_views if v.name != primary_name), None)
    return PodOutcome(primary, highest, scheduled_of(primary, nodes), replaced, recheck, standby)


def handed_over_lease(lease: dict[str, Any], to_pod: str, reason: str, now: datetime) -> dict[str, Any]:
    """The Lease given to `to_pod`: a new epoch, the old holder's report cleared, guarded by its resourceVersion."""
    body = copy.deepcopy(lease)
    spec = body.setdefault("spec", {})
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    previous = spec.get("holderIdentity") or ""
    spec.update(
        holderIdentity=to_pod,
        acquireTime=stamp,
        renewTime=stamp,
        leaseTransitions=int(spec.get("leaseTransitions") or 0) + 1,
    )
    annotations = dict((body.setdefault("metadata", {}).get("annotations")) or {})
    annotations.update(
        {
            ANNOTATION_STATE: "",
            ANNOTATION_ACTIVE_REVISION: "",
            ANNOTATION_FAULT: "",
            ANNOTATION_HANDOVER: f"from {previous}: {reason}",
        }
    )
    body["metadata"]["annotations"] = annotations
    return body


def _hand_over(
    kube: Kube,
    workload: Workload,
    settings: OperatorSettings,
    pods: list[dict[str, Any]],
    live: list[dict[str, Any]],
    nodes: dict[str, dict[str, Any]],
    lease: dict[str, Any],
    action: HandOver,
    now: datetime,
) -> PodOutcome:
    """Lease first (the lock), then the old pod, then the new one: an interruption anywhere is finished next pass."""
    to_pod = workload.pod_name(action.to_incarnation)
    kube.replace(handed_over_lease(lease, to_pod, action.reason, now))  # 409 when the holder renewed after all
    owner = {"apiVersion": "shopfloor.io/v1alpha1", "kind": workload.kind, "metadata": _owner_meta(workload)}
    kube.event(owner, "Warning", "Failover", f"{action.reason}; Lease handed to {to_pod}")
    suspect_node = ""
    if action.victim is not None:
        victim = next(p for p in pods if p["metadata"]["name"] == action.victim)
        suspect_node = (victim.get("spec") or {}).get("nodeName", "")
        path = object_path("v1", "Pod", workload.namespace, action.victim)
        kube.delete(path, grace_seconds=0, uid=victim["metadata"].get("uid"))
    if action.create:
        desired = pod(workload, settings, action.to_incarnation, avoid_node=suspect_node)
        kube.create(desired)
        created = Observation(conditions.SCHEDULED, False, "Pending", f"pod {to_pod} created")
        return PodOutcome(desired, action.to_incarnation, created, action.reason, 0.5)
    current = next(p for p in live if p["metadata"]["name"] == to_pod)
    return PodOutcome(current, action.to_incarnation, scheduled_of(current, nodes), action.reason, 0.5)


def scheduled_of(pod_object: dict[str, Any] | None, nodes: dict[str, dict[str, Any]]) -> Observation:
    if pod_object is None:
        return Observation(conditions.SCHEDULED, False, "Pending", "no pod yet")
    node = (pod_object.get("spec") or {}).get("nodeName")
    if node:
        return Observation(conditions.SCHEDULED, True, "Scheduled", f"pod {pod_object['metadata']['name']} on {node}")
    scheduler = _unscheduled(pod_object)
    if not scheduler:
        return Observation(conditions.SCHEDULED, False, "Pending", "waiting for the scheduler")
    explanation = explain_unschedulable(pod_object.get("spec") or {}, list(nodes.values()))
    message = f"no eligible node: {explanation}" if explanation else f"no eligible node: {scheduler}"
    return Observation(conditions.SCHEDULED, False, "Unschedulable", message)


def _owner_meta(workload: Workload) -> dict[str, str]:
    return {"name": workload.name, "namespace": workload.namespace, "uid": workload.uid}
