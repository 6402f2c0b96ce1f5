"""A Sparkplug B subscriber for the demo: what a SCADA host sees of the bridge's edge node."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any

import paho.mqtt.client as mqtt

from shopfloor_bridge.sparkplug.sparkplug_payload_pb2 import Payload


def _value(metric: Any) -> Any:
    kind = metric.WhichOneof("value")
    return None if kind is None else getattr(metric, kind)


class SparkplugWatch:
    def __init__(self, port: int, group_id: str) -> None:
        self.group_id = group_id
        self.births: list[dict[str, Any]] = []
        self.data: list[dict[str, Any]] = []
        self.raw: list[tuple[str, bytes]] = []  # every message as received, for independent decoding
        self._names: dict[int, str] = {}
        self._lock = threading.Lock()
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="shopfloor-demo-host")
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._port = port

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, _reason: Any, _properties: Any) -> None:
        client.subscribe(f"spBv1.0/{self.group_id}/#", qos=1)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        kind = message.topic.split("/")[2]
        payload = Payload()
        payload.ParseFromString(message.payload)
        with self._lock:
            self.raw.append((message.topic, bytes(message.payload)))
            if kind == "NBIRTH":
                self._names = {m.alias: m.name for m in payload.metrics if m.name != "bdSeq"}
                bd_seq = next((_value(m) for m in payload.metrics if m.name == "bdSeq"), None)
                self.births.append({"seq": payload.seq, "bdSeq": bd_seq, "metrics": list(self._names.values())})
            elif kind == "NDATA":
                metrics = {self._names.get(m.alias, m.name or str(m.alias)): _value(m) for m in payload.metrics}
                self.data.append({"seq": payload.seq, "metrics": metrics})

    def __enter__(self) -> SparkplugWatch:
        self._client.connect("127.0.0.1", self._port)
        self._client.loop_start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._client.loop_stop()
        self._client.disconnect()
