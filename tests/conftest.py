"""Suite-wide settings.

A test still running at its timeout (pytest-timeout's `timeout`, method `thread`) is named on stderr with the stack
of every task of its event loop, so the report shows the await it is stuck in, and those tasks are cancelled: the
test fails and the run goes on. A test that does not end within HARD_GRACE_S more (a blocking call holds its
loop, or a task ignores the cancellation) gets pytest-timeout's own handling: every thread's stack, and the run
ends.

`SHOPFLOOR_TEST_ORDER=reverse` runs the collected tests in reverse order, `SHOPFLOOR_TEST_ORDER=shuffle[:SEED]` in
a shuffled one (the seed is printed in the header): a test that passes only after another one shows up.
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import signal
import sys
import threading
from types import FrameType
from typing import Any

import pytest
import pytest_timeout

ORDER_VARIABLE = "SHOPFLOOR_TEST_ORDER"
HARD_GRACE_S = 15.0


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt("SIGTERM")


def pytest_configure() -> None:
    # A terminated run tears its fixtures down (control plane, brokers, runtimes) like Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)


def _order() -> tuple[str, int | None]:
    """The requested order and, for a shuffle, its seed."""
    order, _, seed = os.environ.get(ORDER_VARIABLE, "").partition(":")
    if order not in ("", "reverse", "shuffle"):
        raise pytest.UsageError(f"{ORDER_VARIABLE}={order!r}: expected reverse or shuffle[:SEED]")
    if order != "shuffle":
        return order, None
    return order, int(seed) if seed else int.from_bytes(os.urandom(2), "big")


ORDER, SEED = _order()


def pytest_report_header() -> str | None:
    if not ORDER:
        return None
    repeat = f" (seed {SEED}: {ORDER_VARIABLE}=shuffle:{SEED} repeats it)" if ORDER == "shuffle" else ""
    return f"{ORDER_VARIABLE}={ORDER}{repeat}"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if ORDER == "reverse":
        items.reverse()
    elif ORDER == "shuffle":
        random.Random(SEED).shuffle(items)


@pytest.hookimpl(tryfirst=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> bool | None:
    """The thread method in two stages: cancel the stuck test's asyncio tasks at the timeout, end the run
    HARD_GRACE_S later if that did not end the test."""
    if settings.method != "thread" or not settings.timeout:
        return None
    soft = threading.Timer(settings.timeout, _cancel_stuck_test, (item, settings.timeout))
    hard = threading.Timer(settings.timeout + HARD_GRACE_S, pytest_timeout.timeout_timer, (item, settings))
    for timer in (soft, hard):
        timer.name = f"timeout {item.nodeid}"
        timer.daemon = True
        timer.start()

    def cancel() -> None:
        for timer in (soft, hard):
            timer.cancel()
            if timer is not threading.current_thread():
                timer.join()

    item.cancel_timeout = cancel  # type: ignore[attr-defined]
    return True


def _cancel_stuck_test(item: pytest.Item, timeout: float) -> None:
    out = sys.__stderr__ or sys.stderr
    print(f"\n+++ {item.nodeid} still running after its {timeout:g} s timeout", file=out)
    loop = _main_thread_loop()
    if loop is None:
        print(f"+++ no event loop running in the main thread: ending the run in {HARD_GRACE_S:g} s", file=out)
        return
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.print_stack(file=out)
    print(f"+++ cancelling these {len(tasks)} tasks; the run ends in {HARD_GRACE_S:g} s unless the test ends", file=out)
    out.flush()
    message = f"{item.nodeid} timed out after {timeout:g} s"
    loop.call_soon_threadsafe(lambda: [task.cancel(message) for task in tasks])


def _main_thread_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop the main thread is running (the test's), never a loop of a fixture's background thread."""
    main = threading.main_thread().ident
    for candidate in gc.get_objects():
        running = isinstance(candidate, asyncio.BaseEventLoop) and candidate.is_running()
        if running and getattr(candidate, "_thread_id", None) == main:
            return candidate
    return None
