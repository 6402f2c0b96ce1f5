"""Absolute-deadline sleeping on CLOCK_MONOTONIC.

`clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, ...)` through ctypes wakes at a deadline rather than after a
duration, so a cycle never accumulates drift from the time spent computing it. Where libc has no clock_nanosleep
(non-Linux), `sleep_until` falls back to `time.sleep` on the remaining duration: still deadline-based (no drift),
only less precise on wake-up.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import time

CLOCK_MONOTONIC = 1
TIMER_ABSTIME = 1
NS_PER_S = 1_000_000_000


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def _load_clock_nanosleep() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        func = ctypes.CDLL(name, use_errno=True).clock_nanosleep
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(_Timespec), ctypes.POINTER(_Timespec)]
    func.restype = ctypes.c_int
    return func


_clock_nanosleep = _load_clock_nanosleep()
HAVE_CLOCK_NANOSLEEP = _clock_nanosleep is not None


def now_ns() -> int:
    """The monotonic clock the scan runs on (the same clock clock_nanosleep sleeps against)."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def sleep_until(deadline_ns: int) -> None:
    """Sleep until the monotonic clock reaches `deadline_ns` (returns at once if it already has)."""
    if _clock_nanosleep is None:
        remaining = deadline_ns - now_ns()
        if remaining > 0:
            time.sleep(remaining / NS_PER_S)
        return
    spec = _Timespec(deadline_ns // NS_PER_S, deadline_ns % NS_PER_S)
    while True:
        # ctypes releases the GIL for the duration of the call, so other threads keep running.
        result = _clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, ctypes.byref(spec), None)
        if result != errno.EINTR:
            return
