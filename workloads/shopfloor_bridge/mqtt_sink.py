"""The MQTT sink: every message goes through the store-and-forward buffer and leaves it only when acknowledged.

Per connection (one `MqttSession` each): a new bdSeq and NDEATH Will; subscribe to NCMD and the primary host's
STATE; wait for the host to be online; NBIRTH (seq 0); then publish the buffer in order, up to `window` messages in
flight, with QoS 1. NDATA get their seq (1..255, 0, 1, ...) when published; data buffered before the current birth is
flagged historical. When the connection drops, unacknowledged messages are sent again from the buffer on the next
connection, so nothing is lost and, as long as the broker acknowledged what it received, nothing is doubled.

Sparkplug B asks for QoS 0 on NBIRTH/NDATA; the bridge uses QoS 1 because the broker's acknowledgement is what lets
it delete a message from the buffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from shopfloor_bridge.metrics import BridgeMetrics
from shopfloor_bridge.mqtt_formats import Message, MessageFormat
from shopfloor_bridge.mqtt_session import BrokerSettings, MqttSession, SessionEvents, Will
from shopfloor_bridge.sparkplug import payloads
from shopfloor_bridge.spool import Spool
from shopfloor_bridge.tags import TagTable, TagValue, Value

log = logging.getLogger(__name__)

CommandHandler = Callable[[str, dict[str, Value]], Awaitable[None]]


@dataclass(frozen=True)
class SparkplugNode:
    topics: payloads.Topics
    aliases: payloads.Aliases
    primary_host_id: str | None = None


class _BdSeq:
    """The birth/death sequence number, kept on disk so a restarted bridge continues it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.value = int(path.read_text()) % 256
        except (OSError, ValueError):
            self.value = -1

    def next(self) -> int:
        self.value = (self.value + 1) % 256
        self.path.write_text(str(self.value))
        return self.value


