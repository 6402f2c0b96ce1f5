"""What the runtime's Lease says about it: holder, active revision, state, fault, and whether it is fresh."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

ACTIVE_REVISION = "shopfloor.io/active-revision"
STATE = "shopfloor.io/state"
FAULT = "shopfloor.io/fault"
RUNTIME_STALE_AFTER = timedelta(seconds=30)  # three missed 10 s renewals


@dataclass(frozen=True)
class RuntimeReport:
    """The runtime's own report, read from its Lease."""

    healthy: bool
    reason: str  # CamelCase, for conditions
    message: str
    active_revision: str = ""
    state: str = ""


def parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def runtime_report(
    lease: dict[str, Any] | None, pod_name: str, now: datetime, stale_after: timedelta = RUNTIME_STALE_AFTER
) -> RuntimeReport:
    """Healthy only when this pod holds the Lease, renewed it recently and reports Running."""
    if not lease or not pod_name:
        return RuntimeReport(False, "NoReport", "the runtime has not reported yet")
    spec = lease.get("spec") or {}
    annotations = (lease.get("metadata") or {}).get("annotations") or {}
    holder = spec.get("holderIdentity") or ""
    revision = annotations.get(ACTIVE_REVISION, "")
    state = annotations.get(STATE, "")
    if holder != pod_name:
        return RuntimeReport(False, "NoReport", f"Lease held by {holder or 'nobody'}, not by pod {pod_name}")
    renewed = parse_time(spec.get("renewTime")) or parse_time(spec.get("acquireTime"))
    if renewed is None or now - renewed > stale_after:
        age = "never renewed" if renewed is None else f"last renewed {int((now - renewed).total_seconds())}s ago"
        return RuntimeReport(False, "ReportStale", f"the runtime stopped reporting ({age})", revision, state)
    if state == "Faulted":
        fault = annotations.get(FAULT, "") or "no detail"
        return RuntimeReport(False, "RuntimeFaulted", f"the runtime faulted: {fault}", revision, state)
    if state != "Running":
        return RuntimeReport(
            False, f"Runtime{state or 'Unknown'}", f"the runtime reports {state or 'no state'}", revision, state
        )
    return RuntimeReport(True, "Running", f"running revision {revision}", revision, state)
