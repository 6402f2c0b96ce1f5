"""sparkplug.devices: PerSource end to end: real Modbus devices (pymodbus servers) and OPC UA servers (asyncua)
through the bridge to a real Mosquitto, decoded as a Sparkplug host would with the official schema."""

from __future__ import annotations

from pathlib import Path

from shopfloor_bridge.sparkplug.sparkplug_payload_pb2 import Payload
from tests.integration.bridge.devices import COILS, HOLDING, ModbusDevice
from tests.integration.bridge.manifests import bridge_manifest, config_of, modbus_source
from tests.integration.bridge.opcua_peers import OpcUaDevice
from tests.integration.bridge.probe import Probe, eventually
from tests.integration.bridge.test_modbus_to_mqtt import real_words, running
from tests.support.mosquitto import Mosquitto
from tests.support.sparkplug import BOOLEAN, FLOAT, metric_value
from tests.support.sparkplug.edge_node import EdgeNodeChecker

SPARKPLUG = {"groupId": "plant-a", "edgeNodeId": "line-1", "devices": "PerSource"}
MIXER = [
    {"name": "Level", "table": "holdingRegisters", "address": 0, "type": "REAL"},
    {"name": "Pump", "table": "coils", "address": 0, "type": "BOOL"},
]
FILLER = [{"name": "Count", "table": "holdingRegisters", "address": 0, "type": "UDINT"}]


def device_values(probe: Probe, device: str) -> dict[str, object]:
    """The newest value of each of a device's metrics, by its DBIRTH name."""
    names: dict[int, str] = {}
    values: dict[str, object] = {}
    for message in probe.snapshot():
        if not message.topic.endswith(f"/{device}") or message.kind not in ("DBIRTH", "DDATA"):
            continue
        for metric in message.sparkplug().metrics:
            if message.kind == "DBIRTH":
                names[metric.alias] = metric.name
            values[metric.name or names[metric.alias]] = metric_value(metric)
    return values


async def test_each_source_is_a_device_that_dies_with_its_connection(broker: Mosquitto, tmp_path: Path) -> None:
    """Sources become devices named after them (tck-id-message-flow-device-birth-publish-dbirth-topic); a device whose
    connection is lost gets a DDEATH (tck-id-operational-behavior-device-ddeath) and a full DBIRTH when it is back;
    a DCMD writes a tag in writes.allow (tck-id-operational-behavior-data-commands-dcmd-verb, -dcmd-metric-name)."""
    mixer, filler = await ModbusDevice().start(), await ModbusDevice().start()
    await mixer.set(HOLDING, 0, real_words(21.5))
    await filler.set(HOLDING, 0, [0, 7])
    probe = Probe(broker, ("spBv1.0/#",)).start()
    document = bridge_manifest(
        [modbus_source(mixer.port, MIXER, name="mixer"), modbus_source(filler.port, FILLER, name="filler")],
        mqtt={"url": broker.url, "sparkplug": SPARKPLUG},
        writes={"enabled": True, "allow": ["mixer/Pump"]},
    )
    async with running(config_of(document, tmp_path / "state")) as bridge:
        await eventually(lambda: device_values(probe, "mixer").get("Level") == 21.5, what="the mixer's level")
        await eventually(lambda: device_values(probe, "filler").get("Count") == 7, what="the filler's count")
        # Both readable at the start: born once each, with their values (the first session waits for first reads).
        assert [m.topic.rsplit("/", 1)[1] for m in probe.of_kind("DBIRTH")] == ["mixer", "filler"]
        assert not probe.of_kind("DDEATH") and device_values(probe, "filler")["Count"] == 7
        await filler.stop()
        await eventually(lambda: any(m.topic.endswith("DDEATH/line-1/filler") for m in probe.snapshot()), what="DDEATH")
        await mixer.set(HOLDING, 0, real_words(22.0))  # the other device carries on
        await eventually(lambda: device_values(probe, "mixer").get("Level") == 22.0, what="the mixer's new level")
        command = Payload()
        command.metrics.add(name="Pump", boolean_value=True)
        probe.client.publish("spBv1.0/plant-a/DCMD/line-1/mixer", command.SerializeToString(), qos=1)
        await eventually(lambda: device_values(probe, "mixer").get("Pump") is True, what="the written coil read back")
        assert await mixer.get(COILS, 0) == [True]
        command = Payload()
        command.metrics.add(name="Count", int_value=99)  # the filler has no tag in writes.allow
        probe.client.publish("spBv1.0/plant-a/DCMD/line-1/filler", command.SerializeToString(), qos=1)
        refused = bridge.metrics.writes.labels("mqtt", "refused")
        await eventually(lambda: refused._value.get() == 1, what="the write to a tag not in writes.allow refused")
        await filler.start()
        await filler.set(HOLDING, 0, [0, 8])
        await eventually(lambda: device_values(probe, "filler").get("Count") == 8, timeout=15, what="filler back")
    checker = EdgeNodeChecker("plant-a", "line-1").feed_all(probe.sparkplug_stream())
    assert checker.births == 1
    filler_kinds = [m.kind for m in probe.snapshot() if m.topic.endswith("/filler")]
    death = filler_kinds.index("DDEATH")
    assert "DBIRTH" in filler_kinds[death:] and "DDATA" not in filler_kinds[death : filler_kinds.index("DBIRTH", death)]
    assert {m.name for m in probe.of_kind("NBIRTH")[0].sparkplug().metrics} == {"bdSeq", "Node Control/Rebirth"}
    probe.stop()
    await mixer.stop()
    await filler.stop()


