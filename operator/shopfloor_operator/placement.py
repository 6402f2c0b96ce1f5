"""Why a pod fits no node: which selector, pin or taint excluded which nodes (pure, from Node objects)."""

from __future__ import annotations

from typing import Any


def _tolerates(tolerations: list[dict[str, Any]], taint: dict[str, Any]) -> bool:
    for toleration in tolerations:
        if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
            continue
        if not toleration.get("key"):
            if toleration.get("operator") == "Exists":
                return True
            continue
        if toleration["key"] != taint.get("key"):
            continue
        if toleration.get("operator") == "Exists" or toleration.get("value", "") == taint.get("value", ""):
            return True
    return False


def _pinned_node(pod_spec: dict[str, Any]) -> str | None:
    required = (
        pod_spec.get("affinity", {}).get("nodeAffinity", {}).get("requiredDuringSchedulingIgnoredDuringExecution")
    )
    for term in (required or {}).get("nodeSelectorTerms", []):
        for field in term.get("matchFields", []):
            if field["key"] == "metadata.name":
                return str(field["values"][0])
    return None


def exclusion(pod_spec: dict[str, Any], node: dict[str, Any]) -> str | None:
    """Why this node cannot take the pod, or None when it can."""
    metadata, spec = node.get("metadata", {}), node.get("spec", {})
    name, labels = metadata.get("name", ""), metadata.get("labels") or {}
    pinned = _pinned_node(pod_spec)
    if pinned and pinned != name:
        return f"not the pinned node {pinned}"
    for key, value in (pod_spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return f"label {key}={value} missing"
    tolerations = pod_spec.get("tolerations") or []
    for taint in spec.get("taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not _tolerates(tolerations, taint):
            return f"taint {taint.get('key')}={taint.get('value', '')}:{taint.get('effect')} not tolerated"
    if spec.get("unschedulable"):
        return "cordoned"
    conditions = {c.get("type"): c.get("status") for c in (node.get("status") or {}).get("conditions") or []}
    if conditions.get("Ready") != "True":
        return "NotReady"
    return None


def explain_unschedulable(pod_spec: dict[str, Any], nodes: list[dict[str, Any]]) -> str:
    """`edge-1, edge-2: label ...=true missing; edge-rt-1: NotReady`, grouped by reason; empty when a node fits."""
    if not nodes:
        return "the cluster has no nodes"
    by_reason: dict[str, list[str]] = {}
    for node in nodes:
        reason = exclusion(pod_spec, node)
        if reason is None:
            return ""
        by_reason.setdefault(reason, []).append(node.get("metadata", {}).get("name", "?"))
    return "; ".join(f"{', '.join(sorted(names))}: {reason}" for reason, names in by_reason.items())