class MqttSink(SessionEvents):
    def __init__(
        self,
        broker: BrokerSettings,
        spool: Spool,
        message_format: MessageFormat,
        metrics: BridgeMetrics,
        *,
        table: TagTable,
        sparkplug: SparkplugNode | None = None,
        on_command: CommandHandler | None = None,
        window: int = 100,
        qos: int = 1,
        backoff: tuple[float, float] = (0.1, 5.0),
        fsync_interval: float = 1.0,
    ) -> None:
        self.broker = broker
        self.spool = spool
        self.format = message_format
        self.metrics = metrics
        self.table = table
        self.sparkplug = sparkplug
        self.on_command = on_command
        self.window = window
        self.qos = qos
        self.backoff = backoff
        self.fsync_interval = fsync_interval
        self.ready = asyncio.Event()  # set while born (Sparkplug) or connected (JSON)
        self._bd_seq = _BdSeq(spool.directory / "bdseq")
        self._wake = asyncio.Event()
        self._closing = False
        self._closed = asyncio.Event()  # set by close(): ends a backoff wait at once
        self._session: MqttSession | None = None
        self._connected = False
        self._host_online = False
        self._host_offline_seen = False
        self._rebirth = False
        self._seq = 0
        self._birth_mark = 0
        self._inflight: dict[int, int | str] = {}  # mid -> buffer id, or the kind of a control message
        self._unacked: deque[int] = deque()
        self._acked: set[int] = set()
        self._observed_ns: dict[int, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._dropped_reported = 0
        self._refresh_gauges()

    # ---- input -------------------------------------------------------------------------------------------------

    def submit(self, changes: Sequence[TagValue]) -> None:
        """Stores the messages for `changes` (durable at once against a crash) and wakes the publisher."""
        if not changes:
            return
        observed = min(change.observed_ns for change in changes)
        for message in self.format.encode(changes):
            try:
                message_id = self.spool.append(message.pack())
            except OSError as exc:  # e.g. a full disk with nothing left to drop: lose this message, count it
                log.error("store-and-forward buffer: cannot store a message: %s", exc)
                self.metrics.dropped.inc()
                continue
            self._observed_ns[message_id] = observed
        if self.spool.dropped > self._dropped_reported:
            self.metrics.dropped.inc(self.spool.dropped - self._dropped_reported)
            self._dropped_reported = self.spool.dropped
            head = self.spool.head
            for message_id in [i for i in self._observed_ns if i < head]:
                del self._observed_ns[message_id]
        self._refresh_gauges()
        self._wake.set()

    def request_rebirth(self) -> None:
        """Publishes a new NBIRTH on the current session (e.g. once the tags' datatypes are known)."""
        self._rebirth = True
        self._wake.set()

    # ---- lifecycle ---------------------------------------------------------------------------------------------

    async def run(self) -> None:
        syncer = asyncio.create_task(self._sync_periodically())
        delay = self.backoff[0]
        try:
            while not self._closing:
                try:
                    born = await self._one_session()
                except Exception:  # never stop publishing for good: log, back off, connect again
                    log.exception("MQTT session failed")
                    born = False
                if self._closing:
                    break
                delay = self.backoff[0] if born else min(delay * 2, self.backoff[1])
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closed.wait(), delay)
        finally:
            syncer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await syncer

    async def close(self) -> None:
        """Announces NDEATH (Sparkplug) and disconnects cleanly; the buffer keeps whatever was not acknowledged."""
        self._closing = True
        self._closed.set()
        session = self._session
        if session is not None and self._connected and self.sparkplug is not None:
            with contextlib.suppress(ConnectionError):
                session.publish(self.sparkplug.topics.ndeath, payloads.death(self._bd_seq.value), qos=1)
        self._wake.set()
        if session is not None:
            await session.stop()
        self.spool.close()

    # ---- one connection ----------------------------------------------------------------------------------------

    async def _one_session(self) -> bool:
        """Runs one connection until it ends; True if it got as far as publishing."""
        loop = asyncio.get_running_loop()
        will = None
        bd_seq = self._bd_seq.next() if self.sparkplug else 0
        if self.sparkplug is not None:
            will = Will(self.sparkplug.topics.ndeath, payloads.death(bd_seq), qos=1, retain=False)
        session = MqttSession(self.broker, self, loop, will)
        session.set_window(self.window)
        self._session, self._connected, self._rebirth = session, False, False
        self._host_online = self.sparkplug is None or self.sparkplug.primary_host_id is None
        self._host_offline_seen = False
        born = False
        session.start()
        try:
            while not session.closed.is_set() and not self._closing:
                if born and self._host_offline_seen:  # even if it is already back: it expects a new session
                    self._publish_control(session, "NDEATH", payloads.death(bd_seq))
                    log.info("primary host went offline: ending the session until it is back")
                    break
                if self._connected and self._host_online:
                    if not born or self._rebirth:
                        self._birth(session, bd_seq)
                        born = True
                        self.ready.set()
                    self._fill_window(session)
                self._wake.clear()
                await self._wake.wait()
        finally:
            self.ready.clear()
            self.metrics.mqtt_connected.set(0)
            if not self._closing:
                await session.stop()
            if session.failure and not self._closing:
                log.warning("MQTT session to %s:%s ended: %s", self.broker.host, self.broker.port, session.failure)
            self._session, self._connected = None, False
            self._inflight.clear()
            self._unacked.clear()
            self._acked.clear()
            self.spool.rewind()
        return born

    def _birth(self, session: MqttSession, bd_seq: int) -> None:
        self._rebirth = False
        self._host_offline_seen = False  # only an offline STATE after this birth ends the session
        if self.sparkplug is None:
            return
        self._seq = 0
        self._birth_mark = self.spool.next_id
        payload = payloads.birth(self.sparkplug.aliases, self.table.snapshot(), bd_seq)
        self._publish_control(session, "NBIRTH", payload, topic=self.sparkplug.topics.nbirth)

    def _publish_control(self, session: MqttSession, kind: str, payload: bytes, *, topic: str | None = None) -> None:
        assert self.sparkplug is not None
        with contextlib.suppress(ConnectionError):
            self._inflight[session.publish(topic or self.sparkplug.topics.ndeath, payload)] = kind

    def _fill_window(self, session: MqttSession) -> None:
        while len(self._inflight) < self.window:
            batch = self.spool.read(self.window - len(self._inflight))
            if not batch:
                return
            for message_id, data in batch:
                message = Message.unpack(data)
                payload = message.payload
                if self.sparkplug is not None and message.topic == self.sparkplug.topics.ndata:
                    self._seq = (self._seq + 1) % 256
                    payload = payloads.with_seq(payload, self._seq, historical=message_id < self._birth_mark)
                try:
                    mid = session.publish(message.topic, payload, qos=self.qos)
                except ConnectionError:
                    return  # the session is ending; the buffer is rewound when it has
                self._inflight[mid] = message_id
                self._unacked.append(message_id)

    # ---- session events (on the loop) --------------------------------------------------------------------------

    def connected(self) -> None:
        self._connected = True
        self.metrics.mqtt_connected.set(1)
        session = self._session
        if session is not None and self.sparkplug is not None:
            session.subscribe(self.sparkplug.topics.ncmd)
            if self.sparkplug.primary_host_id:
                session.subscribe(payloads.Topics.state(self.sparkplug.primary_host_id))
        self._wake.set()

    def acknowledged(self, mid: int) -> None:
        entry = self._inflight.pop(mid, None)
        if entry is None:
            return
        if isinstance(entry, str):
            self.metrics.published.labels(entry).inc()
        else:
            self._acked.add(entry)
            last = None
            while self._unacked and self._unacked[0] in self._acked:
                last = self._unacked.popleft()
                self._acked.discard(last)
            if last is not None:
                self.spool.ack_through(last)
            observed = self._observed_ns.pop(entry, None)
            if observed is not None:
                self.metrics.latency.observe((time.monotonic_ns() - observed) / 1e9)
            self.metrics.published.labels("NDATA" if self.sparkplug else "json").inc()
            self._refresh_gauges()
        self._wake.set()

    def message(self, topic: str, payload: bytes) -> None:
        if self.sparkplug is None:
            return
        if topic == self.sparkplug.topics.ncmd:
            self._command(payload)
        elif self.sparkplug.primary_host_id and topic == payloads.Topics.state(self.sparkplug.primary_host_id):
            online = _host_online(payload)
            self._host_online = online
            self._host_offline_seen = self._host_offline_seen or not online
        self._wake.set()

    def disconnected(self, reason: str) -> None:
        self._connected = False
        self._wake.set()

    def _command(self, payload: bytes) -> None:
        assert self.sparkplug is not None
        try:
            command = payloads.parse_command(payload, self.sparkplug.aliases)
        except ValueError as exc:
            log.warning("ignoring NCMD: %s", exc)
            self.metrics.writes.labels("mqtt", "refused").inc()
            return
        if command.rebirth:
            self._rebirth = True
        for name in command.unknown:
            log.warning("NCMD for unknown metric %r refused", name)
            self.metrics.writes.labels("mqtt", "refused").inc()
        if command.writes and self.on_command is not None:
            task = asyncio.ensure_future(self.on_command("mqtt", command.writes))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    # ---- housekeeping ------------------------------------------------------------------------------------------

    async def _sync_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.fsync_interval)
            # fsync can take milliseconds: off the loop, so polls and publishes never wait for the disk.
            await asyncio.to_thread(Spool.finish_sync, self.spool.begin_sync())

    def _refresh_gauges(self) -> None:
        self.metrics.buffered_bytes.set(self.spool.size_bytes)
        self.metrics.buffered_messages.set(self.spool.pending)


def _host_online(payload: bytes) -> bool:
    """Sparkplug 3.0 STATE is JSON {"online": bool, ...}; 2.2 hosts publish ONLINE / OFFLINE."""
    text = payload.decode(errors="replace").strip()
    if text.upper() in ("ONLINE", "OFFLINE"):
        return text.upper() == "ONLINE"
    try:
        return bool(json.loads(text).get("online", False))
    except (ValueError, AttributeError):
        return False
