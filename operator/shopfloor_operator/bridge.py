"""Reconcile one ProtocolBridge, level-based: children and configuration (the pod once what it needs exists),
pod, status."""

from __future__ import annotations

from collections.abc import Hashable
from datetime import UTC, datetime

from shopfloor_api.protocolbridge import ProtocolBridge
from shopfloor_api.virtualplc import Phase
from shopfloor_operator import conditions
from shopfloor_operator.builders import config
from shopfloor_operator.builders.pod import spec_hash
from shopfloor_operator.builders.workloads import bridge_workload
from shopfloor_operator.children import ChildApplier, alongside
from shopfloor_operator.conditions import Observation
from shopfloor_operator.health import runtime_report
from shopfloor_operator.kube import Kube
from shopfloor_operator.passes import (
    DEFAULT_RECHECK,
    Observed,
    Outcome,
    lock_status,
    parse_or_stall,
    post_events,
    start_children,
)
from shopfloor_operator.podstep import pod_step, pod_view
from shopfloor_operator.settings import OperatorSettings
from shopfloor_operator.status import StatusWriter

CONFIG_HASH_ANNOTATION = "shopfloor.io/config-hash"


class BridgeReconciler:
    def __init__(self, kube: Kube, settings: OperatorSettings, applier: ChildApplier) -> None:
        self.kube = kube
        self.settings = settings
        self.applier = applier
        self.status = StatusWriter(kube)

    def forget(self, key: Hashable) -> None:
        """The bridge is gone: nothing of it is kept between passes."""

    def reconcile(self, observed: Observed, now: datetime | None = None) -> Outcome:
        now = now or datetime.now(UTC)
        body = observed.body
        status = dict(body.get("status") or {})
        generation = int(body["metadata"].get("generation", 0))
        manifest = parse_or_stall(self.status, body, now)
        if manifest is None:
            return Outcome(Phase.PENDING.value, DEFAULT_RECHECK)
        assert isinstance(manifest, ProtocolBridge)
        workload = bridge_workload(manifest, self.settings)
        config_map = config.bridge_config_map(workload, manifest)
        # The bridge reads its configuration at start: a new configuration is a new pod.
        config_hash = spec_hash(config_map["data"])
        workload = workload.with_pod_annotations({CONFIG_HASH_ANNOTATION: config_hash})
        first, beside = start_children(self.applier, workload, self.settings, [("apply", config_map)])
        incarnation = int(status.get("replacements", 0)) if status.get("podName") else None
        with alongside(beside):
            first.wait()
            pods = pod_step(self.kube, workload, self.settings, observed, incarnation, now)
        live = pods.live
        pod_name = live["metadata"]["name"] if live else ""
        report = runtime_report(observed.lease, pod_name, now)
        ready = bool(live and pod_view(live).ready)
        if pods.scheduled.status is not True:
            phase = Phase.SCHEDULING
        elif report.state == "Faulted":
            phase = Phase.FAULTED
        elif report.healthy and ready:
            phase = Phase.RUNNING
        else:
            phase = Phase.STARTING
        status.update(
            phase=phase.value,
            observedGeneration=generation,
            podName=pod_name or status.get("podName", ""),  # the last pod names the next incarnation
            nodeName=(live.get("spec") or {}).get("nodeName", "") if live else "",
            replacements=pods.incarnation,
            lock=lock_status(observed.lock, status.get("lock")),
        )
        running = phase is Phase.RUNNING
        observations = [
            pods.scheduled,
            Observation(conditions.RUNTIME_HEALTHY, report.healthy, report.reason, report.message),
            Observation(conditions.READY, running, phase.value, report.message if running else f"phase {phase.value}"),
            Observation(conditions.RECONCILING, not running and phase is not Phase.FAULTED, phase.value, ""),
            Observation(conditions.STALLED, phase is Phase.FAULTED, phase.value, report.message if not running else ""),
        ]
        post_events(self.applier, self.kube, body, self.status.write(body, status, observations, now))
        recheck = DEFAULT_RECHECK if running else 2.0
        if pods.recheck_after is not None:
            recheck = min(recheck, pods.recheck_after)
        return Outcome(phase.value, recheck, ready=running, replaced=pods.replaced_reason)
