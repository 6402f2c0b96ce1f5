"""A plain paho-mqtt subscriber that records what the bridge publishes, and acts as a Sparkplug primary host."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.mosquitto import Mosquitto
from tests.support.sparkplug import decode
from tests.support.waiting import async_wait_for


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    at_ns: int
    qos: int = 0
    retain: bool = False

    @property
    def kind(self) -> str:
        parts = self.topic.split("/")
        return parts[2] if len(parts) > 2 and parts[0] == "spBv1.0" else ""

    def sparkplug(self) -> Any:
        return decode(self.payload)


class Probe:
    def __init__(
        self,
        broker: Mosquitto,
        topics: tuple[str, ...] = ("#",),
        client_certificate: tuple[Path, Path] | None = None,
        **credentials: Any,
    ) -> None:
        self.broker = broker
        self.topics = topics
        self.messages: list[Received] = []
        self._lock = threading.Lock()
        self.connected = threading.Event()
        self.on_connect_publish: list[tuple[str, bytes]] = []
        client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        client.reconnect_delay_set(0.05, 0.2)
        if credentials:
            client.username_pw_set(credentials["username"], credentials["password"])
        if broker.tls:
            cert, key = client_certificate or (None, None)
            client.tls_set(ca_certs=str(broker.ca_file), certfile=cert and str(cert), keyfile=key and str(key))
        self._subscribing: set[int] = set()
        self.subscribed = threading.Event()  # the broker acknowledged every subscription of the current connection
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = lambda *_: (self.connected.clear(), self.subscribed.clear())
        client.on_message = self._on_message
        self.client = client

    def start(self) -> Probe:
        self.client.connect_async("127.0.0.1", self.broker.port, keepalive=5)
        self.client.loop_start()
        assert self.connected.wait(10), "probe could not connect to the broker"
        # Subscribed before the test goes on: nothing the bridge publishes from now on can pass the probe by.
        assert self.subscribed.wait(10), "the broker did not acknowledge the probe's subscriptions"
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            return
        self._subscribing = {client.subscribe(topic, qos=1)[1] for topic in self.topics}
        # Subscriptions are in place before anything below is published (the broker handles packets in order).
        for topic, payload in self.on_connect_publish:
            client.publish(topic, payload, qos=1, retain=True)
        self.connected.set()

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, _codes: Any, _p: Any) -> None:
        self._subscribing.discard(mid)
        if not self._subscribing:
            self.subscribed.set()

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(
                Received(message.topic, bytes(message.payload), time.monotonic_ns(), message.qos, message.retain)
            )

    def host_state(self, host_id: str, online: bool, timestamp: int | None = None) -> None:
        """Publishes a Sparkplug 3.0 primary host STATE (retained), and again after every reconnect."""
        topic = f"spBv1.0/STATE/{host_id}"
        stamp = int(time.time() * 1000) if timestamp is None else timestamp
        payload = json.dumps({"online": online, "timestamp": stamp}).encode()
        self.on_connect_publish = [(topic, payload)]
        self.client.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)

    def of_kind(self, kind: str) -> list[Received]:
        with self._lock:
            return [m for m in self.messages if m.kind == kind]

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.messages)

    def sparkplug_stream(self) -> list[tuple[str, bytes]]:
        """(topic, payload) of every Sparkplug message received, in order: what an EdgeNodeChecker is fed."""
        return [(m.topic, m.payload) for m in self.snapshot() if m.kind]

    async def round_trip(self, topic: str = "probe/marker") -> None:
        """Publishes a marker and waits until the broker delivered it back: everything the broker handled before the
        marker has been delivered to this probe by then."""
        marker = f"{time.monotonic_ns()}".encode()
        self.client.subscribe(topic, qos=1)  # handled before the publish below: one client's packets stay in order
        self.client.publish(topic, marker, qos=1)
        await eventually(
            lambda: any(m.topic == topic and m.payload == marker for m in self.snapshot()), what="the probe's marker"
        )


async def eventually(condition: Callable[[], object], timeout: float = 10.0, what: str = "") -> Any:
    """Polls a plain condition from async code until it is truthy (returned) or the deadline passes."""

    async def check() -> object:
        return condition()

    return await async_wait_for(check, timeout=timeout, interval=0.02, what=what)
