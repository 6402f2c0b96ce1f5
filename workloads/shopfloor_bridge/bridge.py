"""Assembles a bridge from its settings: sources feed the tag table, whose changes go to every sink."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from shopfloor_bridge.config import BridgeConfig
from shopfloor_bridge.metrics import BridgeMetrics
from shopfloor_bridge.modbus_source import ModbusSource
from shopfloor_bridge.mqtt_formats import JsonFormat, MessageFormat, SparkplugDeviceFormat, SparkplugFormat
from shopfloor_bridge.mqtt_sink import MqttSink, SparkplugNode
from shopfloor_bridge.opcua_server import OpcUaServerSink
from shopfloor_bridge.opcua_source import OpcUaSource
from shopfloor_bridge.sparkplug import payloads
from shopfloor_bridge.spool import Spool
from shopfloor_bridge.state import BridgeState, Health, StateListener
from shopfloor_bridge.tags import DataType, TagInfo, TagTable, TagValue, Value
from shopfloor_bridge.writes import WriteGate, Writer

log = logging.getLogger(__name__)

# With Sparkplug devices, how long the first MQTT session waits for every source's first read, so that devices are
# born with their values rather than born null, declared dead and born again a moment later.
FIRST_READS_WAIT = 2.0


class Bridge:
    def __init__(self, config: BridgeConfig, *, listeners: Sequence[StateListener] = ()) -> None:
        self.config = config
        self.metrics = BridgeMetrics()
        self.health = Health(list(listeners))
        self.table = TagTable(config.tags)
        self.aliases = payloads.Aliases(config.tags)
        self.modbus = [ModbusSource(device, self.ingest, self.metrics) for device in config.modbus]
        self.opcua = [OpcUaSource(device, self.ingest, self.metrics, self._retype) for device in config.opcua]
        writers: dict[str, Writer] = {}
        for modbus in self.modbus:
            writers.update(dict.fromkeys((tag.name for tag in modbus.device.tags), modbus))
        for opcua in self.opcua:
            writers.update(dict.fromkeys(opcua.device.nodes, opcua))
        self.gate = WriteGate(config.writes_enabled, config.writes_allow, writers, self.metrics)
        self.mqtt = self._mqtt_sink()
        self.opcua_server = (
            OpcUaServerSink(config.opcua_server, self.table, self.gate, self.metrics) if config.opcua_server else None
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._all_read = asyncio.Event()
        self._refresh_tag_gauges()

    def _mqtt_sink(self) -> MqttSink | None:
        mqtt = self.config.mqtt
        if mqtt is None:
            return None
        node = None
        message_format: MessageFormat
        if mqtt.group_id and mqtt.edge_node_id:
            topics = payloads.Topics(mqtt.group_id, mqtt.edge_node_id)
            if mqtt.devices:  # one Sparkplug device per source, named after it
                names = [source.name for source in self.config.modbus] + [source.name for source in self.config.opcua]
                devices = {n: [t.name for t in self.config.tags if t.name.startswith(f"{n}/")] for n in names}
                device_format = SparkplugDeviceFormat(topics, self.aliases, self.table, devices)
                node = SparkplugNode(
                    topics,
                    self.aliases,
                    mqtt.primary_host_id,
                    births=device_format,
                    devices=True,
                    command_devices=frozenset(devices),  # a DCMD for a tag not in writes.allow is refused
                )
                message_format = device_format
            else:
                node = SparkplugNode(topics, self.aliases, mqtt.primary_host_id)
                message_format = SparkplugFormat(topics, self.aliases)
        else:
            message_format = JsonFormat(mqtt.topic_prefix or self.config.name)
        spool = Spool(self.config.state_dir / "mqtt-buffer", mqtt.max_bytes)
        return MqttSink(
            mqtt.brokers,
            spool,
            message_format,
            self.metrics,
            table=self.table,
            sparkplug=node,
            on_command=self.gate.write_many,
            qos=mqtt.qos,
        )

    # ---- data path ---------------------------------------------------------------------------------------------

    def ingest(self, values: list[TagValue]) -> None:
        """Called by sources: keeps what changed and hands it to every sink."""
        changes = self.table.update(values)
        if not changes:
            return
        if not self._all_read.is_set() and self.table.all_read():
            self._all_read.set()
        if self.mqtt is not None:
            self.mqtt.submit(changes)
        if self.opcua_server is not None:
            self.opcua_server.update(changes)
        self._refresh_tag_gauges()

    async def write(self, origin: str, name: str, value: Value) -> None:
        """Write-back through the gate (raises WriteRefused / WriteError)."""
        await self.gate.write(origin, name, value)

    def _retype(self, types: dict[str, DataType]) -> None:
        """An OPC UA source learned its nodes' data types: births must announce them."""
        changed = False
        for name, datatype in types.items():
            if self.table.info[name].datatype is not datatype:
                info = TagInfo(name, datatype)
                self.table.info[name] = info
                self.aliases.retype(info)
                changed = True
        if changed and self.mqtt is not None:
            self.mqtt.request_rebirth()

    def _refresh_tag_gauges(self) -> None:
        for quality, count in self.table.count_by_quality().items():
            self.metrics.tags.labels(str(quality)).set(count)

    # ---- lifecycle ---------------------------------------------------------------------------------------------

    async def start(self) -> None:
        try:
            if self.opcua_server is not None:
                await self.opcua_server.start()
                self.health.add_sink("opcua", lambda: True)
        except (OSError, ValueError) as exc:
            self.health.set_state(BridgeState.FAULTED, f"OPC UA server: {exc}")
            raise
        sources: list[ModbusSource | OpcUaSource] = [*self.modbus, *self.opcua]
        for source in sources:
            self._tasks.append(asyncio.create_task(source.run(), name=f"source-{source.device.name}"))
        if self.mqtt is not None:
            if self.config.mqtt is not None and self.config.mqtt.devices:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._all_read.wait(), FIRST_READS_WAIT)
            self.health.add_sink("mqtt", self.mqtt.ready.is_set)
            self._tasks.append(asyncio.create_task(self.mqtt.run(), name="mqtt"))
        self.health.set_state(BridgeState.RUNNING)

    async def stop(self) -> None:
        for task in self._tasks:
            if task.get_name() != "mqtt":
                task.cancel()
        for modbus in self.modbus:
            await modbus.close()
        if self.mqtt is not None:
            await self.mqtt.close()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 10)
        if self.opcua_server is not None:
            await self.opcua_server.stop()
        self.health.set_state(BridgeState.STOPPED)
