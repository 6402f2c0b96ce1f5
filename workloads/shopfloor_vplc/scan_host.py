"""The scan in a process of its own (the child side of shopfloor_vplc.remote_engine).

Python runs one thread at a time: in one process, a busy server thread holding the interpreter lock delays the scan
thread's wake-up. Here the scan engine runs alone with its watchdog; the servers and the I/O scanner stay in the
parent, which talks to this process over a pipe:

- parent -> child: ("write", path, value), ("inputs", {...}), ("lost", name | None), ("swap", token, source,
  filename, entrypoint), ("follow", image) (hot standby: the primary's newest state image), ("lead",) (the
  standby takes over), ("stop",)
- child -> parent: ("started", realtime), ("snapshot", fields, stats, overruns), ("state", state, revision, fault),
  ("fault", kind, reason), ("rejected", path, reason), ("retained", values), ("outputs", {...}), ("safe", {...}),
  ("resume",), ("swapped", token, result), ("captured", image, revision) (a state image for the standby),
  ("images", applied, refused) (a standby's counts of state images), ("stopped",)
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from shopfloor_vplc.engine import EngineConfig, EngineListener, ScanEngine, SwapResult
from shopfloor_vplc.image import PlcState
from shopfloor_vplc.program import compile_program


@dataclass(frozen=True)
class HostInit:
    source: str
    filename: str
    entrypoint: str
    config: EngineConfig
    restore: dict[str, Any]
    output_variables: tuple[str, ...] | None  # None: no field devices
    inputs: dict[str, Any] | None = None  # the field inputs already polled, for the first scan


class ParentLink:
    """Sends to the parent from any thread of this process."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._lock = threading.Lock()

    def send(self, message: tuple[Any, ...]) -> None:
        with self._lock, contextlib.suppress(BrokenPipeError, EOFError, OSError):  # the parent is gone
            self.conn.send(message)


class FieldProxy:
    """The I/O scanner as the hosted engine sees it; the real one runs in the parent."""

    def __init__(self, link: ParentLink, output_variables: Sequence[str]) -> None:
        self.link = link
        self._outputs = list(output_variables)
        self.inputs: Mapping[str, Any] = {}
        self.lost: str | None = None
        self._last_sent: dict[str, Any] = {}

    @property
    def output_variables(self) -> Sequence[str]:
        return self._outputs

    def latest_inputs(self) -> Mapping[str, Any]:
        return self.inputs

    def lost_device(self) -> str | None:
        return self.lost

    def write_outputs(self, values: Mapping[str, Any]) -> None:
        changed = {name: value for name, value in values.items() if self._last_sent.get(name, _UNSET) != value}
        if changed:
            self._last_sent.update(changed)
            self.link.send(("outputs", changed))

    def enter_safe_state(self, values: Mapping[str, Any]) -> None:
        self.link.send(("safe", dict(values)))

    def resume(self) -> None:
        self._last_sent.clear()
        self.link.send(("resume",))


class ListenerProxy(EngineListener):
    """Scan statistics go with the next snapshot; everything else at once."""

    def __init__(self, link: ParentLink) -> None:
        self.link = link
        self.stats: list[tuple[int, int]] = []
        self.overruns = 0

    def scan_completed(self, lateness_ns: int, duration_ns: int) -> None:
        self.stats.append((lateness_ns, duration_ns))

    def overrun(self, missed_cycles: int) -> None:
        self.overruns += missed_cycles

    def faulted(self, kind: str, reason: str) -> None:
        self.link.send(("fault", kind, reason))

    def state_changed(self, state: PlcState, revision: str, fault: str) -> None:
        self.link.send(("state", state.value, revision, fault))

    def write_rejected(self, path: str, reason: str) -> None:
        self.link.send(("rejected", path, reason))

    def state_captured(self, image: bytes, revision: str) -> None:
        self.link.send(("captured", image, revision))


class HostedEngine(ScanEngine):
    """The scan engine, forwarding each snapshot and retain capture to the parent."""

    link: ParentLink
    proxy: ListenerProxy
    _sent_values: dict[str, Any] | None = None

    def _publish(self) -> None:
        super()._publish()
        snapshot = self.snapshot
        # Only the values that changed since the last message: most variables of a large program hold still.
        last = self._sent_values or {}
        changed = {name: value for name, value in snapshot.values.items() if last.get(name, _UNSET) != value}
        self._sent_values = dict(snapshot.values)
        fields = (
            snapshot.seq,
            changed,
            snapshot.applied_write_id,
            snapshot.state.value,
            snapshot.revision,
            snapshot.fault,
            snapshot.taken_ns,
        )
        stats, self.proxy.stats = self.proxy.stats, []
        overruns, self.proxy.overruns = self.proxy.overruns, 0
        self.link.send(("snapshot", fields, stats, overruns))

    def _images_counted(self) -> None:
        self.link.send(("images", self.images_applied, self.images_refused))

    def _capture_retained(self, now: int) -> None:
        previous = self.retained_values
        super()._capture_retained(now)
        if self.retained_values != previous:
            self.link.send(("retained", self.retained_values))


def serve(conn: Connection, init: HostInit) -> None:
    """The child process's main: run the engine, apply what the parent sends, until told to stop."""
    # The parent decides when to stop (safe state first); a Ctrl-C in the terminal reaches both processes.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    link = ParentLink(conn)
    program = compile_program(init.source, init.filename, init.entrypoint)
    field = FieldProxy(link, init.output_variables) if init.output_variables is not None else None
    if field is not None:
        field.inputs = dict(init.inputs or {})
    proxy = ListenerProxy(link)
    engine = HostedEngine(program, init.config, field_io=field, listener=proxy, restore=init.restore)
    engine.link, engine.proxy = link, proxy
    engine.start()
    link.send(("started", engine.realtime))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            message = ("stop",)  # the parent died: stop the safe way
        kind = message[0]
        if kind == "write":
            engine.writes.put(message[1], message[2])
        elif kind == "inputs" and field is not None:
            field.inputs = message[1]
        elif kind == "lost" and field is not None:
            field.lost = message[1]
        elif kind == "swap":
            _swap(engine, link, *message[1:])
        elif kind == "follow":
            engine.follow(message[1])
        elif kind == "lead":
            engine.lead()
        elif kind == "stop":
            engine.stop()
            link.send(("stopped",))
            return


def _swap(engine: ScanEngine, link: ParentLink, token: int, source: str, filename: str, entrypoint: str) -> None:
    try:
        program = compile_program(source, filename, entrypoint)
    except Exception as exc:  # the parent compiled it already; anything here is refused, never fatal
        link.send(("swapped", token, SwapResult(False, "", str(exc))))
        return
    future = engine.request_swap(program)
    future.add_done_callback(lambda done: link.send(("swapped", token, done.result())))


_UNSET = object()


def main() -> None:
    """`python -m shopfloor_vplc.scan_host FD`: FD is this end of the socket pair; the first message is HostInit."""
    conn = Connection(int(sys.argv[1]))
    serve(conn, conn.recv())


if __name__ == "__main__":
    main()
