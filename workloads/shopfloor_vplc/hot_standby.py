"""Hot standby: a second runtime of the same PLC on another node, fed the primary's whole process state, taking
over in well under a second when the primary goes silent (docs/failover.md, "Hot standby").

Three parts, all on the event loop:

- `StandbyGate` (primary): a gate of the Lease lock. While the Lease names a standby (annotation
  `shopfloor.io/standby`), that standby may take the Lease over by itself, so the primary drives its outputs only while
  a message it sent less than `takeover_after - ack_margin` ago was acknowledged. A standby that falls silent is
  first removed from the Lease (one write, guarded by version); only once that write succeeded does the primary drive
  on without it. Writes are held meanwhile, not replaced by the safe state: the standby may be about to continue
  exactly where the primary stopped.
- `StateSyncServer` (primary): listens on the `sync` port, accepts the standby that names this pod as its primary,
  sends it the newest state image (shopfloor_st.state_image) every sync interval while the Lease is held in time,
  and passes its acknowledgements to the gate.
- `StandbyFollower` (standby): finds the primary through the Lease (holder and `shopfloor.io/sync-endpoint`),
  follows its images, acknowledges each, and when it has heard nothing for `takeover_after` takes the Lease over
  (LeaseLock.take_over: only while the Lease still names it; otherwise the operator hands the Lease over on expiry).

A planned switchover (the primary's pod is deleted) hands the Lease to an in-sync standby by name: the primary stops
driving, waits for the acknowledgement of an image taken after that, writes the Lease over to the standby, and tells
it so over the link, so the standby continues from exactly the state whose outputs were written last.

Frames on the link: 4-byte big-endian length, 1-byte kind, payload. Kinds: `H` hello (standby -> primary, JSON
`{"standby": pod, "primary": pod}`), `I` image (8-byte sequence number + image), `A` acknowledgement (8-byte sequence
number), `T` "the Lease is yours" (primary -> standby, empty). A frame that does not parse ends the connection, never
the runtime.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from shopfloor_api.runtime_contract import ANNOTATION_STANDBY, ANNOTATION_SYNC_ENDPOINT, StandbyTiming
from shopfloor_inpod.lease import LeaseLock, LockState

log = logging.getLogger(__name__)

Clock = Callable[[], float]

HELLO, IMAGE, ACK, YOURS = b"H", b"I", b"A", b"T"
MAX_FRAME_BYTES = 64 * 1024 * 1024
MAX_UNACKED = 256  # sent images remembered for their acknowledgement
SEND_BUFFER_LIMIT = 4 * 1024 * 1024  # a standby this far behind gets the next image when it caught up
CONNECT_TIMEOUT_S = 0.5
RECONNECT_DELAY_S = 0.1
DISCOVERY_INTERVAL_S = 0.5


class FrameError(ValueError):
    """A frame that is not one of ours."""


def encode_frame(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">IB", len(payload) + 1, kind[0]) + payload


async def read_frame(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    header = await reader.readexactly(4)
    (length,) = struct.unpack(">I", header)
    if not 1 <= length <= MAX_FRAME_BYTES:
        raise FrameError(f"frame length {length} out of range")
    body = await reader.readexactly(length)
    return body[:1], body[1:]


def _sequence(payload: bytes) -> int:
    if len(payload) < 8:
        raise FrameError("sequence number missing")
    return int.from_bytes(payload[:8], "big")


def advertised_endpoint(bind_host: str, pod_ip: str, port: int) -> str:
    """Where a standby reaches this runtime: the pod's address when listening on every address, else the bind
    address (the local edge site binds to loopback)."""
    host = pod_ip if bind_host in ("", "0.0.0.0", "::") and pod_ip else bind_host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_endpoint(text: str) -> tuple[str, int] | None:
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit() or not host:
        return None
    return host.strip("[]"), int(port)


class StandbyGate:
    """The primary's gate on its outputs while a standby may take over (see the module docstring)."""

    def __init__(self, lock: LeaseLock, timing: StandbyTiming, clock: Clock = time.monotonic) -> None:
        self.lock = lock
        self.timing = timing
        self.clock = clock
        # Standbys the Lease may name, with the send time of their newest acknowledged image (None: none yet).
        self.gating: dict[str, float | None] = {}
        self.desired = ""  # the standby the Lease should name: connected, and acknowledging in time
        self.holding_back = False  # a switchover is under way: drive nothing more
        self._recheck: asyncio.TimerHandle | None = None
        lock.gates.append(self.may_drive)
        lock.written_listeners.append(self._written)
        lock.update({ANNOTATION_STANDBY: ""})

    def may_drive(self, now: float) -> bool:
        if self.holding_back:
            return False
        window = self.timing.drive_window_s
        return all(acked is not None and now < acked + window for acked in tuple(self.gating.values()))

    @property
    def in_sync(self) -> bool:
        acked = self.gating.get(self.desired) if self.desired else None
        return acked is not None and self.clock() < acked + self.timing.drive_window_s

    def acknowledged(self, standby: str, sent_at: float) -> None:
        """`standby` acknowledged the image sent at `sent_at` (this process' monotonic clock)."""
        if self.desired != standby and sent_at + self.timing.drive_window_s <= self.clock():
            return  # too old to count on
        previous = self.gating.get(standby)
        self.gating[standby] = sent_at if previous is None else max(previous, sent_at)
        if self.desired != standby:
            # Gated from now on: the write naming it may reach the API server at any moment.
            log.info("standby %s in sync: the Lease names it, outputs wait for its acknowledgements", standby)
            self.desired = standby
            self.lock.update({ANNOTATION_STANDBY: standby})
        self._schedule_recheck()

    def _schedule_recheck(self) -> None:
        acked = self.gating.get(self.desired)
        if acked is None:
            return
        if self._recheck is not None:
            self._recheck.cancel()
        delay = max(0.0, acked + self.timing.drive_window_s - self.clock())
        self._recheck = asyncio.get_running_loop().call_later(delay, self._check)

    def _check(self) -> None:
        self._recheck = None
        acked = self.gating.get(self.desired)
        if not self.desired or (acked is not None and self.clock() < acked + self.timing.drive_window_s):
            return
        log.warning(
            "standby %s silent: outputs held until the Lease no longer names it (then they go on without it)",
            self.desired,
        )
        self.desired = ""
        self.lock.update({ANNOTATION_STANDBY: ""})

    def _written(self, annotations: Any) -> None:
        """A write succeeded: standbys it no longer names cannot take over any more."""
        named = annotations.get(ANNOTATION_STANDBY, "")
        for standby in list(self.gating):
            if standby != named and standby != self.desired:
                del self.gating[standby]
                log.info("standby %s no longer named in the Lease: outputs go on without it", standby)


