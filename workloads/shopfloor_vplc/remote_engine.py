"""The scan engine in its own process, seen from the parent as a ScanEngine (see shopfloor_vplc.scan_host).

The parent keeps the servers, the I/O scanner and the compiled program (for bindings); a reader thread turns the
child's messages into snapshots, metrics, field outputs and safe-state writes. If the child ends unexpectedly,
the PLC is Faulted and the safe state goes to the field outputs.
"""

from __future__ import annotations

import collections
import concurrent.futures
import itertools
import logging
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from multiprocessing.connection import Connection
from typing import Any

from shopfloor_vplc.engine import EngineConfig, EngineListener, FieldIO, SwapResult
from shopfloor_vplc.image import EMPTY_SNAPSHOT, EngineView, PlcState, Snapshot
from shopfloor_vplc.program import ProgramLike
from shopfloor_vplc.realtime import RealtimeStatus
from shopfloor_vplc.scan_host import HostInit

log = logging.getLogger(__name__)

START_TIMEOUT_S = 30.0
MONITOR_MIN_SILENCE_S = 1.0
# In the outbox instead of an image: the sender then sends the newest image held, so a backlog never queues stale ones.
_SEND_NEWEST_IMAGE = ("follow",)


class RemoteWrites:
    """Client writes, numbered as the child's queue numbers them (both count from 1 in the same order)."""

    def __init__(self, engine: RemoteEngine) -> None:
        self._engine = engine
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def put(self, path: str, value: Any) -> int:
        with self._lock:  # the id order must be the pipe order
            write_id = next(self._ids)
            self._engine.send(("write", path, value))
        return write_id


