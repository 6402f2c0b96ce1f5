"""Phase and conditions from what the reconciler found, and writing them to the status subresource on change."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shopfloor_api.virtualplc import Phase
from shopfloor_operator import conditions
from shopfloor_operator.conditions import Observation
from shopfloor_operator.health import RuntimeReport
from shopfloor_operator.kube import Kube, object_path
from shopfloor_operator.program import ProgramCheck

ACTIVE_PHASES = (Phase.PENDING, Phase.SCHEDULING, Phase.STARTING, Phase.UPDATING)

# (condition, new status) -> Event (type, reason) for transitions a human wants to see.
TRANSITION_EVENTS = {
    (conditions.READY, "True"): ("Normal", "Ready"),
    (conditions.PROGRAM_VALID, "False"): ("Warning", "ProgramInvalid"),
    (conditions.SCHEDULED, "False"): ("Warning", "NotScheduled"),
    (conditions.SCHEDULED, "True"): ("Normal", "Scheduled"),
    (conditions.RUNTIME_HEALTHY, "False"): ("Warning", "RuntimeUnhealthy"),
    (conditions.STALLED, "True"): ("Warning", "Stalled"),
    (conditions.REDUNDANT, "False"): ("Warning", "NotRedundant"),
    (conditions.REDUNDANT, "True"): ("Normal", "Redundant"),
}


def phase_of(program: dict[str, Any], report: RuntimeReport, scheduled: Observation | None, pod_ready: bool) -> Phase:
    deployed, good, failed = (
        program.get(k, "") for k in ("deployedRevision", "lastKnownGoodRevision", "failedRevision")
    )
    if not deployed:
        return Phase.PENDING
    if scheduled is None or scheduled.status is not True:
        return Phase.SCHEDULING
    faulted_on_deployed = report.state == "Faulted" and report.active_revision == deployed == good
    if (failed and deployed == failed) or faulted_on_deployed:
        return Phase.FAULTED
    if failed and failed == program.get("desiredRevision"):
        return Phase.DEGRADED
    # Updating: a new revision is being switched to or verified (also when the previous one was not verified yet).
    if deployed != good and (good or report.active_revision not in ("", deployed)):
        return Phase.UPDATING
    # The first revision is verified too, but a healthy first start is simply Running.
    if report.healthy and pod_ready:
        return Phase.RUNNING
    return Phase.STARTING


def redundant(standby: str, standby_scheduled: Observation | None, in_sync: bool) -> Observation:
    """The Redundant condition (hot standby): never part of Ready, which the primary alone decides."""
    if not standby:
        return Observation(conditions.REDUNDANT, False, "StandbyMissing", "no standby pod")
    if in_sync:
        return Observation(conditions.REDUNDANT, True, "InSync", f"standby {standby} is in sync")
    if standby_scheduled is not None and standby_scheduled.status is not True:
        return Observation(
            conditions.REDUNDANT, False, "StandbyMissing", f"standby {standby}: {standby_scheduled.message}"
        )
    return Observation(
        conditions.REDUNDANT, False, "StandbyNotInSync", f"the primary reports standby {standby} not in sync"
    )


def conditions_for(
    check: ProgramCheck,
    program: dict[str, Any],
    report: RuntimeReport,
    scheduled: Observation | None,
    pod_ready: bool,
    redundancy: Observation | None = None,
) -> tuple[str, list[Observation]]:
    phase = phase_of(program, report, scheduled, pod_ready)
    rolled_back = phase is Phase.DEGRADED
    stalled_reason = ""
    if not check.valid:
        stalled_reason, stalled_message = check.reason, check.message
    elif rolled_back:
        stalled_reason, stalled_message = "RolledBack", program.get("message", "")
    elif phase is Phase.FAULTED:
        stalled_reason, stalled_message = "Faulted", program.get("message", "") or report.message
    ready = phase is Phase.RUNNING and check.valid
    observations = [
        Observation(conditions.PROGRAM_VALID, check.valid, check.reason, check.message),
        scheduled or Observation(conditions.SCHEDULED, None, "Pending", "no program deployed yet"),
        Observation(conditions.RUNTIME_HEALTHY, report.healthy, report.reason, report.message),
        Observation(
            conditions.DEGRADED,
            rolled_back,
            "RolledBack" if rolled_back else "AsExpected",
            program.get("message", "") if rolled_back else "",
        ),
        Observation(conditions.READY, ready, phase.value, report.message if ready else f"phase {phase.value}"),
        Observation(
            conditions.RECONCILING,
            phase in ACTIVE_PHASES and not stalled_reason,
            phase.value,
            f"phase {phase.value}",
        ),
        Observation(
            conditions.STALLED,
            bool(stalled_reason),
            stalled_reason or "AsExpected",
            stalled_message if stalled_reason else "",
        ),
        *([redundancy] if redundancy is not None else []),
    ]
    return phase.value, observations


def _worth_an_event(condition: dict[str, Any], before: dict[str, Any]) -> bool:
    """Status changes, except the normal start-up sequence out of Unknown; problems a human must fix always."""
    if condition["type"] == conditions.SCHEDULED and condition["status"] == "False":
        return condition.get("reason") == "Unschedulable" and before.get("reason") != "Unschedulable"
    if before.get("status") == condition["status"]:
        return False
    return before.get("status") != "Unknown" or condition["type"] in (
        conditions.PROGRAM_VALID,
        conditions.STALLED,
        conditions.READY,
    )


class StatusWriter:
    """Patches the status subresource only when something besides timestamps changed."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    def write(
        self,
        body: dict[str, Any],
        status: dict[str, Any],
        observations: list[Observation],
        now: datetime,
        drop: tuple[str, ...] = (),
    ) -> list[tuple[str, str, str]]:
        """Returns Events (type, reason, message) for the condition transitions it recorded. `drop` removes
        conditions that no longer apply (Redundant once hot standby is switched off)."""
        old = body.get("status") or {}
        old_conditions = list(old.get("conditions") or [])
        new_conditions = conditions.merge(old_conditions, observations, int(status.get("observedGeneration", 0)), now)
        new_conditions = [condition for condition in new_conditions if condition.get("type") not in drop]
        new_status = {**status, "conditions": new_conditions}
        transitions = []
        previous = {c.get("type"): c for c in old_conditions}
        for condition in new_conditions:
            before = previous.get(condition["type"]) or {"status": "Unknown", "reason": ""}
            event = TRANSITION_EVENTS.get((condition["type"], condition["status"]))
            if event and _worth_an_event(condition, before):
                transitions.append((event[0], event[1], condition["message"] or condition["reason"]))
        unchanged = {k: v for k, v in old.items() if k != "conditions"} == {
            k: v for k, v in new_status.items() if k != "conditions"
        } and conditions.without_transition_times(old_conditions) == conditions.without_transition_times(new_conditions)
        if not unchanged:
            metadata = body["metadata"]
            path = object_path(body["apiVersion"], body["kind"], metadata["namespace"], metadata["name"]) + "/status"
            response = self.kube.merge_patch(path, {"status": new_status}) or {}
            body["status"] = new_status
            version = (response.get("metadata") or {}).get("resourceVersion")
            if version:
                body["metadata"] = {**body["metadata"], "resourceVersion": version}
        return transitions
