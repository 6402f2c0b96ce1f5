"""Ending asyncio tasks for certain.

On Python 3.11, `asyncio.wait_for` (pymodbus awaits every answer and every connection with it) returns the result
instead of raising when a cancellation arrives in the loop iteration the awaited answer does. A task cancelled once
at that moment carries on: a poll loop polls on forever, an output writer waits for the next outputs forever, and
whoever awaits the task after cancelling it once waits forever with it. `cancel_and_wait` cancels again until the
task has ended, and gives up (logged) after a bounded time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)

RECANCEL_INTERVAL_S = 0.05


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]], what: str, patience_s: float = 5.0) -> bool:
    """Cancel `tasks` and return True once all of them ended, or False (logged) when some are still running after
    `patience_s`. A task that is still running after a cancellation is cancelled again every few tens of
    milliseconds. Errors the tasks ended with are logged, not raised."""
    tasks = list(tasks)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience_s
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        remaining = deadline - loop.time()
        if remaining <= 0:
            names = ", ".join(sorted(task.get_name() for task in pending))
            log.error("%s did not end within %.1f s of being cancelled: %s", what, patience_s, names)
            return False
        _, pending = await asyncio.wait(pending, timeout=min(RECANCEL_INTERVAL_S, remaining))
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: task %s ended with %r", what, task.get_name(), task.exception())
    return True
