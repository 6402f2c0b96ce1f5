from __future__ import annotations

from shopfloor_vplc import clock
from shopfloor_vplc.realtime import apply_realtime


def test_sleep_until_wakes_at_the_deadline_not_before() -> None:
    for _ in range(20):
        deadline = clock.now_ns() + 2_000_000
        clock.sleep_until(deadline)
        assert clock.now_ns() >= deadline


def test_past_deadline_returns_at_once() -> None:
    start = clock.now_ns()
    clock.sleep_until(start - 1_000_000_000)
    assert clock.now_ns() - start < 50_000_000


def test_no_priority_asks_for_nothing_and_counts_as_granted() -> None:
    status = apply_realtime(0)
    assert status.granted and not status.fifo_granted
    assert "normal scheduling" in status.detail