async def test_a_broker_outage_loses_no_device_data(broker: Mosquitto, tmp_path: Path) -> None:
    """Store-and-forward with devices: what changed while the broker was away arrives after the new NBIRTH and
    DBIRTHs as historical DDATA, every value once and in order (tck-id-payloads-ddata-seq-inc across the replay)."""
    filler = await ModbusDevice().start()
    probe = Probe(broker, ("spBv1.0/#",)).start()
    probe.host_state("scada", online=True)  # the probe is the primary host: births wait until it is subscribed again
    document = bridge_manifest(
        [modbus_source(filler.port, FILLER, name="filler")],
        mqtt={"url": broker.url, "sparkplug": {**SPARKPLUG, "primaryHostId": "scada"}},
    )
    async with running(config_of(document, tmp_path / "state")) as bridge:
        await filler.set(HOLDING, 0, [0, 1])
        await eventually(lambda: device_values(probe, "filler").get("Count") == 1, what="first count")
        broker.stop(kill=True)
        for count in range(2, 12):
            await filler.set(HOLDING, 0, [0, count])
            await eventually(lambda c=count: bridge.table.current("filler/Count").value == c)  # type: ignore[misc,union-attr]
        broker.start()
        await eventually(lambda: device_values(probe, "filler").get("Count") == 11, timeout=20, what="replayed")
    checker = EdgeNodeChecker("plant-a", "line-1").feed_all(probe.sparkplug_stream())
    assert checker.births == 2
    counts = [
        metric_value(metric)
        for message in probe.snapshot()
        if message.kind == "DDATA"
        for metric in message.sparkplug().metrics
    ]
    assert counts == sorted(set(counts)) and set(range(2, 12)) <= set(counts)
    second_birth = probe.of_kind("NBIRTH")[1].at_ns
    replayed = [m.sparkplug() for m in probe.of_kind("DDATA") if m.at_ns > second_birth]
    assert replayed and all(metric.is_historical for m in replayed[:1] for metric in m.metrics)
    probe.stop()
    await filler.stop()


async def test_an_opcua_source_is_a_device_born_again_with_its_datatypes(broker: Mosquitto, tmp_path: Path) -> None:
    """An OPC UA source as a device: once its nodes' datatypes are read, the whole birth sequence is published again
    (NBIRTH, then the DBIRTH with the real datatypes: tck-id-operational-behavior-data-publish-dbirth); the server's
    loss kills the device (tck-id-operational-behavior-device-ddeath)."""
    device = await OpcUaDevice(tmp_path / "device", secured=False).start()
    source = {
        "name": "oven",
        "opcua": {
            "endpoint": device.url,
            "securityPolicy": "None",
            "samplingInterval": "20ms",
            "nodes": [
                {"name": "Temp", "nodeId": f"ns={device.namespace};s=Temp"},
                {"name": "Run", "nodeId": f"ns={device.namespace};s=Run"},
            ],
        },
    }
    probe = Probe(broker, ("spBv1.0/#",)).start()
    document = bridge_manifest([source], mqtt={"url": broker.url, "sparkplug": SPARKPLUG})
    async with running(config_of(document, tmp_path / "state")):
        await eventually(lambda: device_values(probe, "oven").get("Temp") == 20.0, what="subscribed value")
        types = {m.name: m.datatype for m in probe.of_kind("DBIRTH")[-1].sparkplug().metrics}
        assert (types["Temp"], types["Run"]) == (FLOAT, BOOLEAN)
        await device.stop()
        await eventually(lambda: probe.of_kind("DDEATH"), timeout=15, what="DDEATH when the server is gone")
    EdgeNodeChecker("plant-a", "line-1").feed_all(probe.sparkplug_stream())
    probe.stop()
    await device.stop()
