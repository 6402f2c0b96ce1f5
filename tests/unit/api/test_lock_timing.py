"""The lock's timing, derived from the one duration a user sets, and the fence arithmetic on it."""

from __future__ import annotations

import pytest
from kubernetes.client import ApiClient

from shopfloor_api.runtime_contract import LockTiming
from shopfloor_inpod.lease import FenceClock, LeaseLock, LockState


def test_the_holder_stops_before_anyone_may_take_over() -> None:
    for seconds in (1.0, 3.0, 10.0, 60.0):
        timing = LockTiming(seconds)
        stop_driving = seconds - timing.fence_margin_s
        last_safe_write = seconds - timing.safe_state_margin_s
        takeover = seconds + timing.takeover_margin_s
        assert stop_driving < last_safe_write < seconds < takeover
        # Two renewals fit in before the holder fences: one may be lost.
        assert 2 * timing.renew_interval_s < stop_driving
        assert timing.lease_duration_seconds >= seconds


def test_env_value() -> None:
    assert LockTiming.from_env_value(None).lease_duration_s == 3.0
    assert LockTiming.from_env_value("2.5").lease_duration_seconds == 3
    with pytest.raises(ValueError, match="SHOPFLOOR_LEASE_DURATION"):
        LockTiming.from_env_value("0.2")


def test_fence_clock_counts_from_the_start_of_the_last_successful_renewal() -> None:
    fence = FenceClock(LockTiming(3.0))
    assert not fence.may_drive(0.0)  # never renewed: never drives
    fence.extend(100.0)
    assert fence.may_drive(102.49) and not fence.may_drive(102.5)
    assert fence.may_write_safe_state(102.7) and not fence.may_write_safe_state(102.75)
    fence.extend(99.0)  # a late answer to an older request moves nothing back
    assert fence.drive_deadline() == 102.5


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_the_witness_prolongs_an_unbroken_hold_but_never_revives_a_fenced_runtime() -> None:
    """A runtime fenced by its deadline may already have a successor (handed over before the operator lost the API
    server too), so an "unreachable" answer must not make it drive again; only a renewal can."""
    asked: list[float] = []

    async def api_down_for_the_operator_too() -> bool:
        asked.append(clock.now)
        return False

    clock = Clock()
    api = ApiClient()
    lock = LeaseLock(api, "ns", "plc", "pod-a", LockTiming(3.0), witness=api_down_for_the_operator_too, clock=clock)
    lock._held_once, lock.state = True, LockState.HOLDING
    lock.fence.extend(100.0)
    clock.now = 102.0  # within the hold: the answer extends it
    await lock._ask_witness()
    assert lock.fence.drive_deadline() == 104.5 and lock.may_drive()
    clock.now = 105.0  # the deadline passed unrenewed: fenced
    lock.state = LockState.FENCED
    await lock._ask_witness()
    assert lock.state is LockState.FENCED and not lock.may_drive()
    assert asked == [102.0]  # not even asked once the hold was broken
