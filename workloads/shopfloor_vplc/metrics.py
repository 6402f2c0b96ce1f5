"""The runtime's Prometheus metrics (one registry per runtime), fed by the scan engine and the servers."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from shopfloor_vplc.engine import EngineListener
from shopfloor_vplc.image import PlcState
from shopfloor_vplc.modbus_server import BAD_REQUEST_REASONS

# From 10 µs to 1 s: wake-up lateness lives at the low end, scan durations across the whole range.
_TIME_BUCKETS = (1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 1.0)

StateCallback = Callable[[PlcState, str, str], None]
ImageCallback = Callable[[bytes, str], None]  # a state image and its revision (hot standby)


class RuntimeMetrics(EngineListener):
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.scan_duration = Histogram(
            "shopfloor_vplc_scan_duration_seconds", "Time to execute one scan.", buckets=_TIME_BUCKETS, registry=r
        )
        self.wakeup_lateness = Histogram(
            "shopfloor_vplc_wakeup_lateness_seconds",
            "How late the scan thread woke after its cycle deadline.",
            buckets=_TIME_BUCKETS,
            registry=r,
        )
        self.scans = Counter("shopfloor_vplc_scans_total", "Scans executed.", registry=r)
        self.overruns = Counter("shopfloor_vplc_overruns_total", "Cycles skipped because a scan overran.", registry=r)
        self.faults = Counter("shopfloor_vplc_faults_total", "PLC faults by reason.", ["reason"], registry=r)
        self.program_info = Gauge(
            "shopfloor_vplc_program_info", "The active program revision (value 1).", ["revision"], registry=r
        )
        self.state = Gauge("shopfloor_vplc_state", "1 for the PLC's current state.", ["state"], registry=r)
        self.modbus_requests = Counter(
            "shopfloor_vplc_modbus_requests_total", "Modbus requests by function and result.", ["function", "result"],
            registry=r,
        )  # fmt: skip
        self.modbus_bad_requests = Counter(
            "shopfloor_vplc_modbus_bad_requests_total",
            "Modbus frames that were not valid requests, or asked for a unit id not served, by reason.",
            ["reason"],
            registry=r,
        )
        for reason in BAD_REQUEST_REASONS:  # every reason from the start, so that rate() sees the first one
            self.modbus_bad_requests.labels(reason)
        self.opcua_sessions = Gauge("shopfloor_vplc_opcua_sessions", "Open OPC UA sessions.", registry=r)
        self.realtime_granted = Gauge(
            "shopfloor_vplc_realtime_granted", "1 when the requested SCHED_FIFO and memory locking were granted.",
            registry=r,
        )  # fmt: skip
        self.scan_cpu = Gauge(
            "shopfloor_vplc_scan_cpu", "1 for each CPU the scan thread may run on (its affinity).", ["cpu"], registry=r
        )
        self.online_changes = Counter(
            "shopfloor_vplc_online_changes_total", "Online changes by result.", ["result"], registry=r
        )
        self.rejected_writes = Counter(
            "shopfloor_vplc_rejected_writes_total", "Client writes the program refused.", registry=r
        )
        self.field_device_up = Gauge(
            "shopfloor_vplc_field_device_up", "1 while the field device answers.", ["device"], registry=r
        )
        self.fenced = Gauge(
            "shopfloor_vplc_fenced",
            "1 while the runtime does not hold its Lease in time: field outputs not driven, client writes refused.",
            registry=r,
        )
        self.fencings = Counter(
            "shopfloor_vplc_fencings_total", "Times the runtime fenced itself (lost or could not renew its Lease).",
            registry=r,
        )  # fmt: skip
        self.standby = Gauge(
            "shopfloor_vplc_standby",
            "1 while the runtime is a hot standby: it follows its primary's state and drives nothing.",
            registry=r,
        )
        self.standby_in_sync = Gauge(
            "shopfloor_vplc_standby_in_sync",
            "On a hot-standby primary: 1 while its standby acknowledges the process state in time.",
            registry=r,
        )
        self.takeovers = Counter(
            "shopfloor_vplc_takeovers_total", "Times this standby took the Lease over from a silent primary.",
            registry=r,
        )  # fmt: skip
        self._revision = ""
        self.on_state: list[StateCallback] = []
        self.on_image: list[ImageCallback] = []

    def scan_completed(self, lateness_ns: int, duration_ns: int) -> None:
        self.scans.inc()
        self.wakeup_lateness.observe(max(lateness_ns, 0) / 1e9)
        self.scan_duration.observe(duration_ns / 1e9)

    def overrun(self, missed_cycles: int) -> None:
        self.overruns.inc(missed_cycles)

    def faulted(self, kind: str, reason: str) -> None:
        self.faults.labels(kind).inc()

    def write_rejected(self, path: str, reason: str) -> None:
        self.rejected_writes.inc()

    def state_changed(self, state: PlcState, revision: str, fault: str) -> None:
        for each in PlcState:
            self.state.labels(each.value).set(1 if each is state else 0)
        if revision != self._revision:
            if self._revision:
                self.program_info.remove(self._revision)
            self.program_info.labels(revision).set(1)
            self._revision = revision
        for callback in self.on_state:
            callback(state, revision, fault)

    def state_captured(self, image: bytes, revision: str) -> None:
        for callback in self.on_image:
            callback(image, revision)

    def modbus_request(self, function: int, result: str) -> None:
        self.modbus_requests.labels(str(function), result).inc()

    def modbus_bad_request(self, reason: str) -> None:
        self.modbus_bad_requests.labels(reason).inc()
