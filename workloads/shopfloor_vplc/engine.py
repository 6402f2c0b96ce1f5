"""The scan engine: one dedicated thread running the program on a fixed cycle of absolute deadlines.

Each cycle, at the scan boundary: copy the latest field inputs and queued server writes into the program, apply a
pending online change, execute one scan, publish a snapshot of the published variables, hand changed field outputs
to the I/O scanner. A fault (runtime error, field device loss, watchdog expiry) or a stop writes the safe state to
the field outputs and the variables before anything else.

Hot standby: a primary with `sync_interval_ns` captures its whole state (an image, see shopfloor_st.state_image)
after a completed scan and hands it to `EngineListener.state_captured`. A follower (`follower=True`) keeps the cycle
but executes nothing: at each boundary it refuses client writes, applies the newest image `follow()` gave it and
publishes a snapshot; it neither reads nor writes the field. `lead()` makes it the primary from the next boundary
on, continuing from the state it mirrored.
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from shopfloor_vplc import clock
from shopfloor_vplc.image import EMPTY_SNAPSHOT, EngineView, PlcState, Snapshot, WriteQueue
from shopfloor_vplc.log_throttle import LogThrottle
from shopfloor_vplc.program import InstanceLike, ProgramLike, ResolvedAccess
from shopfloor_vplc.realtime import RealtimeStatus, apply_realtime
from shopfloor_vplc.watchdog import ScanAborted, Watchdog

log = logging.getLogger(__name__)

# Long cycles are slept in slices so a stop request never waits a whole cycle.
MAX_SLEEP_SLICE_NS = 100_000_000
# A woken scan thread waits for the interpreter lock until its holder's switch interval ends (5 ms by default):
# that wait is wake-up lateness. A 0.5 ms interval bounds it while another thread of the scan's process is busy.
GIL_SWITCH_INTERVAL_S = 0.0005
# A standby refusing every image of a primary on another revision must not flood the log: once a minute per reason.
REFUSED_IMAGE_LOG_INTERVAL_S = 60.0
STANDBY_WRITE_REFUSAL = "this runtime is the standby"


class FieldIO(Protocol):
    """The I/O scanner as the scan sees it; see shopfloor_vplc.field_io."""

    @property
    def output_variables(self) -> Sequence[str]: ...
    def latest_inputs(self) -> Mapping[str, Any]: ...
    def lost_device(self) -> str | None: ...
    def write_outputs(self, values: Mapping[str, Any]) -> None: ...
    def enter_safe_state(self, values: Mapping[str, Any]) -> None: ...
    def resume(self) -> None: ...


class EngineListener:
    """Hooks called on the scan thread (or the watchdog thread for faults): keep them short and non-blocking."""

    def scan_completed(self, lateness_ns: int, duration_ns: int) -> None: ...
    def overrun(self, missed_cycles: int) -> None: ...
    def faulted(self, kind: str, reason: str) -> None: ...
    def state_changed(self, state: PlcState, revision: str, fault: str) -> None: ...
    def write_rejected(self, path: str, reason: str) -> None: ...
    def state_captured(self, image: bytes, revision: str) -> None:
        """A state image of `revision` for the standby (every `sync_interval_ns`, after a completed scan)."""


@dataclass(frozen=True)
class SwapResult:
    accepted: bool
    revision: str
    reason: str = ""


@dataclass(frozen=True)
class EngineConfig:
    cycle_ns: int
    watchdog_ns: int
    published: Sequence[str] = ()
    safe_state: Mapping[str, Any] | None = None
    retain: bool = False  # the program has RETAIN variables to capture
    retain_capture_ns: int = 2_000_000_000
    realtime_priority: int = 0
    sync_interval_ns: int = 0  # > 0: capture a state image for the standby this often (at most once per cycle)
    follower: bool = False  # start as the hot standby: mirror images, execute nothing until lead()


class ScanEngine(EngineView):
    def __init__(
        self,
        program: ProgramLike,
        config: EngineConfig,
        *,
        field_io: FieldIO | None = None,
        listener: EngineListener | None = None,
        restore: Mapping[str, Any] | None = None,
        clock_ns: Callable[[], int] = clock.now_ns,
    ) -> None:
        self.config = config
        self.program = program
        self.writes = WriteQueue()
        self.field_io = field_io
        self.listener = listener or EngineListener()
        self.realtime: RealtimeStatus | None = None
        self._clock = clock_ns
        self._instance: InstanceLike = program.instantiate()
        self._access = ResolvedAccess(self._instance)
        self._restore = dict(restore or {})
        self._snapshot = EMPTY_SNAPSHOT
        self._state = PlcState.LOADING
        self._fault = ""
        self._state_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._pending_swap: tuple[ProgramLike, concurrent.futures.Future[SwapResult]] | None = None
        self._retained_values: dict[str, Any] = {}
        self._last_retain_capture_ns = 0
        self._applied_write_id = 0
        self._seq = 0
        self._following = config.follower  # what was asked; the scan thread acts on it at the next boundary
        self._mirroring = config.follower  # what the scan thread does (it alone changes this)
        self._pending_image: collections.deque[bytes] = collections.deque(maxlen=1)  # the newest image wins
        self._last_sync_capture_ns: int | None = None
        self._refusals_logged = LogThrottle(REFUSED_IMAGE_LOG_INTERVAL_S)
        self._thread = threading.Thread(target=self._run, name="vplc-scan", daemon=True)
        self.watchdog = Watchdog(config.watchdog_ns, self._watchdog_expired)
        self.started = threading.Event()

    # -- control ----------------------------------------------------------------------------------------------------
    def start(self) -> None:
        sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_INTERVAL_S))
        self._thread.start()
        self.watchdog.start(self._thread)
        self.started.wait(5)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop at the next scan boundary: safe state to field outputs and variables first, then the thread ends."""
        self._enter_safe_outputs()
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.watchdog.stop()

    def request_swap(self, program: ProgramLike) -> concurrent.futures.Future[SwapResult]:
        """Swap in `program` at the next scan boundary, keeping state through `migrate_from`."""
        future: concurrent.futures.Future[SwapResult] = concurrent.futures.Future()
        previous, self._pending_swap = self._pending_swap, (program, future)
        if previous is not None:
            previous[1].set_result(SwapResult(False, previous[0].revision, "superseded by a newer revision"))
        self._wake.set()
        return future

    def follow(self, image: bytes) -> None:
        """Hand the standby the primary's newest state image (any thread, never blocks); it replaces one not yet
        applied and is applied at the next boundary. Ignored once this engine leads."""
        if self._following:
            self._pending_image.append(image)

    def lead(self) -> None:
        """Stop following (any thread): from the next boundary on, read the field and execute the program, starting
        from the newest image received. One-way: a leading engine never follows again."""
        self._following = False

    # -- the scan thread --------------------------------------------------------------------------------------------
    def _run(self) -> None:
        self.realtime = apply_realtime(self.config.realtime_priority)
        self._restore_retained()
        self._set_state(PlcState.RUNNING, "")
        self._publish()
        self.started.set()
        deadline = self._clock()
        while not self._stop.is_set():
            try:
                if self._state is PlcState.FAULTED:
                    self._wait_while_faulted()
                    deadline = self._clock()
                    continue
                deadline = self._cycle(deadline)
            except ScanAborted:
                self.watchdog.scan_finished()
                self._after_fault()
            except Exception as exc:  # a bug around the scan (not in the program) faults the PLC, never kills it
                log.exception("scan engine error")
                self.watchdog.scan_finished()
                self._fault_now("internal", f"{type(exc).__name__}: {exc}")
        self._shutdown()

    def _cycle(self, deadline: int) -> int:
        self._sleep_until(deadline)
        if self._stop.is_set():
            return deadline
        woke = self._clock()
        if self._mirroring:
            if self._following:
                return self._mirror_cycle(deadline)
            self._take_over(deadline)
        if not self._boundary():
            return deadline
        self.watchdog.scan_started(woke)
        try:
            self._instance.scan(deadline)
        except ScanAborted:
            raise
        except Exception as exc:  # a RuntimeFault, or any bug in generated code, faults the PLC: never guess
            self.watchdog.scan_finished()
            self._fault_now("runtime", f"{type(exc).__name__}: {exc}")
            return deadline
        self.watchdog.scan_finished()
        self._publish()
        if self.field_io is not None:
            self.field_io.write_outputs({name: self._access.get(name) for name in self.field_io.output_variables})
        if self.config.sync_interval_ns > 0:
            self._capture_for_standby(deadline)
        finished = self._clock()
        self.listener.scan_completed(woke - deadline, finished - woke)
        return self._next_deadline(deadline, finished)

    def _next_deadline(self, deadline: int, finished: int) -> int:
        deadline += self.config.cycle_ns
        if finished > deadline:
            missed = (finished - deadline) // self.config.cycle_ns + 1
            deadline += missed * self.config.cycle_ns
            self.listener.overrun(missed)
        return deadline

    # -- hot standby ------------------------------------------------------------------------------------------------
    def _mirror_cycle(self, deadline: int) -> int:
        """A standby's boundary: no field I/O, no scan, no watchdog; the primary's newest state, published."""
        for write_id, path, _ in self.writes.drain():
            self.listener.write_rejected(path, STANDBY_WRITE_REFUSAL)  # the primary owns the variables
            self._applied_write_id = write_id
        if self._pending_swap is not None:
            self._swap(*self._pending_swap)  # both pods get the new revision; its images follow
        self._apply_pending_image(deadline)
        now = self._clock()
        if self.config.retain and now - self._last_retain_capture_ns >= self.config.retain_capture_ns:
            self._capture_retained(now)
        self._publish()
        return self._next_deadline(deadline, self._clock())

    def _take_over(self, deadline: int) -> None:
        """The first boundary after lead(): the newest image received still counts, then this engine executes."""
        self._apply_pending_image(deadline)
        self._mirroring = False
        log.info("leading from the mirrored state (%d images applied, %d refused)", self.images_applied,
                 self.images_refused)  # fmt: skip

    def _apply_pending_image(self, now: int) -> None:
        try:
            image = self._pending_image.popleft()
        except IndexError:
            return
        try:
            self._instance.restore_state(image, now)  # scan-clock times rebased onto this boundary
        except Exception as exc:  # another revision, or corrupt: keep the previous state, never fault a standby
            self.images_refused += 1
            self._image_refused(str(getattr(exc, "reason", type(exc).__name__)), str(exc))
            return
        self.images_applied += 1
        self._images_counted()

    def _images_counted(self) -> None:
        """Hook for the hosted engine, which reports the counts to its parent."""

    def _image_refused(self, reason: str, message: str) -> None:
        self._images_counted()
        if self._refusals_logged.admit(reason) is not None:
            log.warning("state image refused (%d so far): %s", self.images_refused, message)

    def _capture_for_standby(self, scan_ns: int) -> None:
        """After a completed scan: an image relative to that scan's time, every sync interval."""
        last = self._last_sync_capture_ns
        if last is not None and scan_ns - last < self.config.sync_interval_ns:
            return
        self._last_sync_capture_ns = scan_ns
        self.listener.state_captured(self._instance.capture_state(scan_ns), self.program.revision)

    def _boundary(self) -> bool:
        """Everything that enters the program between two scans; False when the PLC faulted instead."""
        if self.field_io is not None:
            lost = self.field_io.lost_device()
            if lost is not None:
                self._fault_now("field-device-lost", f"field device {lost} lost")
                return False
            for name, value in self.field_io.latest_inputs().items():
                self._access.set(name, value)
        for write_id, path, value in self.writes.drain():
            try:
                self._access.set(path, value)
            except Exception as exc:  # a bad value from a client is refused, the scan goes on
                self.listener.write_rejected(path, str(exc))
            self._applied_write_id = write_id
        if self._pending_swap is not None:
            self._swap(*self._pending_swap)
        now = self._clock()
        if self.config.retain and now - self._last_retain_capture_ns >= self.config.retain_capture_ns:
            self._capture_retained(now)
        return True

    def _swap(self, program: ProgramLike, future: concurrent.futures.Future[SwapResult]) -> None:
        self._pending_swap = None
        try:
            instance = program.migrate_from(self._instance, self.program)
        except Exception as exc:  # IncompatibleChange, or anything else: the old program keeps running
            future.set_result(SwapResult(False, program.revision, str(exc)))
            return
        self.program, self._instance, self._access = program, instance, ResolvedAccess(instance)
        self._set_state(self._state, self._fault)
        future.set_result(SwapResult(True, program.revision))

    def _publish(self) -> None:
        self._seq += 1
        get = self._access.get
        values = {name: get(name) for name in self.config.published}
        self._snapshot = Snapshot.of(
            self._seq, values, self._applied_write_id, self._state, self.program.revision, self._fault, self._clock()
        )

    def _sleep_until(self, deadline: int) -> None:
        while not self._stop.is_set():
            remaining = deadline - self._clock()
            if remaining <= 0:
                return
            clock.sleep_until(deadline if remaining <= MAX_SLEEP_SLICE_NS else self._clock() + MAX_SLEEP_SLICE_NS)

    # -- retain -----------------------------------------------------------------------------------------------------
    def _capture_retained(self, now: int) -> None:
        self._retained_values = self._instance.retained_values()
        self._last_retain_capture_ns = now

    def _restore_retained(self) -> None:
        if self._restore:
            for problem in self._instance.load_retained(self._restore):
                log.warning("retained value not restored: %s", problem)  # e.g. a checkpoint of another version
        if self.config.retain:
            self._capture_retained(self._clock())

    # -- faults and safe state --------------------------------------------------------------------------------------
    def _enter_safe_outputs(self) -> None:
        # A standby never drove the outputs: its safe state would override the primary's on the same devices
        if self.field_io is not None and not self._mirroring:
            self.field_io.enter_safe_state(self.config.safe_state or {})

    def _fault_now(self, kind: str, reason: str) -> None:
        """Fault on the scan thread: outputs first, then variables."""
        self._declare_fault(kind, reason)
        self._after_fault()

    def _declare_fault(self, kind: str, reason: str) -> bool:
        with self._state_lock:
            if self._state is PlcState.FAULTED:
                return False
            self._enter_safe_outputs()
            self._set_state(PlcState.FAULTED, reason)
        log.error("PLC faulted (%s): %s", kind, reason)
        self.listener.faulted(kind, reason)
        return True

    def _after_fault(self) -> None:
        self._apply_safe_variables()
        self._publish()

    def _apply_safe_variables(self) -> None:
        for name, value in (self.config.safe_state or {}).items():
            try:
                self._access.set(name, value)
            except Exception as exc:
                log.error("safe state for %s not applied: %s", name, exc)

    def _watchdog_expired(self, elapsed_ns: int) -> None:
        """Called on the watchdog thread while a scan is stuck: fault, then ask the program to stop its loops."""
        if self._declare_fault("watchdog", f"scan exceeded the watchdog ({elapsed_ns / 1e6:.1f} ms)"):
            abort = getattr(self._instance, "abort", None)
            if abort is not None:
                abort()

    def _wait_while_faulted(self) -> None:
        """A faulted PLC executes nothing; a new program revision (online change) restarts it."""
        self._wake.wait(0.1)
        self._wake.clear()
        refused = self.writes.drain()
        if refused:  # nothing runs to take client writes: refuse them rather than let them pile up
            for _, path, _ in refused:
                self.listener.write_rejected(path, "the PLC is faulted")
            self._applied_write_id = refused[-1][0]
            self._publish()
        if self._pending_swap is None or self._stop.is_set():
            return
        program, future = self._pending_swap
        self._swap(program, future)
        if future.result().accepted:
            resume = getattr(self._instance, "resume", None)
            if resume is not None:
                resume()
            if self.field_io is not None:
                self.field_io.resume()  # outputs follow the program again
            self._set_state(PlcState.RUNNING, "")

    def _set_state(self, state: PlcState, fault: str) -> None:
        self._state, self._fault = state, fault
        self.listener.state_changed(state, self.program.revision, fault)

    def _shutdown(self) -> None:
        self._apply_safe_variables()
        if self.config.retain:
            self._capture_retained(self._clock())
        self._set_state(PlcState.STOPPED, self._fault)
        self._publish()
