"""cancel_and_wait: a task that carries on after a cancellation is cancelled again; one that never ends is given up
on in bounded time; the caller itself stays cancellable."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from shopfloor_vplc.cancelling import cancel_and_wait
from tests.support.waiting import async_wait_for, bounded


class Stubborn:
    """A task that carries on after its first `times` cancellations, as a poll loop does when wait_for returns the
    answer instead of raising; `release()` lets the next cancellation end it."""

    def __init__(self, times: int) -> None:
        self.times = times
        self.task: asyncio.Task[None]

    @classmethod
    async def started(cls, times: int) -> Stubborn:
        stubborn = cls(times)
        running = asyncio.Event()
        stubborn.task = asyncio.create_task(stubborn.run(running), name=f"shrugs-{times}")
        await bounded(running.wait(), "the task to start")
        return stubborn

    async def run(self, running: asyncio.Event) -> None:
        running.set()
        while self.times > 0:
            self.times -= 1
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.get_running_loop().create_future()  # until cancelled
        await asyncio.get_running_loop().create_future()  # until cancelled

    async def release(self) -> None:
        self.times = 0
        assert await cancel_and_wait([self.task], "the released task") is True


async def test_a_task_that_carries_on_after_a_cancellation_is_cancelled_until_it_ends() -> None:
    tasks = [(await Stubborn.started(times)).task for times in (0, 1, 3)]
    assert await bounded(cancel_and_wait(tasks, "the test's tasks"), "the tasks to end") is True
    assert [task.cancelled() for task in tasks] == [True, True, True]


async def test_a_task_that_never_ends_is_given_up_on_and_named(caplog: pytest.LogCaptureFixture) -> None:
    stubborn = await Stubborn.started(10_000)
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        gave_up = cancel_and_wait([stubborn.task], "the stubborn part", patience_s=0.3)
        assert await bounded(gave_up, "giving up") is False
        assert loop.time() - started >= 0.3
        assert not stubborn.task.done()
        assert any("the stubborn part" in r.getMessage() and "shrugs-10000" in r.getMessage() for r in caplog.records)
    finally:
        await stubborn.release()


async def test_the_caller_can_be_cancelled_while_it_waits() -> None:
    stubborn = await Stubborn.started(10_000)
    waiting = asyncio.create_task(cancel_and_wait([stubborn.task], "the stubborn part", patience_s=60))
    try:
        await async_wait_for(lambda: _true(stubborn.times < 10_000), timeout=5, what="a first cancellation")
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await bounded(waiting, "the cancelled wait to end", timeout=5)
    finally:
        await stubborn.release()


async def test_an_error_a_task_ended_with_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    async def fails() -> None:
        raise ValueError("bad answer")

    task = asyncio.create_task(fails(), name="failing")
    await asyncio.wait({task})
    with caplog.at_level(logging.ERROR):
        assert await cancel_and_wait([task], "the part") is True
    assert [r.getMessage() for r in caplog.records] == ["the part: task failing ended with ValueError('bad answer')"]


async def _true(value: bool) -> bool:
    return value
