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
from shopfloor_operator.podplan import CreatePod, DeletePod, HandOver, KeepPod, NodeView, PodView, WaitPod, plan_pod
from shopfloor_operator.settings import OperatorSettings


def pod_view(pod_object: dict[str, Any]) -> PodView:
    metadata, spec, status = pod_object["metadata"], pod_object.get("spec") or {}, pod_object.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    incarnation = (metadata.get("annotations") or {}).get(INCARNATION_ANNOTATION, "0")
    return PodView(
        name=metadata["name"],
        incarnation=int(incarnation) if incarnation.isdigit() else 0,
        phase=status.get("phase", "Pending"),
        node_name=spec.get("nodeName", ""),
        deleting=bool(metadata.get("deletionTimestamp")),
        ready=ready,
    )


def node_view(node: dict[str, Any]) -> NodeView:
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            since = parse_time(condition.get("lastTransitionTime"))
            return NodeView(node["metadata"]["name"], condition.get("status") == "True", since)
    return NodeView(node["metadata"]["name"], False, None)


@dataclass(frozen=True)
class PodOutcome:
    live: dict[str, Any] | None  # the current pod, when one exists and is not terminating
    incarnation: int
    scheduled: Observation
    replaced_reason: str  # non-empty when this pass replaced the pod (lost node, failure)
    recheck_after: float | None


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
) -> PodOutcome:
    """`incarnation` is the status' current one (None before the first pod); a new pod gets the next.
    `replace_reason` asks for a new pod. The pods, nodes and the Lease (judged in `observed.lock`) are as observed."""
    pods, nodes, lease, lease_view = observed.pods, observed.nodes, observed.lease, observed.lock
    views = [pod_view(p) for p in pods]
    live = [p for p, v in zip(pods, views, strict=True) if not v.deleting]
    if replace_reason is None and len(live) == 1:
        current = pod(workload, settings, pod_view(live[0]).incarnation)
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
    )
    pending = Observation(conditions.SCHEDULED, False, "Pending", "no pod yet")
    if isinstance(action, HandOver):
        assert lease is not None
        return _hand_over(kube, workload, settings, pods, live, nodes, lease, action, now)
    if isinstance(action, CreatePod):
        desired = pod(workload, settings, action.incarnation)
        kube.create(desired)
        created = Observation(conditions.SCHEDULED, False, "Pending", f"pod {desired['metadata']['name']} created")
        return PodOutcome(desired, action.incarnation, created, "", 1.0)
    if isinstance(action, DeletePod):
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
        reason = action.reason if action.replacement else ""
        return PodOutcome(None, current_incarnation, pending, reason, 0.5)
    if isinstance(action, WaitPod):
        current_live = live[0] if live else None
        scheduled = _scheduled(current_live, nodes)
        return PodOutcome(current_live, current_incarnation, scheduled, "", action.recheck_after)
    assert isinstance(action, KeepPod)
    current = next(p for p in live if p["metadata"]["name"] == action.pod.name)
    return PodOutcome(current, action.pod.incarnation, _scheduled(current, nodes), "", None)


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
    return PodOutcome(current, action.to_incarnation, _scheduled(current, nodes), action.reason, 0.5)


def _scheduled(pod_object: dict[str, Any] | None, nodes: dict[str, dict[str, Any]]) -> Observation:
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