class RemoteEngine(EngineView):
    def __init__(
        self,
        program: ProgramLike,
        config: EngineConfig,
        *,
        field_io: FieldIO | None = None,
        listener: EngineListener | None = None,
        restore: Mapping[str, Any] | None = None,
    ) -> None:
        self.program = program
        self.config = config
        self.field_io = field_io
        self.listener = listener or EngineListener()
        self.writes = RemoteWrites(self)
        self.realtime: RealtimeStatus | None = None
        self._restore = dict(restore or {})
        self._snapshot = EMPTY_SNAPSHOT
        self._state = PlcState.LOADING
        self._fault = ""
        self._retained_values: dict[str, Any] = {}
        self._outbox: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._sender = threading.Thread(target=self._send_forever, name="vplc-scan-host-sender", daemon=True)
        self._following = config.follower
        self._newest_image: collections.deque[bytes] = collections.deque(maxlen=1)
        self._swaps: dict[int, tuple[ProgramLike, concurrent.futures.Future[SwapResult]]] = {}
        self._tokens = itertools.count(1)
        self._started = threading.Event()
        self._stopped = threading.Event()
        self._stopping = False
        self._last_snapshot_at = 0.0
        self._conn: Connection | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self._reader = threading.Thread(target=self._read, name="vplc-scan-host-reader", daemon=True)

    # -- the ScanEngine surface ---------------------------------------------------------------------------------------
    def start(self) -> None:
        outputs = tuple(self.field_io.output_variables) if self.field_io is not None else None
        source = str(getattr(self.program, "source"))  # noqa: B009 - the compiler's Program carries its source
        inputs = dict(self.field_io.latest_inputs()) if self.field_io is not None else None
        init = HostInit(source, str(getattr(self.program, "filename", "<program>")), self.program.entrypoint,
                        self.config, self._restore, outputs, inputs)  # fmt: skip
        # A plain interpreter running the host module: it imports the scan and the compiler, not the servers.
        parent_end, child_end = socket.socketpair()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "shopfloor_vplc.scan_host", str(child_end.fileno())], pass_fds=[child_end.fileno()]
        )
        child_end.close()
        self._conn = Connection(parent_end.detach())
        self._conn.send(init)
        self._sender.start()
        self._reader.start()
        self._last_snapshot_at = time.monotonic()
        threading.Thread(target=self._monitor, name="vplc-scan-monitor", daemon=True).start()
        if not self._started.wait(START_TIMEOUT_S):
            raise RuntimeError("the scan process did not start")
        self.forward_field_inputs()

    def stop(self, timeout: float = 10.0) -> None:
        if self.field_io is not None and not self._following:  # a standby never drove the outputs
            self.field_io.enter_safe_state(self.config.safe_state or {})
        self._stopping = True
        self.send(("stop",))
        self._stopped.wait(timeout)
        self._outbox.put(None)
        if self.process is not None:
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def request_swap(self, program: ProgramLike) -> concurrent.futures.Future[SwapResult]:
        future: concurrent.futures.Future[SwapResult] = concurrent.futures.Future()
        if self._stopped.is_set():
            future.set_result(SwapResult(False, program.revision, self._fault or "the scan process has stopped"))
            return future
        token = next(self._tokens)
        self._swaps[token] = (program, future)
        source = str(getattr(program, "source"))  # noqa: B009
        self.send(("swap", token, source, str(getattr(program, "filename", "<program>")), program.entrypoint))
        return future

    def follow(self, image: bytes) -> None:
        """As ScanEngine.follow: the child applies the newest image at its next boundary. Never blocks."""
        if self._following:
            self._newest_image.append(image)
            self.send(_SEND_NEWEST_IMAGE)

    def lead(self) -> None:
        """As ScanEngine.lead: the child executes from its next boundary on."""
        self._following = False
        self.send(("lead",))

    # -- to the child -------------------------------------------------------------------------------------------------
    def send(self, message: tuple[Any, ...]) -> None:
        """Queue a message for the child. Never blocks: a frozen child must not stall the servers' event loop."""
        self._outbox.put(message)

    def _send_forever(self) -> None:
        while True:
            message = self._outbox.get()
            if message is None or self._conn is None:
                return
            if message is _SEND_NEWEST_IMAGE:
                try:
                    message = ("follow", self._newest_image.popleft())
                except IndexError:
                    continue  # sent with an earlier marker already
            try:
                self._conn.send(message)
            except (BrokenPipeError, OSError):
                return  # the reader reports the child's end

    def forward_field_inputs(self) -> None:
        """Hand the I/O scanner's latest inputs and loss to the child (called whenever a poll completes)."""
        if self.field_io is not None:
            self.send(("inputs", dict(self.field_io.latest_inputs())))
            self.send(("lost", self.field_io.lost_device()))

    # -- from the child -----------------------------------------------------------------------------------------------
    def _read(self) -> None:
        assert self._conn is not None
        while True:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                break
            try:
                self._handle(message)
            except Exception:  # one bad message must not stop the reports
                log.exception("scan process message %r", message[:1])
            if message[0] == "stopped":
                break
        self._stopped.set()
        if not self._stopping:
            self._child_lost()

    def _handle(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "snapshot":
            self._last_snapshot_at = time.monotonic()
            seq, changed, applied, state, revision, fault, taken = message[1]
            values = {**self._snapshot.values, **changed}  # the child sends what changed since its last message
            self._snapshot = Snapshot.of(seq, values, applied, PlcState(state), revision, fault, taken)
            for lateness, duration in message[2]:
                self.listener.scan_completed(lateness, duration)
            if message[3]:
                self.listener.overrun(message[3])
        elif kind == "outputs" and self.field_io is not None:
            self.field_io.write_outputs(message[1])
        elif kind == "safe" and self.field_io is not None:
            self.field_io.enter_safe_state(message[1])
        elif kind == "resume" and self.field_io is not None:
            self.field_io.resume()
        elif kind == "state":
            self._state, self._fault = PlcState(message[1]), message[3]
            self.listener.state_changed(self._state, message[2], message[3])
        elif kind == "fault":
            self.listener.faulted(message[1], message[2])
        elif kind == "rejected":
            self.listener.write_rejected(message[1], message[2])
        elif kind == "captured":
            self.listener.state_captured(message[1], message[2])
        elif kind == "images":
            self.images_applied, self.images_refused = message[1], message[2]
        elif kind == "retained":
            self._retained_values = message[1]
        elif kind == "swapped":
            program, future = self._swaps.pop(message[1])
            result: SwapResult = message[2]
            if result.accepted:
                self.program = program
            future.set_result(result)
        elif kind == "started":
            self.realtime = message[1]
            self._started.set()

    def _monitor(self) -> None:
        """Fault the PLC when the scan process stops publishing while Running (frozen, or stuck where its own
        watchdog cannot act): no snapshot for a cycle plus twice the watchdog time, and at least a second, since this
        process's own threads can be held up that long on a busy machine. The scan's own watchdog stays the fast
        path."""
        limit_s = max(MONITOR_MIN_SILENCE_S, (self.config.cycle_ns + 2 * self.config.watchdog_ns) / 1e9)
        while not self._stopped.wait(min(limit_s / 4, 0.5)):
            silent_s = time.monotonic() - self._last_snapshot_at
            if self._state is PlcState.RUNNING and silent_s > limit_s and not self._stopping:
                if self._unread():
                    continue  # the scan process did publish: this process's reader is behind (a busy machine)
                self._child_lost(f"the scan process stopped publishing for {silent_s * 1000:.0f} ms")
                if self.process is not None:
                    self.process.kill()
                return

    def _unread(self) -> bool:
        """Whether a message from the scan process waits to be read."""
        try:
            return self._conn is not None and self._conn.poll(0)
        except (EOFError, OSError):
            return False

    def _child_lost(self, reason: str = "the scan process ended unexpectedly") -> None:
        if self._state is PlcState.FAULTED and self._fault.startswith("the scan process"):
            return  # already reported by the monitor
        log.error(reason)
        if self.field_io is not None and not self._following:
            self.field_io.enter_safe_state(self.config.safe_state or {})
        self._state, self._fault = PlcState.FAULTED, reason
        last = self._snapshot
        values = dict(last.values)
        values.update({k: v for k, v in (self.config.safe_state or {}).items() if k in values})
        self._snapshot = Snapshot.of(
            last.seq + 1, values, last.applied_write_id, PlcState.FAULTED, last.revision, reason, last.taken_ns
        )
        self.listener.faulted("scan-process", reason)
        self.listener.state_changed(self._state, self.program.revision, reason)
        for _, future in self._swaps.values():
            future.set_result(SwapResult(False, "", reason))
