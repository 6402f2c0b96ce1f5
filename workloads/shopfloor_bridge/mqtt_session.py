"""One MQTT connection (paho-mqtt 2.x) run by paho's network thread, its events delivered to the asyncio loop.

A session never reconnects by itself (paho's reconnect is off): when the connection ends, the owner starts a new
one. That keeps each connection's Will (the Sparkplug NDEATH with its bdSeq) and its in-flight messages apart, and
lets the owner decide what to resend from the store-and-forward buffer instead of paho resending from memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from shopfloor_inpod.endpoints import resolve


@dataclass(frozen=True)
class BrokerSettings:
    host: str
    port: int
    tls: bool = False
    ca_file: Path | None = None  # None with TLS: the system's trusted CAs
    cert_file: Path | None = None  # client certificate, for brokers that require one
    key_file: Path | None = None
    username: str | None = None
    password: str | None = None
    mqtt_version: int = 4  # 4 = MQTT 3.1.1, 5 = MQTT 5
    websockets: bool = False
    client_id: str = ""
    keepalive: int = 30
    connect_timeout: float = 5.0

    def __repr__(self) -> str:  # never print the password
        return f"BrokerSettings({self.host}:{self.port}, tls={self.tls}, user={self.username!r}, v{self.mqtt_version})"


@dataclass(frozen=True, slots=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False


class SessionEvents:
    """Callbacks run on the asyncio loop; override what you need."""

    def connected(self) -> None: ...

    def acknowledged(self, mid: int) -> None: ...

    def message(self, topic: str, payload: bytes) -> None: ...

    def disconnected(self, reason: str) -> None: ...


class MqttSession:
    def __init__(
        self, settings: BrokerSettings, events: SessionEvents, loop: asyncio.AbstractEventLoop, will: Will | None = None
    ) -> None:
        self.settings = settings
        self._events = events
        self._loop = loop
        self._stop = threading.Event()
        self._gone = threading.Event()  # paho reported the connection ended (after writing our DISCONNECT, if any)
        self.closed = asyncio.Event()
        self.failure: str | None = None
        protocol = mqtt.MQTTv5 if settings.mqtt_version == 5 else mqtt.MQTTv311
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            protocol=protocol,
            clean_session=None if protocol == mqtt.MQTTv5 else True,
            transport="websockets" if settings.websockets else "tcp",
            reconnect_on_failure=False,  # a lost connection ends the session; the owner starts the next one
        )
        if will is not None:
            client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
        if settings.username is not None:
            client.username_pw_set(settings.username, settings.password)
        if settings.tls:
            client.tls_set(
                ca_certs=str(settings.ca_file) if settings.ca_file else None,
                certfile=str(settings.cert_file) if settings.cert_file else None,
                keyfile=str(settings.key_file) if settings.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        client.connect_timeout = settings.connect_timeout
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        self._client = client
        self._thread = threading.Thread(target=self._run, name=f"mqtt-{settings.host}:{settings.port}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def set_window(self, inflight: int) -> None:
        self._client.max_inflight_messages_set(inflight)

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int:
        """Queues a message; returns its message id (acknowledged later through `acknowledged`)."""
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise ConnectionError(f"MQTT publish failed: {mqtt.error_string(info.rc)}")
        return int(info.mid)

    def subscribe(self, topic: str, qos: int = 1) -> None:
        self._client.subscribe(topic, qos=qos)

    def unsubscribe(self, topics: list[str]) -> None:
        if topics:
            self._client.unsubscribe(topics)

    async def stop(self) -> None:
        """Ends the session with a clean DISCONNECT (so the broker does not publish the Will) and waits."""
        self._stop.set()
        await asyncio.to_thread(self._thread.join)

    # ---- the session's thread ----------------------------------------------------------------------------------

    def _run(self) -> None:
        # Connect here (blocking), then let paho's own network thread run the connection: with it, publish() only
        # queues and a single thread writes the socket, which keeps messages in order on the wire.
        reason = "stopped"
        try:
            host, port = resolve(self.settings.host, self.settings.port)
            self._client.connect(host, port, self.settings.keepalive)
            self._client.loop_start()
            self._stop.wait()
        except (OSError, ssl.SSLError, ValueError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
        finally:
            # A clean DISCONNECT when still connected, so the broker drops the Will. paho writes it (after anything
            # queued before, e.g. an NDEATH) on its network thread: wait for that before stopping the thread, or the
            # socket may close first and the broker publish the Will as for a crash.
            if self._client.disconnect() == mqtt.MQTT_ERR_SUCCESS:
                self._gone.wait(self.settings.connect_timeout)
            self._client.loop_stop()
            self._post(self._finish, reason)

    def _post(self, callback: Callable[..., None], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: the bridge is shutting down
            self._loop.call_soon_threadsafe(callback, *args)

    def _finish(self, reason: str) -> None:
        self.failure = self.failure or reason
        if not self.closed.is_set():
            self.closed.set()
            self._events.disconnected(self.failure)

    # ---- paho callbacks (paho's thread) ------------------------------------------------------------------------

    def _on_connect(self, _c: Any, _u: Any, _flags: Any, reason: ReasonCode, _p: Any) -> None:
        if reason.is_failure:
            self.failure = f"broker refused the connection: {reason}"
            self._stop.set()
            return
        self._post(self._events.connected)

    def _on_disconnect(self, _c: Any, _u: Any, _flags: Any, reason: ReasonCode, _p: Any) -> None:
        self.failure = self.failure or f"disconnected: {reason}"
        self._gone.set()
        self._stop.set()

    def _on_publish(self, _c: Any, _u: Any, mid: int, _reason: ReasonCode, _p: Any) -> None:
        self._post(self._events.acknowledged, mid)

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        self._post(self._events.message, message.topic, bytes(message.payload))
