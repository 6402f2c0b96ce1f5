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

Frames on the link: 4-byte big-endian length, 1-byte kind, payload. The link is authenticated both ways before
anything else counts, by HMAC-SHA256 challenge-response with the pair's shared key (the operator's Secret
`<plc>-sync`), so a peer without the key neither receives the process state nor acknowledges in the standby's place:

1. `N` nonce (primary -> standby, on accept): 32 random bytes `nonce_p`.
2. `H` hello (standby -> primary): JSON `{"standby": pod, "primary": pod, "nonce": hex nonce_s, "mac": hex}`, the mac
   HMAC(key, "standby-hello" | nonce_p | nonce_s | standby | primary); `nonce_s` is 32 random bytes of its own.
3. `P` proof (primary -> standby): HMAC(key, "primary-hello" | nonce_s | nonce_p | primary | standby), 32 bytes: the
   standby follows only a primary that holds the key.

(`|` joins fields each prefixed with its 4-byte big-endian length, so no two field lists give the same bytes.) Each
step has a timeout; a refused peer is logged (rate-limited), counted and disconnected, and never replaces the
authenticated standby: "the newer connection wins" only among authenticated ones. Then: `I` image (8-byte sequence
number + image, primary -> standby), `A` acknowledgement (8-byte sequence number), `T` "the Lease is yours" (primary
-> standby, empty). A frame that does not parse ends the connection, never the runtime. The frames after the
handshake carry no MAC of their own: the handshake keeps out whoever can only reach the port, not a peer on the path
between the two pods (the NetworkPolicy and the cluster network are the conduit's other guards).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import struct
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shopfloor_api.runtime_contract import ANNOTATION_STANDBY, ANNOTATION_SYNC_ENDPOINT, StandbyTiming
from shopfloor_inpod.endpoints import resolve
from shopfloor_inpod.lease import LeaseLock, LockState
from shopfloor_vplc.log_throttle import LogThrottle

log = logging.getLogger(__name__)

Clock = Callable[[], float]

NONCE, HELLO, PROOF, IMAGE, ACK, YOURS = b"N", b"H", b"P", b"I", b"A", b"T"
MAX_FRAME_BYTES = 64 * 1024 * 1024
MAX_HANDSHAKE_FRAME_BYTES = 4096  # an unauthenticated peer gets no more buffer than a hello needs
NONCE_BYTES = 32
HANDSHAKE_TIMEOUT_S = 1.0  # each handshake step: a peer that connects and says nothing holds nothing for long
MAX_PENDING_HANDSHAKES = 8  # connections not yet authenticated; more are closed at once
REFUSAL_LOG_INTERVAL_S = 10.0
MAX_UNACKED = 256  # sent images remembered for their acknowledgement
SEND_BUFFER_LIMIT = 4 * 1024 * 1024  # a standby this far behind gets the next image when it caught up
CONNECT_TIMEOUT_S = 0.5
RECONNECT_DELAY_S = 0.1
DISCOVERY_INTERVAL_S = 0.5


class FrameError(ValueError):
    """A frame that is not one of ours."""


class AuthError(FrameError):
    """A handshake that does not prove the shared key (or names the wrong pods)."""


def encode_frame(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">IB", len(payload) + 1, kind[0]) + payload


async def read_frame(reader: asyncio.StreamReader, max_bytes: int = MAX_FRAME_BYTES) -> tuple[bytes, bytes]:
    header = await reader.readexactly(4)
    (length,) = struct.unpack(">I", header)
    if not 1 <= length <= max_bytes:
        raise FrameError(f"frame length {length} out of range")
    body = await reader.readexactly(length)
    return body[:1], body[1:]


def _sequence(payload: bytes) -> int:
    if len(payload) < 8:
        raise FrameError("sequence number missing")
    return int.from_bytes(payload[:8], "big")


def _fields(*parts: bytes) -> bytes:
    return b"".join(len(part).to_bytes(4, "big") + part for part in parts)


def standby_mac(key: bytes, nonce_p: bytes, nonce_s: bytes, standby: str, primary: str) -> bytes:
    """The standby's answer to the primary's challenge."""
    message = _fields(b"standby-hello", nonce_p, nonce_s, standby.encode(), primary.encode())
    return hmac.new(key, message, hashlib.sha256).digest()


def primary_proof(key: bytes, nonce_s: bytes, nonce_p: bytes, primary: str, standby: str) -> bytes:
    """The primary's answer to the standby's challenge (another label: a standby's mac is never a valid proof)."""
    message = _fields(b"primary-hello", nonce_s, nonce_p, primary.encode(), standby.encode())
    return hmac.new(key, message, hashlib.sha256).digest()


def new_nonce() -> bytes:
    return secrets.token_bytes(NONCE_BYTES)


@dataclass(frozen=True)
class Hello:
    standby: str
    primary: str
    nonce: bytes  # the standby's challenge to the primary


def hello_payload(key: bytes, nonce_p: bytes, nonce_s: bytes, standby: str, primary: str) -> bytes:
    mac = standby_mac(key, nonce_p, nonce_s, standby, primary)
    return json.dumps({"standby": standby, "primary": primary, "nonce": nonce_s.hex(), "mac": mac.hex()}).encode()


def check_hello(key: bytes, nonce_p: bytes, pod_name: str, payload: bytes) -> Hello:
    """The hello of a standby of `pod_name` answering the challenge `nonce_p` with the key; AuthError otherwise."""
    try:
        hello = json.loads(payload)
    except ValueError:
        raise AuthError("hello is not JSON") from None
    if not isinstance(hello, dict):
        raise AuthError("hello is not a JSON object")
    values = [hello.get(name) for name in ("standby", "primary", "nonce", "mac")]
    if not all(isinstance(value, str) and value for value in values):
        raise AuthError("hello lacks standby, primary, nonce or mac")
    standby, primary, nonce_hex, mac_hex = (str(value) for value in values)
    try:
        nonce_s, mac = bytes.fromhex(nonce_hex), bytes.fromhex(mac_hex)
    except ValueError:
        raise AuthError("hello's nonce or mac is not hex") from None
    if len(nonce_s) != NONCE_BYTES:
        raise AuthError(f"hello's nonce is not {NONCE_BYTES} bytes")
    if not hmac.compare_digest(mac, standby_mac(key, nonce_p, nonce_s, standby, primary)):
        raise AuthError(f"hello naming standby {standby!r} does not prove the key (wrong key, or replayed)")
    # Named only after the mac: an unauthenticated claim is not worth a reason of its own.
    if primary != pod_name:
        raise AuthError(f"standby {standby!r} follows primary {primary!r}, not this pod")
    if standby == pod_name:
        raise AuthError("hello names this pod as the standby")
    return Hello(standby, primary, nonce_s)


def check_proof(key: bytes, nonce_s: bytes, nonce_p: bytes, primary: str, standby: str, payload: bytes) -> None:
    """The primary's proof of the key for this connection's challenges; AuthError otherwise."""
    if not hmac.compare_digest(payload, primary_proof(key, nonce_s, nonce_p, primary, standby)):
        raise AuthError(f"primary {primary!r} does not prove the key")


def _checked_key(key: bytes) -> bytes:
    if not key:
        raise ValueError("the state sync needs the pair's shared key")
    return key


class RefusalLog:
    """Counts refusals and logs them at most once per interval: a peer hammering the port does not flood the log."""

    def __init__(self, what: str, clock: Clock, interval_s: float = REFUSAL_LOG_INTERVAL_S) -> None:
        self.what = what
        self.count = 0
        self._throttle = LogThrottle(interval_s, clock)

    def refused(self, peer: object, reason: str) -> None:
        self.count += 1
        held_back = self._throttle.admit()
        if held_back is not None:
            more = f" ({held_back} more refused since the last message)" if held_back else ""
            log.warning("%s: refused %s: %s%s", self.what, peer, reason, more)


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
        key: bytes,
        clock: Clock = time.monotonic,
    ) -> None:
        self.pod_name = pod_name
        self.lock = lock
        self.gate = gate
        self.host, self.port = host, port
        self.key = _checked_key(key)
        self.clock = clock
        self.refusals = RefusalLog("state sync", clock)
        self._pending = 0  # connections in their handshake
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
        # A primary whose scan stopped (faulted: safe state written, waiting for a new revision) still holds the Lease
        # and drives nothing: the newest image goes again, so its standby stays in sync (ready to take over should
        # the faulted primary's node die) instead of being unnamed as if it were gone.
        heartbeat_s = max(self.gate.timing.sync_interval_s, self.gate.timing.drive_window_s / 4)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), heartbeat_s)
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

    @property
    def peers_refused(self) -> int:
        return self.refusals.count

    async def _handshake(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str:
        """The authenticated standby's name (see the module docstring); AuthError, a timeout or a read error else."""
        nonce_p = new_nonce()
        writer.write(encode_frame(NONCE, nonce_p))
        await asyncio.wait_for(writer.drain(), HANDSHAKE_TIMEOUT_S)
        kind, payload = await asyncio.wait_for(read_frame(reader, MAX_HANDSHAKE_FRAME_BYTES), HANDSHAKE_TIMEOUT_S)
        if kind != HELLO:
            raise AuthError(f"expected a hello, got frame kind {kind!r}")
        hello = check_hello(self.key, nonce_p, self.pod_name, payload)
        writer.write(encode_frame(PROOF, primary_proof(self.key, hello.nonce, nonce_p, self.pod_name, hello.standby)))
        await asyncio.wait_for(writer.drain(), HANDSHAKE_TIMEOUT_S)
        return hello.standby

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        if self._pending >= MAX_PENDING_HANDSHAKES:
            self.refusals.refused(peer, f"{MAX_PENDING_HANDSHAKES} handshakes already under way")
            writer.close()
            return
        self._pending += 1
        try:
            standby = await self._handshake(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError, FrameError) as exc:
            self.refusals.refused(peer, str(exc) or type(exc).__name__)
            writer.close()
            return
        finally:
            self._pending -= 1
        try:
            if self._writer is not None:
                self._writer.close()  # one standby at a time: the newer authenticated connection wins
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
        key: bytes,
        clock: Clock = time.monotonic,
    ) -> None:
        self.pod_name = pod_name
        self.lock = lock
        self.timing = timing
        self.follow = follow
        self.key = _checked_key(key)
        self.clock = clock
        self.refusals = RefusalLog("state sync (standby)", clock)
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
                # As every peer is dialled: where the site says it really is (in a pod: as written).
                address = resolve(*endpoint)
                reader, writer = await asyncio.wait_for(asyncio.open_connection(*address), CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError) as exc:
                log.debug("state sync with %s: %s", primary, exc)
            else:
                try:
                    await self._receive(primary, reader, writer)
                except AuthError as exc:
                    self.refusals.refused(f"primary {primary} at {endpoint[0]}:{endpoint[1]}", str(exc))
                except (OSError, asyncio.IncompleteReadError, TimeoutError, FrameError) as exc:
                    log.debug("state sync with %s: %s", primary, exc)
                finally:
                    writer.close()
            await asyncio.sleep(RECONNECT_DELAY_S)

    async def _handshake(self, primary: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer the primary's challenge and check its proof (see the module docstring); AuthError if it fails."""
        kind, nonce_p = await asyncio.wait_for(read_frame(reader, MAX_HANDSHAKE_FRAME_BYTES), HANDSHAKE_TIMEOUT_S)
        if kind != NONCE or len(nonce_p) != NONCE_BYTES:
            raise AuthError(f"expected a {NONCE_BYTES}-byte nonce, got frame kind {kind!r}")
        nonce_s = new_nonce()
        writer.write(encode_frame(HELLO, hello_payload(self.key, nonce_p, nonce_s, self.pod_name, primary)))
        await asyncio.wait_for(writer.drain(), HANDSHAKE_TIMEOUT_S)
        kind, proof = await asyncio.wait_for(read_frame(reader, MAX_HANDSHAKE_FRAME_BYTES), HANDSHAKE_TIMEOUT_S)
        if kind != PROOF:
            raise AuthError(f"primary {primary!r} answered the hello with frame kind {kind!r}, not a proof")
        check_proof(self.key, nonce_s, nonce_p, primary, self.pod_name, proof)

    async def _receive(self, primary: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._handshake(primary, reader, writer)
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
