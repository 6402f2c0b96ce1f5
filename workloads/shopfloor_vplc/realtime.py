"""Real-time scheduling for the scan thread: SCHED_FIFO and locked memory, when the process is permitted.

Neither is required to run: a laptop or a pod without SYS_NICE/IPC_LOCK runs with normal scheduling, and the
outcome is reported (metric and state) rather than failing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from dataclasses import dataclass

MCL_CURRENT = 1
MCL_FUTURE = 2


@dataclass(frozen=True)
class RealtimeStatus:
    requested_priority: int
    fifo_granted: bool
    memory_locked: bool
    detail: str
    # The CPUs the scan thread may run on: one, not shared with system CPUs, under the static CPU manager.
    cpus: tuple[int, ...] = ()

    @property
    def granted(self) -> bool:
        """True when everything that was asked for was granted (nothing asked counts as granted)."""
        return self.requested_priority == 0 or (self.fifo_granted and self.memory_locked)


def lock_memory() -> tuple[bool, str]:
    """mlockall(MCL_CURRENT | MCL_FUTURE): page faults in the scan would cost milliseconds."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False, "mlockall unavailable: no libc"
    libc = ctypes.CDLL(name, use_errno=True)
    if libc.mlockall(MCL_CURRENT | MCL_FUTURE) != 0:
        return False, f"mlockall refused: {os.strerror(ctypes.get_errno())}"
    return True, "memory locked"


def set_fifo_priority(priority: int) -> tuple[bool, str]:
    """SCHED_FIFO for the calling thread (pid 0 = this thread on Linux)."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (OSError, AttributeError) as exc:
        return False, f"SCHED_FIFO {priority} refused: {exc}"
    return True, f"SCHED_FIFO {priority}"


def scan_cpus() -> tuple[int, ...]:
    """The calling thread's CPU affinity."""
    try:
        return tuple(sorted(os.sched_getaffinity(0)))
    except (OSError, AttributeError):
        return ()


def format_cpus(cpus: tuple[int, ...]) -> str:
    return ",".join(str(cpu) for cpu in cpus) or "unknown"


def apply_realtime(priority: int) -> RealtimeStatus:
    """Apply SCHED_FIFO at `priority` (1..99) to the calling thread and lock memory; 0 asks for neither."""
    cpus = scan_cpus()
    on_cpus = f"CPUs {format_cpus(cpus)}"
    if priority <= 0:
        return RealtimeStatus(0, False, False, f"normal scheduling (realtimePriority 0); {on_cpus}", cpus)
    fifo, fifo_detail = set_fifo_priority(priority)
    locked, lock_detail = lock_memory()
    return RealtimeStatus(priority, fifo, locked, f"{fifo_detail}; {lock_detail}; {on_cpus}", cpus)
