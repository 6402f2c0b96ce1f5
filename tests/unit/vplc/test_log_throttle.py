"""The log throttle: one line per key and interval, the rest counted."""

from __future__ import annotations

from shopfloor_vplc.log_throttle import LogThrottle


def test_one_line_per_key_and_interval_with_the_held_back_count() -> None:
    now = [100.0]
    throttle = LogThrottle(10.0, clock=lambda: now[0])
    assert throttle.admit("revision") == 0
    assert throttle.admit("revision") is None
    assert throttle.admit("revision") is None
    assert throttle.admit("corrupt") == 0, "each key has its own interval"
    now[0] += 10.0
    assert throttle.admit("revision") == 2
    assert throttle.admit("revision") is None