class StateSyncServer:
    """The primary's end of the state sync."""

    def __init__(
        self,
        pod_name: str,
        lock: LeaseLock,
        gate: StandbyGate,
        host: str,
        port: int,
        clock: Clock = time.monotonic,
    ) -> None:
        self.pod_name = pod_name
        self.lock = lock
        self.gate = gate
        self.host, self.port = host, port
        self.clock = clock
        self.images_sent = 0
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._newest: bytes | None = None
        self.generation = 0  # counts the images offered (on the loop, in the order the scan produced them)
        self._acked_generation = 0
        self._acked = asyncio.Event()
        self._ready = asyncio.Event()
        self._writer: asyncio.StreamWriter | None = None
        self._standby = ""
        self._seq = 0
        self._sent_at: OrderedDict[int, tuple[float, int]] = OrderedDict()  # seq -> (send time, generation)
        self._sender: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self._sender = asyncio.create_task(self._send_forever(), name="state-sync-send")

    async def stop(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
        if self._writer is not None:
            self._writer.close()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)

    def offer(self, image: bytes, revision: str) -> None:
        """A new image (from the scan's thread): the newest one goes out next."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._set_newest, image)

    def _set_newest(self, image: bytes) -> None:
        self._newest = image
        self.generation += 1
        self._ready.set()

    @property
    def standby(self) -> str:
        return self._standby

    async def acknowledged_after(self, generation: int, timeout_s: float) -> bool:
        """Wait until the standby acknowledged an image offered after `generation`."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while self._acked_generation <= generation:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return False
            self._acked.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._acked.wait(), remaining)
        return True

    async def tell_standby_lease_is_yours(self) -> None:
        writer = self._writer
        if writer is not None and not writer.is_closing():
            writer.write(encode_frame(YOURS, b""))
            with contextlib.suppress(ConnectionError, TimeoutError):
                await asyncio.wait_for(writer.drain(), 1.0)

    async def _send_forever(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            writer, image, generation = self._writer, self._newest, self.generation
            # A fenced primary says nothing more: its silence lets the standby take over.
            if writer is None or image is None or not self.lock.holds_in_time() or writer.is_closing():
                continue
            if writer.transport.get_write_buffer_size() > SEND_BUFFER_LIMIT:
                continue
            self._seq += 1
            self._sent_at[self._seq] = (self.clock(), generation)  # before it leaves: heard after this moment
            while len(self._sent_at) > MAX_UNACKED:
                self._sent_at.popitem(last=False)
            writer.write(encode_frame(IMAGE, self._seq.to_bytes(8, "big") + image))
            self.images_sent += 1

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        standby = ""
        try:
            kind, payload = await asyncio.wait_for(read_frame(reader), 5.0)
            hello = json.loads(payload) if kind == HELLO else None
            if not isinstance(hello, dict) or hello.get("primary") != self.pod_name or not hello.get("standby"):
                log.warning("state sync: refused %s (not a standby of this pod: %r)", peer, hello)
                return
            standby = str(hello["standby"])
            if self._writer is not None:
                self._writer.close()  # one standby at a time: the newer connection wins
            self._writer, self._standby = writer, standby
            log.info("state sync: standby %s connected from %s", standby, peer)
            self._ready.set()
            while True:
                kind, payload = await read_frame(reader)
                if kind != ACK:
                    raise FrameError(f"unexpected frame kind {kind!r}")
                sent = self._sent_at.get(_sequence(payload))
                if sent is not None:
                    self.gate.acknowledged(standby, sent[0])
                    self._acked_generation = max(self._acked_generation, sent[1])
                    self._acked.set()
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError, FrameError, ValueError) as exc:
            if standby:
                log.warning("state sync: standby %s disconnected (%s)", standby, type(exc).__name__)
        finally:
            if self._writer is writer:
                self._writer, self._standby = None, ""
            writer.close()


