"""Waiting on conditions instead of sleeping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(condition: Callable[[], object], timeout: float = 30.0, interval: float = 0.1, what: str = "") -> object:
    """Poll `condition` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition!r}")
        time.sleep(interval)


async def async_wait_for(
    condition: Callable[[], Awaitable[object]], timeout: float = 30.0, interval: float = 0.05, what: str = ""
) -> object:
    """The asyncio form of wait_for, for an async condition."""
    deadline = time.monotonic() + timeout
    while True:
        result = await condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition!r}")
        await asyncio.sleep(interval)


async def bounded(awaitable: Awaitable[T], what: str, timeout: float = 15.0) -> T:
    """Await `awaitable` for at most `timeout` seconds: a stuck await fails the test at once, naming what it
    waited for, instead of holding the run until the test's own timeout."""
    try:
        async with asyncio.timeout(timeout):
            return await awaitable
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None
