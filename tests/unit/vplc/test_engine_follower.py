"""Hot standby in the scan engine: a primary captures state images, a follower mirrors them without executing or
touching the field, and after lead() continues from the mirrored state (counters and timers without a jump)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from shopfloor_st import compile_source
from shopfloor_vplc.engine import STANDBY_WRITE_REFUSAL, EngineConfig, EngineListener, ScanEngine
from shopfloor_vplc.image import PlcState
from shopfloor_vplc.remote_engine import RemoteEngine
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(60)

COUNTER = """
PROGRAM Main
VAR
  Count : DINT;
  Clock : TON;
  Elapsed : TIME;
  Cmd : INT;
  Sensor : INT;
END_VAR
Count := Count + 1;
Clock(IN := TRUE, PT := T#1h);
Elapsed := Clock.ET;
END_PROGRAM
"""
CYCLE_NS = 5_000_000
PUBLISHED = ("Count", "Elapsed", "Cmd", "Sensor")


class FakeFieldIO:
    """The FieldIO protocol, recording what the engine asks of the field."""

    def __init__(self) -> None:
        self.outputs: list[dict[str, Any]] = []
        self.safe_states: list[dict[str, Any]] = []
        self.inputs_read = 0
        self.lost: str | None = None
        self.lock = threading.Lock()

    @property
    def output_variables(self) -> Sequence[str]:
        return ("Count", "Elapsed")

    def latest_inputs(self) -> Mapping[str, Any]:
        self.inputs_read += 1
        return {"Sensor": 7}

    def lost_device(self) -> str | None:
        return self.lost

    def write_outputs(self, values: Mapping[str, Any]) -> None:
        with self.lock:
            self.outputs.append(dict(values))

    def enter_safe_state(self, values: Mapping[str, Any]) -> None:
        self.safe_states.append(dict(values))

    def resume(self) -> None: ...


class Recorder(EngineListener):
    """Captured images (optionally forwarded to a standby), refused writes and faults."""

    def __init__(self, standby: ScanEngine | RemoteEngine | None = None) -> None:
        self.standby = standby
        self.images: list[tuple[bytes, str]] = []
        self.rejected: list[tuple[str, str]] = []
        self.faults: list[tuple[str, str]] = []

    def state_captured(self, image: bytes, revision: str) -> None:
        self.images.append((image, revision))
        if self.standby is not None:
            self.standby.follow(image)

    def write_rejected(self, path: str, reason: str) -> None:
        self.rejected.append((path, reason))

    def faulted(self, kind: str, reason: str) -> None:
        self.faults.append((kind, reason))


def config(**kwargs: Any) -> EngineConfig:
    return EngineConfig(cycle_ns=CYCLE_NS, watchdog_ns=500_000_000, published=PUBLISHED, **kwargs)


def test_follower_mirrors_the_primary_and_leads_without_a_bump() -> None:
    program = compile_source(COUNTER, "counter.st")
    field, standby_events = FakeFieldIO(), Recorder()
    field.lost = "plc-io"  # a lost device must not fault a standby: it does not use the field
    standby = ScanEngine(
        program, config(follower=True, sync_interval_ns=CYCLE_NS), field_io=field, listener=standby_events
    )
    primary_events = Recorder(standby)
    primary = ScanEngine(program, config(sync_interval_ns=CYCLE_NS), listener=primary_events)
    standby.start()
    primary.start()
    try:
        assert standby.following and not primary.following
        wait_for(lambda: standby.images_applied >= 5 and standby.snapshot.values["Count"] >= 10, timeout=20)
        assert primary_events.images and all(rev == program.revision for _, rev in primary_events.images)
        write_id = standby.writes.put("Cmd", 5)
        wait_for(lambda: standby.snapshot.applied_write_id >= write_id, timeout=20)
        assert ("Cmd", STANDBY_WRITE_REFUSAL) in standby_events.rejected
        primary.stop()
        final = primary.snapshot.values
        wait_for(lambda: standby.snapshot.values["Count"] == final["Count"], timeout=20, interval=0.01)
        assert standby.snapshot.values["Elapsed"] == final["Elapsed"]
        assert standby.state is PlcState.RUNNING and not standby_events.faults
        assert field.outputs == [] and field.safe_states == [] and field.inputs_read == 0
        assert standby_events.images == []  # a standby captures nothing for others
        refused_before = standby.images_refused
        field.lost = None
        standby.lead()
        assert not standby.following
        wait_for(lambda: len(field.outputs) >= 5, timeout=20, interval=0.01)
        with field.lock:
            counts = [out["Count"] for out in field.outputs[:5]]
            elapsed = [out["Elapsed"] for out in field.outputs[:5]]
        assert counts == [final["Count"] + k for k in range(1, 6)]  # continues: no reset, no jump
        # The timer continues from the primary's value and keeps running (a stopped timer would repeat its value).
        assert elapsed[0] >= final["Elapsed"], (final["Elapsed"], elapsed)
        assert all(earlier < later for earlier, later in itertools.pairwise(elapsed)), elapsed
        assert standby.snapshot.values["Sensor"] == 7  # field inputs read from the first led scan
        wait_for(lambda: standby_events.images, timeout=20)  # the new primary captures for the next standby
        assert standby.images_refused == refused_before
    finally:
        primary.stop()
        standby.stop()
    assert field.safe_states  # once leading, a stop writes the safe state


def test_refused_images_keep_the_previous_state_and_nothing_executes() -> None:
    program = compile_source(COUNTER, "counter.st")
    other = compile_source(COUNTER.replace("Count + 1", "Count + 2"), "counter.st")
    source = other.instantiate()
    source.scan(0)
    field = FakeFieldIO()
    standby = ScanEngine(program, config(follower=True), field_io=field)
    standby.start()
    try:
        mirrored = program.instantiate()
        for _ in range(3):
            mirrored.scan(0)
        standby.follow(mirrored.capture_state(0))
        wait_for(lambda: standby.images_applied == 1, timeout=20, interval=0.01)
        standby.follow(source.capture_state(0))  # another revision
        wait_for(lambda: standby.images_refused == 1, timeout=20, interval=0.01)
        standby.follow(b"\x00garbage")
        wait_for(lambda: standby.images_refused == 2, timeout=20, interval=0.01)
        assert standby.snapshot.values["Count"] == 3  # the last good image, not executed further
    finally:
        standby.stop()
    assert field.outputs == [] and field.safe_states == []  # a stopping standby leaves the field alone


def test_follow_and_lead_through_the_scan_process() -> None:
    program = compile_source(COUNTER, "counter.st")
    field, standby_events = FakeFieldIO(), Recorder()
    standby = RemoteEngine(program, config(follower=True), field_io=field, listener=standby_events)
    primary_events = Recorder(standby)
    primary = RemoteEngine(program, config(sync_interval_ns=CYCLE_NS), listener=primary_events)
    standby.start()
    primary.start()
    try:
        assert standby.following
        wait_for(lambda: standby.images_applied >= 3 and standby.snapshot.values["Count"] >= 5, timeout=30)
        standby.writes.put("Cmd", 1)
        wait_for(lambda: ("Cmd", STANDBY_WRITE_REFUSAL) in standby_events.rejected, timeout=20)
        primary.stop()
        final = primary.snapshot.values["Count"]
        wait_for(lambda: standby.snapshot.values["Count"] == final, timeout=20, interval=0.01)
        assert field.outputs == []
        standby.lead()
        assert not standby.following
        wait_for(lambda: len(field.outputs) >= 3, timeout=20, interval=0.01)
        assert field.outputs[0]["Count"] == final + 1  # the parent's FieldIO got every output of the first scan
    finally:
        primary.stop()
        standby.stop()


class HeldUpReader(Recorder):
    """Holds this process's reader of the scan process's messages once, as a busy machine can."""

    def __init__(self, hold_s: float) -> None:
        super().__init__()
        self.hold_s, self.held = hold_s, threading.Event()

    def scan_completed(self, lateness_ns: int, duration_ns: int) -> None:
        if not self.held.is_set():
            self.held.set()
            time.sleep(self.hold_s)  # the scenario: the reader thread gets no CPU for this long


def test_a_reader_held_up_is_not_a_frozen_scan_process() -> None:
    """The PLC faults when the scan process stops publishing (a frozen process, see test_scan_placement), not when
    this process reads its messages late: held up for twice the limit, with the messages waiting, it runs on."""
    events = HeldUpReader(hold_s=2.5)
    engine = RemoteEngine(compile_source(COUNTER, "counter.st"), config(), listener=events)
    engine.start()
    try:
        wait_for(events.held.is_set, timeout=20)
        counted = engine.snapshot.values["Count"]
        wait_for(lambda: engine.snapshot.values["Count"] > counted + 10, timeout=20)  # read again, caught up
        assert events.faults == [] and engine.state is PlcState.RUNNING, (events.faults, engine.fault)
    finally:
        engine.stop()
