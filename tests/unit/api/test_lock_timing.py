"""The lock's timing, derived from the one duration a user sets, and the fence arithmetic on it."""

from __future__ import annotations

import pytest

from shopfloor_api.runtime_contract import LockTiming
from shopfloor_inpod.lease import FenceClock


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