class StandbyFollower:
    """The standby's end: follow the primary named in the Lease, take over when it falls silent."""

    def __init__(
        self,
        pod_name: str,
        lock: LeaseLock,
        timing: StandbyTiming,
        follow: Callable[[bytes], None],
        clock: Clock = time.monotonic,
    ) -> None:
        self.pod_name = pod_name
        self.lock = lock
        self.timing = timing
        self.follow = follow
        self.clock = clock
        self.primary = ""
        self.last_heard: float | None = None
        self.images_received = 0
        self.takeovers = 0

    @property
    def in_sync(self) -> bool:
        heard = self.last_heard
        return heard is not None and self.clock() - heard < self.timing.drive_window_s

    async def run(self) -> None:
        """Until this runtime holds the Lease (taken over, or handed over by the operator)."""
        while self.lock.state is not LockState.HOLDING:
            found = await self._discover()
            if found is None:
                await asyncio.sleep(DISCOVERY_INTERVAL_S)
                continue
            await self._follow(*found)
        self.primary, self.last_heard = "", None

    async def _discover(self) -> tuple[str, tuple[str, int]] | None:
        try:
            record = await asyncio.to_thread(self.lock.read)
        except Exception as exc:  # the API unreachable: nothing to follow, look again
            log.debug("state sync: Lease not read: %s", exc)
            return None
        holder = (record.get("spec") or {}).get("holderIdentity") or ""
        annotations = (record.get("metadata") or {}).get("annotations") or {}
        endpoint = parse_endpoint(annotations.get(ANNOTATION_SYNC_ENDPOINT, ""))
        if not holder or holder == self.pod_name or endpoint is None:
            return None
        return holder, endpoint

    async def _follow(self, primary: str, endpoint: tuple[str, int]) -> None:
        if primary != self.primary:
            log.info("state sync: following primary %s at %s:%d", primary, *endpoint)
        self.primary, self.last_heard = primary, None
        receiver = asyncio.create_task(self._receive_forever(primary, endpoint), name="state-sync-receive")
        try:
            while self.lock.state is not LockState.HOLDING:
                heard = self.last_heard
                now = self.clock()
                if heard is None or now - heard < self.timing.takeover_after_s:
                    wait = self.timing.sync_interval_s if heard is None else heard + self.timing.takeover_after_s - now
                    await asyncio.sleep(max(0.005, min(wait, 0.1)))
                    continue
                if await self._take_over(primary, now - heard):
                    return
                found = await self._discover()
                if found is None or found[0] != primary:
                    return  # the Lease moved on (handed to another pod, or to us: the lock sees that)
                await asyncio.sleep(self.lock.timing.retry_interval_s)
        finally:
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await receiver

    async def _take_over(self, primary: str, silent_s: float) -> bool:
        if await asyncio.to_thread(self.lock.take_over, primary, ANNOTATION_STANDBY):
            self.takeovers += 1
            log.warning(
                "TAKEOVER: primary %s silent for %.0f ms; this standby holds the Lease (epoch %d) and drives",
                primary,
                silent_s * 1000,
                self.lock.epoch,
            )
            return True
        return False

    async def _receive_forever(self, primary: str, endpoint: tuple[str, int]) -> None:
        while True:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(*endpoint), CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError) as exc:
                log.debug("state sync with %s: %s", primary, exc)
            else:
                try:
                    await self._receive(primary, reader, writer)
                except (OSError, asyncio.IncompleteReadError, TimeoutError, FrameError) as exc:
                    log.debug("state sync with %s: %s", primary, exc)
                finally:
                    writer.close()
            await asyncio.sleep(RECONNECT_DELAY_S)

    async def _receive(self, primary: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(encode_frame(HELLO, json.dumps({"standby": self.pod_name, "primary": primary}).encode()))
        while True:
            kind, payload = await read_frame(reader)
            if kind == YOURS:
                self.lock.poke()  # handed over: renew it now, not at the next interval
                continue
            if kind != IMAGE:
                raise FrameError(f"unexpected frame kind {kind!r}")
            seq = _sequence(payload)
            self.follow(payload[8:])
            self.last_heard = self.clock()
            self.images_received += 1
            writer.write(encode_frame(ACK, seq.to_bytes(8, "big")))
