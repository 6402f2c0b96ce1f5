"""The scan watchdog: a separate thread, since a stuck scan cannot report itself.

When a scan runs longer than the watchdog time, the owner is told (it faults the PLC, writes the safe state to the
field outputs from this thread and asks the program to abort its loops). A scan still running one more watchdog
period later is interrupted with `ScanAborted`, raised asynchronously in the scan thread through
`PyThreadState_SetAsyncExc`: whatever the program is doing stops at its next bytecode.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable

from shopfloor_vplc import clock


class ScanAborted(BaseException):
    """Raised inside the scan thread when the watchdog aborts a scan (BaseException: generated code can't catch it)."""


def interrupt_thread(thread: threading.Thread) -> bool:
    if thread.ident is None:
        return False
    affected = ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(ScanAborted))
    return bool(affected == 1)


class Watchdog:
    def __init__(self, timeout_ns: int, on_expire: Callable[[int], None]) -> None:
        self.timeout_ns = timeout_ns
        self._on_expire = on_expire
        self._scan_started_ns: int | None = None
        self._scan_id = 0
        self._stop = threading.Event()
        self._monitor = threading.Thread(target=self._watch, name="vplc-watchdog", daemon=True)
        self._scan_thread: threading.Thread | None = None
        self._expired_scan = -1
        self._interrupted_scan = -1
        # Check several times per watchdog period, bounded so a long watchdog still reacts within 50 ms.
        self._period_ns = max(200_000, min(timeout_ns // 4, 50_000_000))

    def start(self, scan_thread: threading.Thread) -> None:
        self._scan_thread = scan_thread
        self._monitor.start()

    def stop(self) -> None:
        self._stop.set()
        if self._monitor.is_alive():
            self._monitor.join(1)

    def scan_started(self, now_ns: int) -> None:
        self._scan_id += 1
        self._scan_started_ns = now_ns

    def scan_finished(self) -> None:
        self._scan_started_ns = None

    def _watch(self) -> None:
        next_check = clock.now_ns()
        while not self._stop.is_set():
            next_check += self._period_ns
            clock.sleep_until(next_check)
            started, scan_id = self._scan_started_ns, self._scan_id
            if started is None:
                continue
            elapsed = clock.now_ns() - started
            if elapsed <= self.timeout_ns:
                continue
            if self._expired_scan != scan_id:
                self._expired_scan = scan_id
                self._on_expire(elapsed)
            elif elapsed > 2 * self.timeout_ns and self._interrupted_scan != scan_id and self._scan_id == scan_id:
                self._interrupted_scan = scan_id
                if self._scan_thread is not None:
                    interrupt_thread(self._scan_thread)
