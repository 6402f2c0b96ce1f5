"""Reconcile one VirtualPLC, level-based: children, program, pod, rollout, status. Every step is idempotent, so a
pass interrupted anywhere (operator restart, API error) is simply run again."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shopfloor_api.loader import ManifestError, parse_manifest
from shopfloor_api.virtualplc import Phase, VirtualPLC
from shopfloor_operator import conditions, rollout
from shopfloor_operator.builders import config, network, rbac
from shopfloor_operator.builders.config import ProgramRelease
from shopfloor_operator.builders.pod import spec_hash
from shopfloor_operator.builders.workload import Workload
from shopfloor_operator.builders.workloads import plc_workload
from shopfloor_operator.children import ChildApplier
from shopfloor_operator.conditions import Observation
from shopfloor_operator.health import parse_time, runtime_report
from shopfloor_operator.kube import Kube, object_path
from shopfloor_operator.podstep import PodOutcome, pod_step, pod_view
from shopfloor_operator.program import check_program
from shopfloor_operator.releases import ReleaseStore
from shopfloor_operator.settings import OperatorSettings
from shopfloor_operator.status import StatusWriter, conditions_for

DEFAULT_RECHECK = 30.0
RUNTIME_CONFIG_ANNOTATION = "shopfloor.io/runtime-config-hash"


@dataclass
class Observed:
    """What the API said about one VirtualPLC and its surroundings (from the operator's watches)."""

    body: dict[str, Any]
    pods: list[dict[str, Any]]
    nodes: dict[str, dict[str, Any]]
    lease: dict[str, Any] | None


@dataclass
class Outcome:
    phase: str
    recheck_after: float
    ready: bool = False
    replaced: str = ""
    rolled_back: str = ""
    events: list[tuple[str, str, str]] = field(default_factory=list)


class PlcReconciler:
    def __init__(self, kube: Kube, settings: OperatorSettings, applier: ChildApplier) -> None:
        self.kube = kube
        self.settings = settings
        self.applier = applier
        self.status = StatusWriter(kube)
        self.releases = ReleaseStore()

    def _lookup(self, namespace: str) -> Any:
        def lookup(name: str, key: str) -> str | None:
            found = self.kube.get(object_path("v1", "ConfigMap", namespace, name))
            return None if found is None else (found.get("data") or {}).get(key)

        return lookup

    def reconcile(self, observed: Observed, now: datetime | None = None) -> Outcome:
        now = now or datetime.now(UTC)
        body = observed.body
        status = dict(body.get("status") or {})
        generation = int(body["metadata"].get("generation", 0))
        try:
            manifest = parse_manifest({**body, "status": None}, source=body["metadata"]["name"])
        except ManifestError as error:
            observation = Observation(conditions.STALLED, True, "InvalidSpec", "; ".join(error.problems))
            self.status.write(body, {**status, "observedGeneration": generation}, [observation], now)
            return Outcome(Phase.PENDING.value, DEFAULT_RECHECK)
        assert isinstance(manifest, VirtualPLC)
        plc = manifest
        workload = plc_workload(plc, self.settings).with_pod_annotations(
            {RUNTIME_CONFIG_ANNOTATION: spec_hash(runtime_config(plc))}
        )
        for child in (rbac.service_account(workload), rbac.role(workload), rbac.role_binding(workload)):
            self.applier.apply(child)
        self.applier.ensure_exists(config.lease(workload))
        self.applier.ensure_exists(config.retain_config_map(workload))
        self.applier.apply(network.service(workload))
        self.applier.apply(network.network_policy(workload, self.settings))

        check = check_program(plc.spec.program, self._lookup(plc.metadata.namespace))
        if check.revision is not None:
            self.releases.remember(ProgramRelease(check.revision, check.source, check.entrypoint))
        program = dict(status.get("program") or {})
        outcome = Outcome(Phase.PENDING.value, DEFAULT_RECHECK)
        events: list[tuple[str, str, str]] = []

        # Program rollout decided on what the runtime reported for the current pod.
        pod_name = status.get("podName", "")
        live_pods = [p for p in observed.pods if not pod_view(p).deleting]
        current_pod = next((p for p in live_pods if p["metadata"]["name"] == pod_name), None)
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
        )
        action = rollout.plan(state, now)
        replace_reason: str | None = None
        if isinstance(action, rollout.Deploy):
            program.update(deployedRevision=action.revision, deployedAt=conditions.rfc3339(now), switchedAt="")
            program["message"] = ""
            events.append(("Normal", "Deploying", action.reason))
            replace_reason = action.reason if action.restart else None
            outcome.recheck_after = 1.0
        elif isinstance(action, rollout.Switched):
            program["switchedAt"] = conditions.rfc3339(action.at)
            outcome.recheck_after = min(1.0, state.verify_for.total_seconds() or 1.0)
        elif isinstance(action, rollout.Promote):
            program["lastKnownGoodRevision"] = action.revision
            events.append(("Normal", "Verified", f"revision {action.revision} verified; now the last known good"))
        elif isinstance(action, rollout.Rollback):
            program.update(
                deployedRevision=action.to_revision,
                deployedAt=conditions.rfc3339(now),
                switchedAt="",
                failedRevision=action.failed_revision,
                message=action.reason,
            )
            # The last known good was verified already: no second verification period.
            program["switchedAt"] = conditions.rfc3339(now)
            events.append(("Warning", "RolledBack", f"rolled back to {action.to_revision}: {action.reason}"))
            outcome.rolled_back = action.reason
            replace_reason = f"rollback to {action.to_revision}" if state.restart else None
        elif isinstance(action, rollout.Fail):
            program.update(failedRevision=action.failed_revision, message=action.reason)
            events.append(("Warning", "VerificationFailed", f"{action.failed_revision}: {action.reason}"))
        elif isinstance(action, rollout.Wait):
            outcome.recheck_after = action.recheck_after

        pods_outcome: PodOutcome | None = None
        if program.get("deployedRevision") and self._write_runtime_config(workload, plc, program):
            incarnation = int(status.get("replacements", 0)) if status.get("podName") else None
            pods_outcome = pod_step(
                self.kube, workload, self.settings, observed.pods, observed.nodes, incarnation, now, replace_reason
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

        scheduled = pods_outcome.scheduled if pods_outcome else None
        phase, observations = conditions_for(
            check=check,
            program=program,
            report=report,
            scheduled=scheduled,
            pod_ready=bool(live and pod_view(live).ready and live["metadata"]["name"] == pod_name),
        )
        status.update(phase=phase, observedGeneration=generation)
        transitions = self.status.write(body, status, observations, now)
        for kind, reason, message in events + transitions:
            self.kube.event(body, kind, reason, message)
        outcome.phase = phase
        outcome.ready = phase == Phase.RUNNING.value
        if phase in (Phase.SCHEDULING.value, Phase.STARTING.value, Phase.UPDATING.value, Phase.PENDING.value):
            outcome.recheck_after = min(outcome.recheck_after, 2.0)
        return outcome

    def _write_runtime_config(self, workload: Workload, plc: VirtualPLC, program: dict[str, Any]) -> bool:
        """Render the runtime ConfigMap for the deployed and last known good revisions (applied only on change).
        False when the deployed program is nowhere to be found (the ConfigMap was deleted while the spec changed)."""
        deployed, good = program.get("deployedRevision", ""), program.get("lastKnownGoodRevision", "")
        if any(revision and self.releases.get(revision) is None for revision in (deployed, good)):
            existing = self.kube.get(object_path("v1", "ConfigMap", workload.namespace, workload.config_map_name))
            self.releases.recover((existing or {}).get("data") or {})
        release = self.releases.get(deployed)
        if release is None:
            return False
        last_known_good = self.releases.get(good) if good else None
        self.applier.apply(config.plc_config_map(workload, plc, release, last_known_good))
        return True


def runtime_config(plc: VirtualPLC) -> dict[str, Any]:
    """The spec fields the runtime reads at start besides the program: a change replaces the pod."""
    return plc.spec.model_dump(
        mode="json", include={"cycle_time", "watchdog", "realtime_priority", "io", "safe_state"}, exclude_none=True
    )
