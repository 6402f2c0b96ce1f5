"""The primary's gate and the state-sync frames (pure: the lock is a recorder of what the gate asks of it, the clock
is the test's)."""

from __future__ import annotations

import asyncio
import contextlib
import random

import pytest

from shopfloor_api.runtime_contract import ANNOTATION_STANDBY, StandbyTiming
from shopfloor_vplc.hot_standby import (
    ACK,
    IMAGE,
    FrameError,
    StandbyGate,
    advertised_endpoint,
    encode_frame,
    parse_endpoint,
    read_frame,
)
from tests.unit.vplc.lock_recorder import LockRecorder

pytestmark = pytest.mark.timeout(30)

TIMING = StandbyTiming(takeover_after_s=0.5, sync_interval_s=0.02)  # drive window 0.4 s


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def gate_with(clock: Clock) -> tuple[StandbyGate, LockRecorder]:
    lock = LockRecorder()
    gate = StandbyGate(lock, TIMING, clock)  # type: ignore[arg-type]
    return gate, lock


async def test_without_a_standby_the_primary_drives_and_names_none() -> None:
    clock = Clock()
    gate, lock = gate_with(clock)
    assert gate.may_drive(clock.now)
    assert lock.annotations == {ANNOTATION_STANDBY: ""}
    assert lock.gates == [gate.may_drive]


async def test_an_acknowledging_standby_is_named_and_gates_from_that_moment() -> None:
    clock = Clock()
    gate, lock = gate_with(clock)
    gate.acknowledged("plc-b", clock.now)
    assert lock.annotations[ANNOTATION_STANDBY] == "plc-b"
    assert gate.in_sync
    clock.now += 0.39
    assert gate.may_drive(clock.now)
    clock.now += 0.02  # 0.41 s after the newest acknowledged image was sent: the standby may take over at 0.5 s
    assert not gate.may_drive(clock.now)
    gate.acknowledged("plc-b", clock.now - 0.01)
    assert gate.may_drive(clock.now), "a fresh acknowledgement lets the primary drive again"


async def test_a_silent_standby_is_unnamed_and_holds_outputs_until_that_write_succeeded() -> None:
    clock = Clock()
    gate, lock = gate_with(clock)
    gate.acknowledged("plc-b", clock.now)
    lock.written()  # the Lease names plc-b
    clock.now += 0.45
    await asyncio.sleep(0)  # the timer was set on the real loop: check it now
    gate._check()
    assert lock.annotations[ANNOTATION_STANDBY] == ""
    assert not gate.may_drive(clock.now), "still named in the Lease: it may be taking over right now"
    lock.written()
    assert gate.may_drive(clock.now), "the Lease names it no more: it can no longer take over"
    assert not gate.in_sync


async def test_a_write_that_still_names_the_standby_keeps_the_gate() -> None:
    clock = Clock()
    gate, lock = gate_with(clock)
    gate.acknowledged("plc-b", clock.now)
    clock.now += 0.45
    gate._check()
    lock.annotations[ANNOTATION_STANDBY] = "plc-b"  # a write that started before the standby fell silent
    lock.written()
    assert not gate.may_drive(clock.now)


async def test_a_new_standby_replaces_the_old_one_only_once_the_lease_says_so() -> None:
    clock = Clock()
    gate, lock = gate_with(clock)
    gate.acknowledged("plc-b", clock.now)
    lock.written()
    clock.now += 0.1
    gate.acknowledged("plc-c", clock.now)
    assert lock.annotations[ANNOTATION_STANDBY] == "plc-c"
    clock.now += 0.35  # plc-b's acknowledgements are stale now, plc-c's are fresh
    assert not gate.may_drive(clock.now), "plc-b is still named in the Lease as far as anyone knows"
    lock.written()
    assert gate.may_drive(clock.now)


async def test_stale_acknowledgements_of_an_unnamed_standby_do_not_name_it() -> None:
    clock = Clock()
    gate, lock = gate_with(clock)
    gate.acknowledged("plc-b", clock.now - 1.0)
    assert lock.annotations[ANNOTATION_STANDBY] == ""
    assert gate.may_drive(clock.now)


def test_timing_rejects_a_sync_interval_too_long_for_the_takeover() -> None:
    with pytest.raises(ValueError, match="syncInterval"):
        StandbyTiming(takeover_after_s=0.5, sync_interval_s=0.2)
    with pytest.raises(ValueError, match="takeoverAfter"):
        StandbyTiming(takeover_after_s=0.01)


def test_endpoints() -> None:
    assert advertised_endpoint("0.0.0.0", "127.0.31.7", 8093) == "127.0.31.7:8093"
    assert advertised_endpoint("127.0.0.1", "127.0.31.7", 40000) == "127.0.0.1:40000"
    assert advertised_endpoint("::", "::1", 8093) == "[::1]:8093"
    assert parse_endpoint("[::1]:8093") == ("::1", 8093)
    assert parse_endpoint("127.0.31.7:8093") == ("127.0.31.7", 8093)
    assert parse_endpoint("") is None
    assert parse_endpoint("no-port") is None


async def frames_of(data: bytes) -> list[tuple[bytes, bytes]]:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    found = []
    while True:
        try:
            found.append(await read_frame(reader))
        except asyncio.IncompleteReadError:
            return found


async def test_frames_round_trip() -> None:
    data = encode_frame(IMAGE, (7).to_bytes(8, "big") + b"state") + encode_frame(ACK, (7).to_bytes(8, "big"))
    assert await frames_of(data) == [(IMAGE, (7).to_bytes(8, "big") + b"state"), (ACK, (7).to_bytes(8, "big"))]


async def test_garbage_ends_a_connection_with_a_frame_error_never_anything_else() -> None:
    generator = random.Random(61131)
    for _ in range(300):
        data = bytes(generator.randrange(256) for _ in range(generator.randrange(1, 64)))
        with contextlib.suppress(FrameError):
            await frames_of(data)
    with pytest.raises(FrameError, match="length"):
        await frames_of(b"\xff\xff\xff\xff" + b"x" * 10)
