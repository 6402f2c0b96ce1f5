"""What the runtime's Lease says about it: holder, active revision, state, fault, and whether it is fresh."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shopfloor_api.runtime_contract import (
    ANNOTATION_ACTIVE_REVISION,
    ANNOTATION_FAULT,
    ANNOTATION_REFUSED_REASON,
    ANNOTATION_REFUSED_REVISION,
    ANNOTATION_STATE,
)

RUNTIME_STALE_AFTER = timedelta(seconds=30)  # a report this old says nothing (the Lease's own expiry moves the PLC)


@dataclass(frozen=True)
class RuntimeReport:
    """The runtime's own report, read from its Lease."""

    healthy: bool
    reason: str  # CamelCase, for conditions
    message: str
    active_revision: str = ""
    state: str = ""
    refused_revision: str = ""  # the last revision an online change refused (the running one stays)
    refused_reason: str = ""
    fault: str = ""  # what the runtime said when it faulted


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
    revision = annotations.get(ANNOTATION_ACTIVE_REVISION, "")
    state = annotations.get(ANNOTATION_STATE, "")
    refused = {
        "refused_revision": annotations.get(ANNOTATION_REFUSED_REVISION, ""),
        "refused_reason": annotations.get(ANNOTATION_REFUSED_REASON, ""),
    }
    if holder != pod_name:
        return RuntimeReport(False, "NoReport", f"Lease held by {holder or 'nobody'}, not by pod {pod_name}")
    renewed = parse_time(spec.get("renewTime")) or parse_time(spec.get("acquireTime"))
    if renewed is None or now - renewed > stale_after:
        age = "never renewed" if renewed is None else f"last renewed {int((now - renewed).total_seconds())}s ago"
        return RuntimeReport(False, "ReportStale", f"the runtime stopped reporting ({age})", revision, state, **refused)
    if state == "Faulted":
        fault = annotations.get(ANNOTATION_FAULT, "") or "no detail"
        return RuntimeReport(
            False, "RuntimeFaulted", f"the runtime faulted: {fault}", revision, state, **refused, fault=fault
        )
    if state != "Running":
        message = f"the runtime reports {state or 'no state'}"
        return RuntimeReport(False, f"Runtime{state or 'Unknown'}", message, revision, state, **refused)
    return RuntimeReport(True, "Running", f"running revision {revision}", revision, state, **refused)
