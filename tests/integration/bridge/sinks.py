"""Builds an MQTT sink wired to a test broker, without sources."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from shopfloor_bridge.metrics import BridgeMetrics
from shopfloor_bridge.mqtt_formats import JsonFormat, MessageFormat, SparkplugDeviceFormat, SparkplugFormat
from shopfloor_bridge.mqtt_session import BrokerSettings
from shopfloor_bridge.mqtt_sink import CommandHandler, MqttSink, SparkplugNode
from shopfloor_bridge.sparkplug import payloads
from shopfloor_bridge.sparkplug.sparkplug_payload_pb2 import Payload
from shopfloor_bridge.spool import Spool
from shopfloor_bridge.tags import DataType, Quality, TagInfo, TagTable, TagValue, Value
from tests.integration.bridge.probe import Probe
from tests.support.mosquitto import Mosquitto
from tests.support.sparkplug.edge_node import EdgeNodeChecker

TAGS = [TagInfo("dev/Counter", DataType.UDINT), TagInfo("dev/Run", DataType.BOOL), TagInfo("dev/Level", DataType.REAL)]
TOPICS = payloads.Topics("plant-a", "line-1")
# Two Sparkplug devices, "press" and "oven", as a bridge with sparkplug.devices: PerSource makes of two sources.
DEVICE_TAGS = [
    TagInfo("press/Counter", DataType.UDINT),
    TagInfo("press/Run", DataType.BOOL),
    TagInfo("oven/Level", DataType.REAL),
]
DEVICES = {"press": ["press/Counter", "press/Run"], "oven": ["oven/Level"]}


def checked(probe: Probe) -> EdgeNodeChecker:
    """Everything the node published, as a host checks it (every tck-id in EdgeNodeChecker)."""
    return EdgeNodeChecker(TOPICS.group_id, TOPICS.edge_node_id).feed_all(probe.sparkplug_stream())


def request_rebirth(probe: Probe) -> None:
    """The host's NCMD Node Control/Rebirth = true."""
    command = Payload()
    command.metrics.add(name=payloads.REBIRTH, boolean_value=True)
    probe.client.publish(TOPICS.ncmd, command.SerializeToString(), qos=1)


def settings_for(broker: Mosquitto, **extra: object) -> BrokerSettings:
    return BrokerSettings(host="127.0.0.1", port=broker.port, tls=broker.tls, ca_file=broker.ca_file, **extra)  # type: ignore[arg-type]


class Harness:
    """A running sink plus its tag table; `change` feeds tag changes the way the bridge core does."""

    def __init__(self, sink: MqttSink, table: TagTable) -> None:
        self.sink = sink
        self.table = table

    def change(self, name: str, value: Value, quality: Quality = Quality.GOOD) -> None:
        self.sink.submit(self.table.update([TagValue(name, value, quality)]))

    def change_many(self, values: Sequence[tuple[str, Value]]) -> None:
        self.sink.submit(self.table.update([TagValue(n, v, Quality.GOOD) for n, v in values]))

    def lose(self, *names: str) -> None:
        """The tags turn bad, as when their device is lost."""
        self.sink.submit(self.table.update([TagValue(n, None, Quality.BAD) for n in names]))


@contextlib.asynccontextmanager
async def running_sink(
    broker: Mosquitto,
    spool_dir: Path,
    *,
    sparkplug: bool = True,
    primary_host_id: str | None = None,
    max_bytes: int = 8 << 20,
    on_command: CommandHandler | None = None,
    settings: BrokerSettings | Sequence[BrokerSettings] | None = None,
    devices: bool = False,
    qos: int = 1,
) -> AsyncIterator[Harness]:
    """A sink for TAGS as node metrics, or with `devices` for DEVICE_TAGS as the devices in DEVICES."""
    tags = DEVICE_TAGS if devices else TAGS
    table = TagTable(tags)
    aliases = payloads.Aliases(tags)
    node = SparkplugNode(TOPICS, aliases, primary_host_id) if sparkplug else None
    fmt: MessageFormat = SparkplugFormat(TOPICS, aliases) if sparkplug else JsonFormat("plant/line-1")
    if devices:
        device_format = SparkplugDeviceFormat(TOPICS, aliases, table, DEVICES)
        node = SparkplugNode(
            TOPICS, aliases, primary_host_id, births=device_format, devices=True, command_devices=frozenset(DEVICES)
        )
        fmt = device_format
    sink = MqttSink(
        settings or settings_for(broker),
        Spool(spool_dir, max_bytes),
        fmt,
        BridgeMetrics(),
        table=table,
        sparkplug=node,
        on_command=on_command,
        backoff=(0.05, 0.5),
        qos=qos,
    )
    task = asyncio.create_task(sink.run())
    try:
        yield Harness(sink, table)
    finally:
        await sink.close()
        await asyncio.wait_for(task, 10)
