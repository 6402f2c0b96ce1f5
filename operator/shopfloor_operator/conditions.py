"""Conditions the kstatus way: Ready, Reconciling and Stalled (abnormal-true), plus domain conditions.

lastTransitionTime changes only when a condition's status changes; a missing condition reads as Unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"
PROGRAM_VALID = "ProgramValid"
SCHEDULED = "Scheduled"
RUNTIME_HEALTHY = "RuntimeHealthy"
DEGRADED = "Degraded"
REDUNDANT = "Redundant"  # hot standby only: a standby runs and the primary reports it in sync

# The order conditions are listed in status.
ORDER = (READY, RECONCILING, STALLED, PROGRAM_VALID, SCHEDULED, RUNTIME_HEALTHY, DEGRADED, REDUNDANT)


@dataclass(frozen=True)
class Observation:
    """One condition as the reconciler sees it now."""

    type: str
    status: bool | None  # None: Unknown
    reason: str
    message: str = ""


def rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _status_text(status: bool | None) -> str:
    return "Unknown" if status is None else ("True" if status else "False")


def merge(
    current: list[dict[str, Any]], observations: list[Observation], generation: int, now: datetime
) -> list[dict[str, Any]]:
    """New condition list: observations applied, untouched conditions kept, transition times preserved."""
    by_type = {condition.get("type"): dict(condition) for condition in current}
    for observation in observations:
        previous = by_type.get(observation.type)
        status = _status_text(observation.status)
        changed = previous is None or previous.get("status") != status
        by_type[observation.type] = {
            "type": observation.type,
            "status": status,
            "reason": observation.reason,
            "message": observation.message[:4096],
            "lastTransitionTime": rfc3339(now) if changed or previous is None else previous.get("lastTransitionTime"),
            "observedGeneration": generation,
        }
    ordered = [by_type.pop(kind) for kind in ORDER if kind in by_type]
    return ordered + [by_type[kind] for kind in sorted(by_type, key=str)]


def status_of(conditions: list[dict[str, Any]], kind: str) -> str:
    for condition in conditions:
        if condition.get("type") == kind:
            return str(condition.get("status", "Unknown"))
    return "Unknown"


def without_transition_times(conditions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For comparing condition lists: patch status only when something besides the clock changed."""
    return [{k: v for k, v in condition.items() if k != "lastTransitionTime"} for condition in conditions]
