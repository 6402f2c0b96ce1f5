"""Reconcile one VirtualPLC, level-based: program, rollout, children, pod, status. Every step is idempotent, so a
pass interrupted anywhere (operator restart, API error) is simply run again.

The pod is on the critical path: the children it needs are sent together (passes.start_children), the pod is
created as soon as they exist, and the Service goes out beside it.
Status is patched once per pass at most, and Events leave without being waited for."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shopfloor_api.virtualplc import Phase, VirtualPLC
from shopfloor_operator import conditions, rollout
from shopfloor_operator.builders import config
from shopfloor_operator.builders.config import ProgramRelease
from shopfloor_operator.builders.pod import spec_hash
from shopfloor_operator.builders.workload import Workload
from shopfloor_operator.builders.workloads import plc_workload
from shopfloor_operator.children import ChildApplier, Mode, alongside
from shopfloor_operator.health import parse_time, runtime_report
from shopfloor_operator.kube import Kube, object_path
from shopfloor_operator.passes import (
    DEFAULT_RECHECK,
    Observed,
    Outcome,
    lock_status,
    parse_or_stall,
    post_events,
    start_children,
)
from shopfloor_operator.podstep import PodOutcome, pod_step, pod_view, scheduled_of
from shopfloor_operator.program import ProgramCheck, check_program
from shopfloor_operator.releases import ReleaseStore
from shopfloor_operator.settings import OperatorSettings
from shopfloor_operator.sources import ProgramSources
from shopfloor_operator.status import StatusWriter, conditions_for, redundant

RUNTIME_CONFIG_ANNOTATION = "shopfloor.io/runtime-config-hash"
# Hot standby with updateStrategy Restart: the deployed revision is part of each pod's hash, so a new revision
# replaces both pods as drift, level-based and in order (standby first, the primary once a new standby is in sync).
PROGRAM_REVISION_ANNOTATION = "shopfloor.io/program-revision"


def plc_pod_workload(plc: VirtualPLC, settings: OperatorSettings) -> Workload:
    """The PLC as its pods' builder sees it: with the hash of its runtime configuration (and, with hot standby, two
    pods and their timing, from plc_workload)."""
    return plc_workload(plc, settings).with_pod_annotations({RUNTIME_CONFIG_ANNOTATION: spec_hash(runtime_config(plc))})


class PlcReconciler:
    def __init__(self, kube: Kube, settings: OperatorSettings, applier: ChildApplier, sources: ProgramSources) -> None:
        self.kube = kube
        self.settings = settings
        self.applier = applier
        self.sources = sources
        self.status = StatusWriter(kube)
        self.releases = ReleaseStore()
        self._runtime_maps: dict[Hashable, tuple[tuple[Any, ...], dict[str, Any]]] = {}

    def forget(self, key: Hashable) -> None:
        """The PLC is gone: its programs and its ConfigMap watch are released."""
        self.releases.forget(key)
        self.sources.release(key)
        self._runtime_maps.pop(key, None)

    def _check(self, key: Hashable, plc: VirtualPLC) -> ProgramCheck:
        program, namespace = plc.spec.program, plc.metadata.namespace
        if program.config_map_ref is None:
            self.sources.release(key)
        check = check_program(program, lambda name, item: self.sources.lookup(key, namespace, name, item))
        if check.revision is not None:
            self.releases.remember(key, ProgramRelease(check.revision, check.source, check.entrypoint))
        return check

    def reconcile(self, observed: Observed, now: datetime | None = None) -> Outcome:
        now = now or datetime.now(UTC)
        body = observed.body
        status = dict(body.get("status") or {})
        generation = int(body["metadata"].get("generation", 0))
        plc = parse_or_stall(self.status, body, now)
        if plc is None:
            return Outcome(Phase.PENDING.value, DEFAULT_RECHECK)
        assert isinstance(plc, VirtualPLC)
        key = (plc.kind, plc.metadata.namespace, plc.metadata.name)
        workload = plc_pod_workload(plc, self.settings)
        hot_standby = workload.hot_standby is not None
        # Before any pod: a hot-standby pod does not start without its key. Back to one runtime (status.redundancy
        # still tells of the pair) the key goes; only then, so a Secret of the same name that is not ours is left be.
        before_pod: list[tuple[Mode, dict[str, Any]]] = []
        if hot_standby:
            before_pod.append(("exists", config.sync_secret(workload)))
        elif "redundancy" in status:
            before_pod.append(("absent", config.sync_secret(workload)))
        check = self._check(key, plc)
        program = dict(status.get("program") or {})
        outcome = Outcome(Phase.PENDING.value, DEFAULT_RECHECK)

        # Program rollout decided on what the runtime reported for the current pod.
        pod_name = status.get("podName", "")
        live_pods = [p for p in observed.pods if not pod_view(p).deleting]
        # With hot standby status.podName is the Lease holder, which reports until it has handed the Lease over.
        candidates = observed.pods if hot_standby else live_pods
        current_pod = next((p for p in candidates if p["metadata"]["name"] == pod_name), None)
        report = runtime_report(observed.lease, pod_name if current_pod else "", now)
        state = rollout.ProgramState(
            desired=check.revision,
            deployed=program.get("deployedRevision", ""),
            deployed_at=parse_time(program.get("deployedAt")),
            last_known_good=program.get("lastKnownGoodRevision", ""),
            failed=program.get("failedRevision", ""),
            switched_at=parse_time(program.get("switchedAt")),
            restart=plc.spec.update_strategy.type == "Restart",
            verify_for=timedelta(seconds=plc.spec.update_strategy.verify_for.seconds),
            report=report,
            pod_ready=bool(current_pod and pod_view(current_pod).ready),
            pod_ready_since=ready_since(current_pod),
            activation_timeout=timedelta(seconds=self.settings.activation_timeout.seconds),
        )
        action = rollout.plan(state, now)
        step = record_action(action, program, now, state.restart)
        events = step.events
        replace_reason = step.replace_reason
        outcome.rolled_back = step.rolled_back
        if step.recheck_after is not None:
            outcome.recheck_after = step.recheck_after

        pods_outcome: PodOutcome | None = None
        runtime_map = self._runtime_config_map(key, workload, plc, program) if program.get("deployedRevision") else None
        if runtime_map is not None:
            before_pod.append(("apply", runtime_map))
        before_pod.append(("exists", config.retain_config_map(workload)))
        first, beside = start_children(self.applier, workload, self.settings, before_pod)
        with alongside(beside):
            first.wait()
            if runtime_map is not None:
                incarnation = int(status.get("replacements", 0)) if status.get("podName") else None
                if hot_standby and state.restart:
                    workload = workload.with_pod_annotations({PROGRAM_REVISION_ANNOTATION: program["deployedRevision"]})
                previous_holder = str((status.get("lock") or {}).get("holder") or "")
                pods_outcome = pod_step(
                    self.kube, workload, self.settings, observed, incarnation, now, replace_reason, previous_holder
                )
                if pods_outcome.recheck_after is not None:
                    outcome.recheck_after = min(outcome.recheck_after, pods_outcome.recheck_after)
                outcome.replaced = pods_outcome.replaced_reason
        live = pods_outcome.live if pods_outcome else None
        if live is not None:
            status["podName"] = live["metadata"]["name"]
            status["replacements"] = pods_outcome.incarnation if pods_outcome else 0
            status["nodeName"] = (live.get("spec") or {}).get("nodeName", "")
        elif pods_outcome is not None:
            status["nodeName"] = ""
        program.update(desiredRevision=check.revision or "", activeRevision=report.active_revision)
        status["program"] = program
        status["lock"] = lock_status(observed.lock, status.get("lock"))
        redundancy = None
        if hot_standby:
            standby = pods_outcome.standby if pods_outcome else None
            standby_name = standby["metadata"]["name"] if standby else ""
            in_sync = bool(standby_name) and observed.lock is not None and observed.lock.standby == standby_name
            status["redundancy"] = {
                "standby": standby_name,
                "standbyNode": ((standby or {}).get("spec") or {}).get("nodeName", ""),
                "inSync": in_sync,
            }
            standby_scheduled = scheduled_of(standby, observed.nodes) if standby else None
            redundancy = redundant(standby_name, standby_scheduled, in_sync)
        elif "redundancy" in status:
            status["redundancy"] = None  # a merge patch removes it

        scheduled = pods_outcome.scheduled if pods_outcome else None
        phase, observations = conditions_for(
            check=check,
            program=program,
            report=report,
            scheduled=scheduled,
            pod_ready=bool(live and pod_view(live).ready and live["metadata"]["name"] == pod_name),
            redundancy=redundancy,
        )
        status.update(phase=phase, observedGeneration=generation)
        drop = () if hot_standby else (conditions.REDUNDANT,)
        transitions = self.status.write(body, status, observations, now, drop)
        self.releases.use(
            key, (check.revision or "", program.get("deployedRevision", ""), program.get("lastKnownGoodRevision", ""))
        )
        post_events(self.applier, self.kube, body, events + transitions)
        outcome.phase = phase
        outcome.ready = phase == Phase.RUNNING.value
        if phase in (Phase.SCHEDULING.value, Phase.STARTING.value, Phase.UPDATING.value, Phase.PENDING.value):
            outcome.recheck_after = min(outcome.recheck_after, 2.0)
        return outcome

    def _runtime_config_map(
        self, key: Hashable, workload: Workload, plc: VirtualPLC, program: dict[str, Any]
    ) -> dict[str, Any] | None:
        """The runtime ConfigMap for the deployed and last known good revisions; None when the deployed program is
        nowhere to be found (the ConfigMap was deleted while the spec changed)."""
        deployed, good = program.get("deployedRevision", ""), program.get("lastKnownGoodRevision", "")
        if any(revision and self.releases.get(revision) is None for revision in (deployed, good)):
            existing = self.kube.get(object_path("v1", "ConfigMap", workload.namespace, workload.config_map_name))
            self.releases.recover(key, (existing or {}).get("data") or {})
        release = self.releases.get(deployed)
        if release is None:
            return None
        last_known_good = self.releases.get(good) if good else None
        # Rendering is YAML of the whole manifest: done once per generation and revisions, not once per pass.
        rendered_for = (plc.metadata.uid, plc.metadata.generation, deployed, good, workload.config_map_name)
        cached = self._runtime_maps.get(key)
        if cached is None or cached[0] != rendered_for:
            cached = self._runtime_maps[key] = (
                rendered_for,
                config.plc_config_map(workload, plc, release, last_known_good),
            )
        return cached[1]


def runtime_config(plc: VirtualPLC) -> dict[str, Any]:
    """The spec fields the runtime reads at start besides the program: a change replaces the pod."""
    return plc.spec.model_dump(
        mode="json", include={"cycle_time", "watchdog", "realtime_priority", "io", "safe_state"}, exclude_none=True
    )


@dataclass
class RolloutStep:
    """What one rollout action changed besides status.program: Events, a pod replacement, when to look again."""

    events: list[tuple[str, str, str]] = field(default_factory=list)
    replace_reason: str | None = None
    recheck_after: float | None = None
    rolled_back: str = ""


def record_action(action: rollout.Action, program: dict[str, Any], now: datetime, restart: bool) -> RolloutStep:
    """Apply the planner's action to status.program (in place); the ConfigMap follows from it."""
    step = RolloutStep()
    stamp = conditions.rfc3339(now)
    if isinstance(action, rollout.Deploy):
        program.update(deployedRevision=action.revision, deployedAt=stamp, switchedAt="", message="")
        step.events.append(("Normal", "Deploying", action.reason))
        step.replace_reason = action.reason if action.restart else None
        step.recheck_after = 1.0
    elif isinstance(action, rollout.Switched):
        program["switchedAt"] = conditions.rfc3339(action.at)
        step.recheck_after = 1.0
    elif isinstance(action, rollout.Reactivated):
        program.update(failedRevision="", switchedAt=conditions.rfc3339(action.at), message="")
        message = f"revision {action.revision} runs healthy after all; verifying it again"
        step.events.append(("Normal", "Reactivated", message))
        step.recheck_after = 1.0
    elif isinstance(action, rollout.Promote):
        program["lastKnownGoodRevision"] = action.revision
        step.events.append(("Normal", "Verified", f"revision {action.revision} verified; now the last known good"))
    elif isinstance(action, rollout.Rollback):
        # The last known good was verified already: no second verification period.
        program.update(
            deployedRevision=action.to_revision,
            deployedAt=stamp,
            switchedAt=stamp,
            failedRevision=action.failed_revision,
            message=action.reason,
        )
        step.events.append(("Warning", "RolledBack", f"rolled back to {action.to_revision}: {action.reason}"))
        step.rolled_back = action.reason
        step.replace_reason = f"rollback to {action.to_revision}" if restart else None
    elif isinstance(action, rollout.Fail):
        program.update(failedRevision=action.failed_revision, message=action.reason)
        step.events.append(("Warning", "VerificationFailed", f"{action.failed_revision}: {action.reason}"))
    elif isinstance(action, rollout.Wait):
        step.recheck_after = action.recheck_after
    return step


def ready_since(pod_object: dict[str, Any] | None) -> datetime | None:
    """When the pod last became Ready, or None while it is not."""
    for condition in ((pod_object or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready" and condition.get("status") == "True":
            return parse_time(condition.get("lastTransitionTime"))
    return None
