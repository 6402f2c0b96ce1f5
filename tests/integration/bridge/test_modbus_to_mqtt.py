"""Modbus TCP devices (real pymodbus servers) through the bridge into Sparkplug B and JSON on a real Mosquitto."""

from __future__ import annotations

import contextlib
import json
import struct
from collections.abc import AsyncIterator
from pathlib import Path

from shopfloor_bridge.bridge import Bridge
from shopfloor_bridge.config import BridgeConfig
from shopfloor_bridge.sparkplug.sparkplug_payload_pb2 import Payload
from tests.integration.bridge.devices import COILS, HOLDING, ModbusDevice
from tests.integration.bridge.manifests import bridge_manifest, config_of, modbus_source
from tests.integration.bridge.probe import Probe, eventually
from tests.support.mosquitto import Mosquitto
from tests.support.sparkplug import metric_value

TAGS = [
    {"name": "Level", "table": "holdingRegisters", "address": 0, "type": "REAL"},
    {"name": "Count", "table": "holdingRegisters", "address": 2, "type": "DINT"},
    {"name": "Setpoint", "table": "holdingRegisters", "address": 4, "type": "INT", "scale": 0.1},
    {"name": "Pump", "table": "coils", "address": 0, "type": "BOOL"},
]
SPARKPLUG = {"groupId": "plant-a", "edgeNodeId": "line-1"}


def real_words(value: float) -> list[int]:
    high, low = struct.unpack(">HH", struct.pack(">f", value))
    return [high, low]


@contextlib.asynccontextmanager
async def running(config: BridgeConfig) -> AsyncIterator[Bridge]:
    bridge = Bridge(config)
    await bridge.start()
    try:
        yield bridge
    finally:
        await bridge.stop()


def last_values(probe: Probe) -> dict[str, object]:
    """The newest value of every metric, by name, following aliases from the last birth."""
    names: dict[int, str] = {}
    values: dict[str, object] = {}
    for message in probe.snapshot():
        if message.kind not in ("NBIRTH", "NDATA"):
            continue
        payload = message.sparkplug()
        for metric in payload.metrics:
            if message.kind == "NBIRTH" and metric.HasField("alias"):
                names[metric.alias] = metric.name
            name = metric.name or names.get(metric.alias, "")
            values[name] = metric_value(metric)
    return values


async def test_modbus_tags_are_born_and_reported_by_exception(broker: Mosquitto, tmp_path: Path) -> None:
    device = await ModbusDevice().start()
    await device.set(HOLDING, 0, [*real_words(21.5), 0, 7, 235])
    await device.set(COILS, 0, [True])
    probe = Probe(broker, ("spBv1.0/#",)).start()
    document = bridge_manifest([modbus_source(device.port, TAGS)], mqtt={"url": broker.url, "sparkplug": SPARKPLUG})
    async with running(config_of(document, tmp_path / "state")):
        values = await eventually(lambda: (v := last_values(probe)).get("mixer/Count") == 7 and v, what="first values")
        assert values["mixer/Level"] == 21.5 and values["mixer/Pump"] is True
        assert abs(values["mixer/Setpoint"] - 23.5) < 1e-4  # type: ignore[operator]
        data_before = len(probe.of_kind("NDATA"))
        await device.set(HOLDING, 2, [0, 8])
        await eventually(lambda: last_values(probe).get("mixer/Count") == 8)
        changed = probe.of_kind("NDATA")[data_before:]
        # Report by exception: polls every 20 ms, but only the one change went out, carrying only that metric.
        assert [len(m.sparkplug().metrics) for m in changed] == [1]
    birth = probe.of_kind("NBIRTH")[0].sparkplug()
    assert {m.name for m in birth.metrics} >= {"bdSeq", "mixer/Level", "mixer/Count", "mixer/Setpoint", "mixer/Pump"}
    probe.stop()
    await device.stop()


