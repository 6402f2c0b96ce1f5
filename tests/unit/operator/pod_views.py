"""Pod views for the planner tests: a Running, Ready pod unless told otherwise."""

from __future__ import annotations

from typing import Any

from shopfloor_operator.podplan import PodView


def running_pod(name: str = "p-0", incarnation: int = 0, node: str = "edge-rt-1", **changes: Any) -> PodView:
    fields: dict[str, Any] = {
        "name": name,
        "incarnation": incarnation,
        "phase": "Running",
        "node_name": node,
        "deleting": False,
        "ready": True,
    }
    return PodView(**{**fields, **changes})
