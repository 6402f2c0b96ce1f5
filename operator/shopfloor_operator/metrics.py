"""The operator's Prometheus metrics, named like controller-runtime's so existing dashboards read them."""

from __future__ import annotations

import threading
import time
from collections import Counter as Tally

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
READY_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)


class OperatorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.reconcile_total = Counter(
            "shopfloor_reconcile_total",
            "Reconciliations by controller (virtualplc, protocolbridge) and result (success, error, requeue_after).",
            ["controller", "result"],
            registry=self.registry,
        )
        self.reconcile_time = Histogram(
            "shopfloor_reconcile_time_seconds",
            "Time of one reconciliation.",
            ["controller"],
            buckets=RECONCILE_BUCKETS,
            registry=self.registry,
        )
        self.objects = Gauge(
            "shopfloor_objects", "Objects by controller and phase.", ["controller", "phase"], registry=self.registry
        )
        self.replacements_total = Counter(
            "shopfloor_pod_replacements_total",
            "Pods replaced after a failure or a lost node.",
            ["controller"],
            registry=self.registry,
        )
        self.rollbacks_total = Counter(
            "shopfloor_program_rollbacks_total", "Automatic program rollbacks.", registry=self.registry
        )
        self.time_to_ready = Histogram(
            "shopfloor_time_to_ready_seconds",
            "From the operator seeing a new generation of an object to the object being Ready at that generation.",
            ["controller"],
            buckets=READY_BUCKETS,
            registry=self.registry,
        )
        self.api_requests_total = Counter(
            "shopfloor_api_requests_total",
            "Requests the reconcilers sent to the API server, by verb and resource (kopf's watches not included).",
            ["verb", "resource"],
            registry=self.registry,
        )
        self._lock = threading.Lock()
        self._phases: dict[tuple[str, str], str] = {}  # (controller, uid) -> phase
        self._waiting: dict[tuple[str, str], tuple[int, float]] = {}  # (controller, uid) -> (generation, since)

    def observe(self, controller: str, uid: str, generation: int, phase: str, ready: bool) -> None:
        """Record one reconciled object's phase, and its time to Ready for each new generation."""
        now = time.monotonic()
        key = (controller, uid)
        with self._lock:
            self._phases[key] = phase
            entry = self._waiting.get(key)
            if entry is None and ready:
                entry = (generation, -1.0)  # already Ready when first seen (operator restart): nothing to time
            elif entry is None or entry[0] != generation:
                entry = (generation, now)
            if ready and entry[1] >= 0:
                self.time_to_ready.labels(controller).observe(now - entry[1])
                entry = (generation, -1.0)  # counted once per generation
            self._waiting[key] = entry
            self._publish_phases()

    def forget(self, controller: str, uid: str) -> None:
        with self._lock:
            self._phases.pop((controller, uid), None)
            self._waiting.pop((controller, uid), None)
            self._publish_phases()

    def _publish_phases(self) -> None:
        tally = Tally((controller, phase) for (controller, _), phase in self._phases.items())
        self.objects.clear()
        for (controller, phase), count in tally.items():
            self.objects.labels(controller, phase).set(count)

    def serve(self, port: int, host: str = "0.0.0.0") -> None:
        start_http_server(port, addr=host, registry=self.registry)