async def test_device_that_disappears_goes_bad_then_good(broker: Mosquitto, tmp_path: Path) -> None:
    device = await ModbusDevice().start()
    await device.set(HOLDING, 2, [0, 5])
    probe = Probe(broker, ("spBv1.0/#",)).start()
    document = bridge_manifest([modbus_source(device.port, TAGS)], mqtt={"url": broker.url, "sparkplug": SPARKPLUG})
    async with running(config_of(document, tmp_path / "state")) as bridge:
        await eventually(lambda: last_values(probe).get("mixer/Count") == 5)
        await device.stop()
        await eventually(lambda: last_values(probe).get("mixer/Count", 0) is None, what="quality bad (null)")
        assert bridge.table.count_by_quality()["bad"] == len(TAGS)  # type: ignore[index]
        await device.start()
        await device.set(HOLDING, 2, [0, 6])
        await eventually(lambda: last_values(probe).get("mixer/Count") == 6, timeout=15, what="good again")
        assert bridge.table.count_by_quality()["good"] == len(TAGS)  # type: ignore[index]
        polls = bridge.metrics.polls
        assert polls.labels("mixer", "ok")._value.get() > 0
        assert polls.labels("mixer", "error")._value.get() + polls.labels("mixer", "timeout")._value.get() > 0
    probe.stop()
    await device.stop()


async def test_ncmd_writes_only_allowed_tags(broker: Mosquitto, tmp_path: Path) -> None:
    device = await ModbusDevice().start()
    probe = Probe(broker, ("spBv1.0/#",)).start()
    document = bridge_manifest(
        [modbus_source(device.port, TAGS)],
        mqtt={"url": broker.url, "sparkplug": SPARKPLUG},
        writes={"enabled": True, "allow": ["mixer/Setpoint"]},
    )
    async with running(config_of(document, tmp_path / "state")) as bridge:
        await eventually(lambda: probe.of_kind("NBIRTH"))
        command = Payload()
        command.metrics.add(name="mixer/Pump", boolean_value=True)  # not allowed
        command.metrics.add(name="mixer/Setpoint", float_value=42.0)  # allowed: raw 420 at scale 0.1
        probe.client.publish("spBv1.0/plant-a/NCMD/line-1", command.SerializeToString(), qos=1)
        writes = bridge.metrics.writes
        await eventually(lambda: writes.labels("mqtt", "written")._value.get() == 1, what="allowed write done")
        assert writes.labels("mqtt", "refused")._value.get() == 1
        assert await device.get(HOLDING, 4) == [420]
        assert await device.get(COILS, 0) == [False]
        await eventually(lambda: abs(last_values(probe).get("mixer/Setpoint", 0) - 42.0) < 1e-4)  # type: ignore[operator]
    probe.stop()
    await device.stop()


async def test_plain_json_under_topic_prefix(broker: Mosquitto, tmp_path: Path) -> None:
    device = await ModbusDevice().start()
    await device.set(HOLDING, 2, [0, 3])
    probe = Probe(broker, ("plant/#",)).start()
    document = bridge_manifest(
        [modbus_source(device.port, TAGS)], mqtt={"url": broker.url, "topicPrefix": "plant/line-1"}
    )
    async with running(config_of(document, tmp_path / "state")):
        message = await eventually(lambda: [m for m in probe.snapshot() if m.topic == "plant/line-1/mixer/Count"])
    body = json.loads(message[0].payload)
    assert body["value"] == 3 and body["quality"] == "good" and isinstance(body["timestamp"], int)
    probe.stop()
    await device.stop()


async def test_exception_response_turns_only_that_request_bad(broker: Mosquitto, tmp_path: Path) -> None:
    device = await ModbusDevice(size=100).start()
    await device.set(HOLDING, 0, [9])
    tags = [
        {"name": "Here", "table": "holdingRegisters", "address": 0, "type": "UINT"},
        {"name": "Beyond", "table": "holdingRegisters", "address": 500, "type": "UINT"},  # the device has 100
    ]
    probe = Probe(broker, ("spBv1.0/#",)).start()
    document = bridge_manifest([modbus_source(device.port, tags)], mqtt={"url": broker.url, "sparkplug": SPARKPLUG})
    async with running(config_of(document, tmp_path / "state")) as bridge:
        await eventually(lambda: last_values(probe).get("mixer/Here") == 9)
        await eventually(lambda: bridge.metrics.polls.labels("mixer", "exception")._value.get() > 2)
        assert "mixer/Beyond" in last_values(probe) and last_values(probe)["mixer/Beyond"] is None
        assert bridge.metrics.source_connected.labels("mixer")._value.get() == 1  # no reconnect for that
    probe.stop()
    await device.stop()
