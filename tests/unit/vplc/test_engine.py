"""The scan engine on a real compiled program: cycle, boundary writes, faults, watchdog, online change, retain."""

from __future__ import annotations

import time

from shopfloor_st import compile_source
from shopfloor_vplc.engine import EngineConfig, EngineListener, ScanEngine
from shopfloor_vplc.image import PlcState
from tests.support.waiting import wait_for
from tests.unit.vplc.programs import MIXER, MIXER_RETYPED, MIXER_V2

PUBLISHED = ("Count", "Pump", "Level", "Quotient", "Speed")


class Recorder(EngineListener):
    def __init__(self) -> None:
        self.faults: list[tuple[str, str]] = []
        self.overruns = 0
        self.lateness: list[int] = []

    def faulted(self, kind: str, reason: str) -> None:
        self.faults.append((kind, reason))

    def overrun(self, missed_cycles: int) -> None:
        self.overruns += missed_cycles

    def scan_completed(self, lateness_ns: int, duration_ns: int) -> None:
        self.lateness.append(lateness_ns)


def engine_for(source: str = MIXER, cycle_ms: float = 2, watchdog_ms: float = 200, **kwargs: object) -> ScanEngine:
    program = compile_source(source, filename="mixer.st")
    config = EngineConfig(
        cycle_ns=int(cycle_ms * 1e6),
        watchdog_ns=int(watchdog_ms * 1e6),
        published=PUBLISHED,
        safe_state={"Pump": False, "Speed": 0},
        retain=True,
        retain_capture_ns=1_000_000,
    )
    return ScanEngine(program, config, listener=kwargs.pop("listener", None), **kwargs)  # type: ignore[arg-type]


def test_scans_on_its_cycle_and_publishes_snapshots() -> None:
    engine = engine_for(cycle_ms=5)
    engine.start()
    try:
        first = engine.snapshot
        assert first.state is PlcState.RUNNING
        started = time.monotonic()
        wait_for(lambda: engine.snapshot.values["Count"] >= 40, timeout=15, interval=0.01)
        elapsed = time.monotonic() - started
        assert elapsed >= 0.15  # 40 cycles of 5 ms cannot happen faster than the cycle allows
        assert engine.snapshot.seq > first.seq
    finally:
        engine.stop()
    assert engine.state is PlcState.STOPPED


def test_writes_land_at_the_next_boundary() -> None:
    engine = engine_for()
    engine.start()
    try:
        write_id = engine.writes.put("Level", 80)
        snapshot = wait_for(lambda: engine.snapshot.applied_write_id >= write_id and engine.snapshot, timeout=15)
        assert snapshot.values["Pump"] is True  # type: ignore[union-attr]
    finally:
        engine.stop()


def test_runtime_fault_writes_the_safe_state_and_stops_executing() -> None:
    recorder = Recorder()
    engine = engine_for(listener=recorder)
    engine.start()
    try:
        engine.writes.put("Level", 80)
        wait_for(lambda: engine.snapshot.values["Pump"] is True, timeout=15)
        engine.writes.put("Divisor", 0)
        wait_for(lambda: engine.state is PlcState.FAULTED, timeout=15)
        assert recorder.faults and recorder.faults[0][0] == "runtime"
        assert "zero" in engine.fault.lower()
        snapshot = wait_for(lambda: engine.snapshot.state is PlcState.FAULTED and engine.snapshot, timeout=15)
        assert snapshot.values["Pump"] is False and snapshot.values["Speed"] == 0  # type: ignore[union-attr]
        late_write = engine.writes.put("Level", 10)  # refused: a faulted PLC takes no writes
        wait_for(lambda: engine.snapshot.applied_write_id >= late_write, timeout=15)
        assert engine.snapshot.values["Level"] == 80
        count = snapshot.values["Count"]  # type: ignore[union-attr]
        time.sleep(0.05)  # a faulted PLC executes nothing: the count must not move
        assert engine.snapshot.values["Count"] == count
    finally:
        engine.stop()


def test_watchdog_aborts_a_stuck_scan_and_faults() -> None:
    recorder = Recorder()
    engine = engine_for(cycle_ms=2, watchdog_ms=30, listener=recorder)
    engine.start()
    try:
        engine.writes.put("Hang", True)
        wait_for(lambda: engine.state is PlcState.FAULTED, timeout=15)
        assert recorder.faults[0][0] == "watchdog"
        snapshot = wait_for(lambda: engine.snapshot.state is PlcState.FAULTED and engine.snapshot, timeout=15)
        assert snapshot.values["Speed"] == 0  # type: ignore[union-attr]
    finally:
        engine.stop(timeout=15)
    assert engine.state is PlcState.STOPPED  # the scan thread was freed, not left spinning


def test_overruns_skip_cycles_instead_of_bursting() -> None:
    recorder = Recorder()
    engine = engine_for(cycle_ms=1, watchdog_ms=2000, listener=recorder)
    engine.start()
    try:
        engine.writes.put("Loops", 30000)  # a scan far longer than the 1 ms cycle
        wait_for(lambda: recorder.overruns >= 5, timeout=10)
        scans_before = len(recorder.lateness)
        time.sleep(0.1)
        scans = len(recorder.lateness) - scans_before
        assert scans < 100  # 100 ms at 1 ms would be 100 scans: long scans skip cycles
    finally:
        engine.stop()


def test_online_change_keeps_values_and_refuses_what_it_cannot_carry() -> None:
    engine = engine_for()
    engine.start()
    try:
        wait_for(lambda: engine.snapshot.values["Count"] >= 10, timeout=15)
        result = engine.request_swap(compile_source(MIXER_V2, filename="mixer.st")).result(timeout=15)
        assert result.accepted, result.reason
        count_after = engine.snapshot.values["Count"]
        assert count_after >= 10  # not restarted from zero
        refused = engine.request_swap(compile_source(MIXER_RETYPED, filename="mixer.st")).result(timeout=15)
        assert not refused.accepted and "Starts" in refused.reason
        assert engine.program.revision == result.revision
    finally:
        engine.stop()


def test_retained_values_restored_and_captured() -> None:
    engine = engine_for(restore={"Starts": 41, "Count": 999})  # only RETAIN variables are restored
    engine.start()
    try:
        assert engine.retained_values == {"Starts": 41}
        engine.writes.put("Starts", 42)
        wait_for(lambda: engine.retained_values.get("Starts") == 42, timeout=15)
        assert engine.snapshot.values["Count"] < 999
    finally:
        engine.stop()
    assert engine.retained_values == {"Starts": 42}
