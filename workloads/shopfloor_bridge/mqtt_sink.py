"""The MQTT sink: every message goes through the store-and-forward buffer and leaves it only when acknowledged.

Per connection (one `MqttSession` each, to one broker at a time, walked in order): a new bdSeq and NDEATH Will;
subscribe to NCMD, every device's DCMD and the primary host's STATE; wait for the host to be online; NBIRTH
(seq 0) and every DBIRTH; then publish the buffer in order, up to `window` messages in flight, with QoS 1. NDATA,
DDATA, DBIRTH and DDEATH get their seq (1..255, 0, 1, ...) when published; data buffered before the current birth is
flagged historical, and device births and deaths buffered before it are left out (the births say what is true now).
When the connection drops, unacknowledged messages are sent again from the buffer on the next connection, so nothing
is lost and, as long as the broker acknowledged what it received, nothing is doubled.

Sparkplug B asks for QoS 0 on births and data; the bridge uses QoS 1 because the broker's acknowledgement is what
lets it delete a message from the buffer. With `qos: 0` births and data go at QoS 0 as the specification asks (a
message then leaves the buffer once written to the socket). NDEATH is QoS 1 either way, as the Will must be.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from shopfloor_bridge.metrics import BridgeMetrics
from shopfloor_bridge.mqtt_formats import Message, MessageFormat, SparkplugFormat
from shopfloor_bridge.mqtt_session import BrokerSettings, MqttSession, SessionEvents, Will
from shopfloor_bridge.primary_host import PrimaryHost
from shopfloor_bridge.sparkplug import payloads
from shopfloor_bridge.spool import Spool
from shopfloor_bridge.tags import TagTable, TagValue, Value

log = logging.getLogger(__name__)

CommandHandler = Callable[[str, dict[str, Value]], Awaitable[None]]


class BirthSequence(Protocol):
    def births(self, table: TagTable, bd_seq: int) -> list[Message]: ...

    def after_births(self) -> list[Message]: ...

    def as_history(self, message: Message) -> Message | None: ...


@dataclass(frozen=True)
class SparkplugNode:
    topics: payloads.Topics
    aliases: payloads.Aliases
    primary_host_id: str | None = None
    births: BirthSequence | None = None  # None: one NBIRTH with every tag as a node metric
    devices: bool = False  # tags are device metrics: NCMD writes nothing, DCMD writes the device's tags
    command_devices: frozenset[str] = field(default_factory=frozenset)  # devices whose DCMD the node subscribes to


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
        broker: BrokerSettings | Sequence[BrokerSettings],
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
        self.brokers = [broker] if isinstance(broker, BrokerSettings) else list(broker)
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
        self._subscriptions: list[str] = []
        self._death_mid: int | None = None  # the NDEATH published before a clean disconnect, until acknowledged
        self._death_acked = asyncio.Event()
        self._connected = False
        self._server = 0  # index in `brokers` of the broker used now
        self._host = PrimaryHost(sparkplug.primary_host_id if sparkplug else None)
        self._rebirth = False
        self._seq = 0
        self._birth_mark = 0
        self._inflight: dict[int, tuple[int | None, str]] = {}  # mid -> (buffer id, or None for births; kind)
        self._unacked: deque[int] = deque()
        self._acked: set[int] = set()
        self._observed_ns: dict[int, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._dropped_reported = 0
        self._refresh_gauges()

    # ---- input -------------------------------------------------------------------------------------------------

    @property
    def broker(self) -> BrokerSettings:
        """The broker connected to now (or next)."""
        return self.brokers[self._server]

    def submit(self, changes: Sequence[TagValue]) -> None:
        """Stores the messages for `changes` (durable at once against a crash) and wakes the publisher."""
        if not changes:
            return
        self._store(self.format.encode(changes), min(change.observed_ns for change in changes))

    def _store(self, messages: Sequence[Message], observed: int | None) -> None:
        for message in messages:
            try:
                message_id = self.spool.append(message.pack())
            except OSError as exc:  # e.g. a full disk with nothing left to drop: lose this message, count it
                log.error("store-and-forward buffer: cannot store a message: %s", exc)
                self.metrics.dropped.inc()
                continue
            if observed is not None:
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
                # The next broker in the list; backing off only once every broker has been tried.
                self._server = (self._server + 1) % len(self.brokers)
                if born:
                    delay = self.backoff[0]
                elif self._server == 0:
                    delay = min(delay * 2, self.backoff[1])
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closed.wait(), delay if self._server == 0 else self.backoff[0])
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
            await self._last_words(session, self._bd_seq.value)
        self._wake.set()
        if session is not None:
            await session.stop()
        self.spool.close()

    async def _last_words(self, session: MqttSession, bd_seq: int) -> None:
        """NDEATH before an intentional disconnect, then the DISCONNECT (MqttSession.stop) on the same connection.

        The subscriptions are dropped first and the NDEATH's PUBACK awaited (the broker acknowledges in order, so
        everything else in flight is acknowledged by then): the broker has nothing left to send, so the socket closes
        with nothing unread and the broker gets the DISCONNECT and drops the Will. Closing with unread data would
        reset the connection, and the broker would publish the Will as for a crash.
        """
        assert self.sparkplug is not None
        session.unsubscribe(self._subscriptions)
        self._death_acked.clear()
        try:
            self._death_mid = session.publish(self.sparkplug.topics.ndeath, payloads.death(bd_seq), qos=1)
        except ConnectionError:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._death_acked.wait(), self.broker.connect_timeout)

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
        self._host.new_session()
        born = False
        session.start()
        try:
            while not session.closed.is_set() and not self._closing:
                if born and self._host.offline_since_birth:  # even if it is already back: it expects a new session
                    log.info("primary host went offline: ending the session until it is back")
                    await self._last_words(session, bd_seq)
                    break
                if self._host.said_offline and len(self.brokers) > 1:
                    log.info("primary host is offline on %s:%s: trying the next broker", *self._where())
                    break
                if self._connected and self._host.online:
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
                log.warning("MQTT session to %s:%s ended: %s", *self._where(), session.failure)
            self._session, self._connected = None, False
            self._inflight.clear()
            self._unacked.clear()
            self._acked.clear()
            self.spool.rewind()
        return born

    def _where(self) -> tuple[str, int]:
        return self.broker.host, self.broker.port

    def _birth(self, session: MqttSession, bd_seq: int) -> None:
        """NBIRTH (seq 0) and, with devices, every DBIRTH (seq 1, 2, ...): the whole birth sequence, before any data."""
        self._rebirth = False
        self._host.born()
        if self.sparkplug is None:
            return
        births = self._birth_sequence()
        sequence = births.births(self.table, bd_seq)
        self._birth_mark = self.spool.next_id
        for seq, message in enumerate(sequence):
            payload = message.payload if seq == 0 else payloads.with_seq(message.payload, seq)
            # Births go at the data's QoS: 1 by default (a deviation, see the module docstring), 0 with `qos: 0`.
            with contextlib.suppress(ConnectionError):
                mid = session.publish(message.topic, payload, qos=self.qos)
                self._inflight[mid] = (None, payloads.message_kind(message.topic))
        self._seq = len(sequence) - 1
        self._store(births.after_births(), None)

    def _birth_sequence(self) -> BirthSequence:
        assert self.sparkplug is not None
        if self.sparkplug.births is None:  # tags as node metrics: one NBIRTH with every tag
            self.sparkplug = replace(
                self.sparkplug, births=SparkplugFormat(self.sparkplug.topics, self.sparkplug.aliases)
            )
        assert self.sparkplug.births is not None
        return self.sparkplug.births

    def _fill_window(self, session: MqttSession) -> None:
        while len(self._inflight) < self.window:
            batch = self.spool.read(self.window - len(self._inflight))
            if not batch:
                return
            for message_id, data in batch:
                message = Message.unpack(data)
                payload = message.payload
                kind = payloads.message_kind(message.topic) if self.sparkplug is not None else "json"
                historical = message_id < self._birth_mark
                if kind in ("DBIRTH", "DDEATH") and historical:
                    # A device came or went before the current birth sequence, which already says what holds now;
                    # what it carried (values, or the nulls of a death) is replayed as history.
                    history = self._birth_sequence().as_history(message)
                    if history is None:
                        self._unacked.append(message_id)
                        self._settle(message_id)
                        continue
                    message, payload, kind = history, history.payload, "DDATA"
                if kind in ("NDATA", "DDATA", "DBIRTH", "DDEATH"):
                    self._seq = (self._seq + 1) % 256
                    payload = payloads.with_seq(payload, self._seq, historical=historical and kind.endswith("DATA"))
                try:
                    mid = session.publish(message.topic, payload, qos=self.qos)
                except ConnectionError:
                    return  # the session is ending; the buffer is rewound when it has
                self._inflight[mid] = (message_id, kind)
                self._unacked.append(message_id)

    # ---- session events (on the loop) --------------------------------------------------------------------------

    def connected(self) -> None:
        self._connected = True
        self.metrics.mqtt_connected.set(1)
        session = self._session
        if session is not None and self.sparkplug is not None:
            topics = self.sparkplug.topics
            self._subscriptions = [
                topics.ncmd,
                *(topics.device("DCMD", d) for d in sorted(self.sparkplug.command_devices)),
            ]
            if self.sparkplug.primary_host_id:
                self._subscriptions.append(payloads.Topics.state(self.sparkplug.primary_host_id))
            for topic in self._subscriptions:
                session.subscribe(topic)  # QoS 1
        self._wake.set()

    def acknowledged(self, mid: int) -> None:
        if mid == self._death_mid:
            self._death_mid = None
            self.metrics.published.labels("NDEATH").inc()
            self._death_acked.set()
            return
        entry = self._inflight.pop(mid, None)
        if entry is None:
            return
        message_id, kind = entry
        self.metrics.published.labels(kind).inc()
        if message_id is not None:
            self._settle(message_id)
            observed = self._observed_ns.pop(message_id, None)
            if observed is not None:
                self.metrics.latency.observe((time.monotonic_ns() - observed) / 1e9)
            self._refresh_gauges()
        self._wake.set()

    def _settle(self, message_id: int) -> None:
        """`message_id` needs no more sending: the buffer's head moves past every message settled in order."""
        self._acked.add(message_id)
        last = None
        while self._unacked and self._unacked[0] in self._acked:
            last = self._unacked.popleft()
            self._acked.discard(last)
        if last is not None:
            self.spool.ack_through(last)

    def message(self, topic: str, payload: bytes) -> None:
        if self.sparkplug is None:
            return
        if topic == self.sparkplug.topics.ncmd:
            self._command(payload, None)
        elif payloads.message_kind(topic) == "DCMD":
            device = topic.rsplit("/", 1)[-1]
            if device in self.sparkplug.command_devices and topic == self.sparkplug.topics.device("DCMD", device):
                self._command(payload, device)
        elif self.sparkplug.primary_host_id and topic == payloads.Topics.state(self.sparkplug.primary_host_id):
            self._host.receive(payload, self._server, born=self.ready.is_set())
        self._wake.set()

    def disconnected(self, reason: str) -> None:
        self._connected = False
        self._wake.set()

    def _command(self, payload: bytes, device: str | None) -> None:
        assert self.sparkplug is not None
        verb = "DCMD" if device else "NCMD"
        try:
            command = payloads.parse_command(
                payload, self.sparkplug.aliases, device=device, tags=device is not None or not self.sparkplug.devices
            )
        except ValueError as exc:
            log.warning("ignoring %s: %s", verb, exc)
            self.metrics.writes.labels("mqtt", "refused").inc()
            return
        if command.rebirth:
            self._rebirth = True
        for name in command.unknown:
            log.warning("%s for unknown metric %r refused", verb, name)
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
