"""A simulated edge node's uplink to the central zone: the switch between its workloads and the kube-apiserver,
the operator's witness and anything else central.

One loopback TCP proxy per node, with one listening port on 127.0.0.1 per central target. TLS passes through
untouched (the bytes are relayed, never looked at), so a client checking the API server's certificate for
127.0.0.1 is satisfied.

    uplink = Uplink("edge-rt-1", {"kube-apiserver": ("127.0.0.1", 6443)}); uplink.start()
    uplink.port("kube-apiserver")        # point the node's kubeconfig here
    uplink.cut(); ...; uplink.heal()

`cut()` models a dead switch, not a refused port. Connections stay open, and bytes are held in both directions:
nothing is forwarded and nothing is closed, so a client's own timeouts fire exactly as on a real partition. A new
connection is accepted (the node's kernel would be retransmitting its SYN) and its bytes are held too; its
upstream connection is opened only after the heal. `heal()` delivers the held bytes in order, then the closes that
happened meanwhile (as a FIN or a reset), the way TCP retransmission delivers queued requests late when a
partition heals. A connection holding more than `max_held_bytes` in one direction is dropped (reset on both sides)
and reported through `on_event`.

The proxy runs on its own asyncio loop in a daemon thread; every wait is on an event, nothing polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import socket
import threading
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

MAX_HELD_BYTES = 1 << 20
READ_CHUNK = 64 * 1024
CALL_TIMEOUT = 10.0

T = TypeVar("T")


class UplinkState(enum.StrEnum):
    CONNECTED = "connected"
    CUT = "cut"


@dataclass
class _Direction:
    """One direction of one connection: bytes read from the source, waiting for the destination."""

    label: str
    chunks: deque[bytes] = field(default_factory=deque)
    held: int = 0
    eof: bool = False  # the source closed; its close is delivered after the bytes before it
    reset: bool = False  # ... and it closed with a reset (or an error), not a FIN
    held_close: bool = False  # ... while the uplink was cut
    finished: bool = False  # everything delivered, or the destination is gone
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    space: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class _Listener:
    name: str
    target: tuple[str, int]
    port: int
    server: asyncio.Server | None = None


class _Connection:
    def __init__(
        self,
        uplink: Uplink,
        listener: _Listener,
        client_reader: asyncio.StreamReader,
        client_writer: asyncio.StreamWriter,
    ) -> None:
        self.uplink = uplink
        self.listener = listener
        self.client_reader = client_reader
        self.client_writer = client_writer
        self.upstream_writer: asyncio.StreamWriter | None = None
        self.up = _Direction("to the central zone")
        self.down = _Direction("to the node")
        self.dropped = False
        self.tasks: list[asyncio.Task[None]] = []
        self.done = asyncio.Event()

    @property
    def held_bytes(self) -> int:
        return self.up.held + self.down.held

    def wake(self) -> None:
        for direction in (self.up, self.down):
            direction.wake.set()
            direction.space.set()

    async def run(self) -> None:
        """Relay until both directions are finished. The upstream connection is opened only while the link is
        up: a connection accepted during a cut reaches the central zone after the heal."""
        self.tasks.append(asyncio.create_task(self._read(self.client_reader, self.up)))
        try:
            waiters = {asyncio.create_task(self.uplink._link_up.wait()), asyncio.create_task(self.done.wait())}
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
            if self.dropped:
                return
            try:
                upstream_reader, upstream_writer = await asyncio.open_connection(*self.listener.target)
            except OSError:
                # The central end refuses: the node sees its connection reset, as through a live switch.
                self.client_writer.transport.abort()
                return
            self.upstream_writer = upstream_writer
            if self.dropped:
                upstream_writer.transport.abort()
                return
            self.tasks += [
                asyncio.create_task(self._write(self.up, upstream_writer)),
                asyncio.create_task(self._read(upstream_reader, self.down)),
                asyncio.create_task(self._write(self.down, self.client_writer)),
            ]
            await self.done.wait()
        finally:
            for task in self.tasks:
                task.cancel()
            for writer in (self.client_writer, self.upstream_writer):
                if writer is not None:
                    writer.close()

    async def _read(self, source: asyncio.StreamReader, direction: _Direction) -> None:
        uplink = self.uplink
        flow_limit = max(1, uplink.max_held_bytes // 4)
        chunk = min(READ_CHUNK, flow_limit)
        while True:
            # While the link is up, a slow destination slows the source down (no unbounded buffering); while it is
            # cut, bytes pile up here until the bound.
            while uplink.connected and direction.held >= flow_limit and not direction.finished:
                direction.space.clear()
                await direction.space.wait()
            try:
                data = await source.read(chunk)
            except (ConnectionError, OSError):
                direction.eof = direction.reset = True
                direction.held_close = not uplink.connected
                direction.wake.set()
                return
            if direction.finished:
                return  # the destination is gone: nothing more is taken for it
            if not data:
                direction.eof = True
                direction.held_close = not uplink.connected
                direction.wake.set()
                return
            direction.chunks.append(data)
            direction.held += len(data)
            direction.wake.set()
            if direction.held > uplink.max_held_bytes:
                self.drop(f"more than {uplink.max_held_bytes} bytes held {direction.label}")
                return

    async def _write(self, direction: _Direction, destination: asyncio.StreamWriter) -> None:
        uplink = self.uplink
        try:
            while True:
                while not (uplink.connected and (direction.chunks or direction.eof)) and not direction.finished:
                    direction.wake.clear()
                    await direction.wake.wait()
                if direction.finished:
                    return
                if direction.chunks:
                    data = direction.chunks.popleft()
                    direction.held -= len(data)
                    direction.space.set()
                    destination.write(data)
                    await destination.drain()
                    continue
                if direction.held_close and uplink.close_after > 0:
                    # A close that happened during the cut reaches the far end late (see heal()).
                    await asyncio.sleep(uplink.close_after)
                if direction.reset:
                    destination.transport.abort()
                elif destination.can_write_eof():
                    destination.write_eof()
                return
        except (ConnectionError, OSError):
            # The destination is gone (e.g. the node's client gave up and closed). The other direction still
            # delivers what it holds; nothing more is accepted for this one.
            return
        finally:
            direction.finished = True
            direction.chunks.clear()
            direction.held = 0
            direction.space.set()
            if self.up.finished and self.down.finished:
                self.done.set()

    def drop(self, reason: str) -> None:
        if self.dropped:
            return
        self.dropped = True
        for direction in (self.up, self.down):
            direction.finished = True
            direction.chunks.clear()
            direction.held = 0
        self.wake()
        self.done.set()
        self.client_writer.transport.abort()
        if self.upstream_writer is not None:
            self.upstream_writer.transport.abort()
        self.uplink._event(f"dropped a connection to {self.listener.name}: {reason}")

    def abort(self) -> None:
        for task in self.tasks:
            task.cancel()
        self.client_writer.transport.abort()
        if self.upstream_writer is not None:
            self.upstream_writer.transport.abort()


class Uplink:
    """The uplink of one simulated node. Thread-safe: call it from any thread once started."""

    def __init__(
        self,
        node: str,
        targets: dict[str, tuple[str, int]] | None = None,
        *,
        max_held_bytes: int = MAX_HELD_BYTES,
        on_event: Callable[[str], None] | None = None,
    ) -> None:
        self.node = node
        self.max_held_bytes = max_held_bytes
        self.on_event = on_event
        self._initial_targets = dict(targets or {})
        self._listeners: dict[str, _Listener] = {}
        self._connections: set[_Connection] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._link_up: asyncio.Event
        self.connected = True
        self.close_after = 0.0

    # -- life cycle --------------------------------------------------------------------------------------------

    def start(self) -> Uplink:
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            self._link_up = asyncio.Event()
            self._link_up.set()
            ready.set()
            loop.run_forever()
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name=f"uplink-{self.node}", daemon=True)
        self._thread.start()
        ready.wait(CALL_TIMEOUT)
        for name, target in self._initial_targets.items():
            self.set_target(name, target)
        return self

    def stop(self) -> None:
        """Close every listener and connection (reset, as a switch that is switched off)."""
        if self._loop is None:
            return
        with contextlib.suppress(RuntimeError, TimeoutError):
            self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=CALL_TIMEOUT)
        self._loop = None

    async def _shutdown(self) -> None:
        for listener in self._listeners.values():
            if listener.server is not None:
                listener.server.close()
        for connection in list(self._connections):
            connection.abort()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        # Whatever the connections left behind (their relays), so the loop closes with no task pending.
        rest = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    def __enter__(self) -> Uplink:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        assert self._loop is not None, f"uplink {self.node} not started"
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(CALL_TIMEOUT)

    def _event(self, message: str) -> None:
        if self.on_event is not None:
            self.on_event(f"uplink {self.node}: {message}")

    # -- targets -----------------------------------------------------------------------------------------------

    def set_target(self, name: str, target: tuple[str, int]) -> int:
        """Listen for `name` (on a new port) or point its existing port at a new target; returns the port.
        Connections already open keep their old target; new ones go to the new one."""
        return self._call(self._set_target(name, (target[0], int(target[1]))))

    async def _set_target(self, name: str, target: tuple[str, int]) -> int:
        existing = self._listeners.get(name)
        if existing is not None:
            existing.target = target
            return existing.port
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
        listener = _Listener(name, target, port)

        async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            connection = _Connection(self, listener, reader, writer)
            self._connections.add(connection)
            task = asyncio.current_task()
            if task is not None:
                self._handlers.add(task)
            try:
                await connection.run()
            except asyncio.CancelledError:
                pass  # the uplink is stopping; asyncio would log a cancelled connection handler as an error
            finally:
                self._connections.discard(connection)
                if task is not None:
                    self._handlers.discard(task)

        listener.server = await asyncio.start_server(accepted, sock=sock)
        self._listeners[name] = listener
        return port

    def port(self, name: str) -> int:
        return self._listeners[name].port

    def targets(self) -> dict[str, tuple[tuple[str, int], int]]:
        """name -> (target, listening port)."""
        return {name: (listener.target, listener.port) for name, listener in dict(self._listeners).items()}

    # -- state -------------------------------------------------------------------------------------------------

    @property
    def state(self) -> UplinkState:
        return UplinkState.CONNECTED if self.connected else UplinkState.CUT

    def cut(self) -> None:
        """From the moment this returns, nothing crosses the uplink in either direction."""
        self._call(self._set_connected(False))

    def heal(self, close_after: float = 0.0) -> None:
        """Deliver what was held, in order, then the closes that happened meanwhile; forward again.

        With `close_after`, those closes reach the far end that many seconds after the bytes before them (as when
        the closing segment itself is lost and retransmitted later). A Go server such as kube-apiserver cancels a
        request whose connection closes before it is served; a client that gave up on a request during the cut has
        closed its connection, so by default its late request is usually cancelled, and with `close_after=1` it is
        usually applied. Both happen on real networks."""
        self._call(self._set_connected(True, close_after))

    async def _set_connected(self, connected: bool, close_after: float = 0.0) -> None:
        if connected:
            self.close_after = max(0.0, close_after)
        if connected == self.connected:
            return
        self.connected = connected
        if connected:
            self._link_up.set()
            for connection in self._connections:
                connection.wake()
        else:
            self._link_up.clear()
        self._event("healed" if connected else "cut")

    def held_bytes(self) -> int:
        """Bytes held by the uplink right now, over all connections and both directions."""
        return self._call(self._held())

    async def _held(self) -> int:
        return sum(connection.held_bytes for connection in self._connections)

    def connection_count(self) -> int:
        return self._call(self._count())

    async def _count(self) -> int:
        return len(self._connections)
