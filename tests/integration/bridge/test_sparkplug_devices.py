"""Sparkplug 3.0 devices (one per source) against a real Mosquitto, checked as a host would with the official schema.

Every test feeds what the probe received to `EdgeNodeChecker`, which raises on any violated `tck-id`; the assertions
here are the statements specific to each scenario.
"""

from __future__ import annotations

from pathlib import Path

from shopfloor_bridge.sparkplug.sparkplug_payload_pb2 import Payload
from shopfloor_bridge.tags import Value
from tests.integration.bridge.probe import Probe, Received, eventually
from tests.integration.bridge.sinks import TOPICS, Harness, checked, request_rebirth, running_sink
from tests.support.mosquitto import Mosquitto
from tests.support.sparkplug import metric_value

HOST = "scada"


def by_name(message: Received) -> dict[str, object]:
    return {m.name: metric_value(m) for m in message.sparkplug().metrics}


def live_data(probe: Probe) -> list[Received]:
    """DDATA but those replaying history (values buffered before the births, all flagged historical)."""
    return [m for m in probe.of_kind("DDATA") if not all(x.is_historical for x in m.sparkplug().metrics)]


def topics(probe: Probe, kind: str) -> list[str]:
    return [m.topic for m in probe.of_kind(kind)]


async def born(probe: Probe, bridge: Harness, values: list[tuple[str, Value]]) -> None:
    """Sets `values` while the node waits for its primary host, then lets it be born with them (buffered before the
    births, the devices' first births are also replayed as historical DDATA, like any data buffered before them)."""
    bridge.change_many(values)
    await eventually(lambda: bridge.sink._connected, what="connected")
    probe.host_state(HOST, online=True)
    await eventually(lambda: len(probe.of_kind("DBIRTH")) == 2, what="both DBIRTH")


async def test_birth_sequence_is_nbirth_then_every_dbirth_then_device_data(broker: Mosquitto, tmp_path: Path) -> None:
    """tck-id-message-flow-device-birth-publish-nbirth-wait, -dbirth-topic, -dbirth-retained, -dbirth-payload-seq;
    tck-id-payloads-dbirth-order, -dbirth-seq-inc, -dbirth-timestamp, -alias-uniqueness, -alias-birth-requirement;
    tck-id-operational-behavior-data-publish-dbirth, -dbirth-values, -dbirth-change; tck-id-topics-ddata-payload;
    tck-id-payloads-ddata-seq-inc, -ddata-timestamp, -alias-data-cmd-requirement, -metric-datatype-not-req."""
    probe = Probe(broker, ("spBv1.0/#",)).start()
    async with running_sink(broker, tmp_path / "spool", devices=True, primary_host_id=HOST) as bridge:
        await born(probe, bridge, [("press/Counter", 1), ("press/Run", True), ("oven/Level", 180.5)])
        bridge.change("press/Counter", 2)
        await eventually(lambda: live_data(probe), what="DDATA")
        bridge.change_many([("press/Counter", 3), ("press/Run", False), ("oven/Level", 181.0)])
        await eventually(lambda: len(live_data(probe)) == 3, what="one DDATA per device that changed")
    checker = checked(probe)
    assert checker.live_kinds[:6] == ["NBIRTH", "DBIRTH", "DBIRTH", "DDATA", "DDATA", "DDATA"]
    assert set(by_name(probe.of_kind("NBIRTH")[0])) == {"bdSeq", "Node Control/Rebirth"}  # tags are device metrics
    assert topics(probe, "DBIRTH") == [TOPICS.device("DBIRTH", "press"), TOPICS.device("DBIRTH", "oven")]
    press, oven = (by_name(m) for m in probe.of_kind("DBIRTH"))
    assert press == {"Counter": 1, "Run": True} and oven == {"Level": 180.5}
    assert [m.sparkplug().seq for m in probe.of_kind("DBIRTH")] == [1, 2]
    assert [m.topic for m in live_data(probe)] == [TOPICS.device("DDATA", d) for d in ("press", "press", "oven")]
    assert [m.sparkplug().seq for m in live_data(probe)] == [5, 6, 7]  # after 3, 4: the history
    assert [len(m.sparkplug().metrics) for m in live_data(probe)] == [1, 2, 1]  # report by exception
    assert not any(m.retain for m in probe.snapshot() if m.kind)
    probe.stop()


async def test_a_lost_device_gets_ddeath_and_a_full_dbirth_when_it_is_back(broker: Mosquitto, tmp_path: Path) -> None:
    """tck-id-operational-behavior-device-ddeath; tck-id-payloads-ddeath-seq-inc, -ddeath-timestamp; a device is lost
    when every tag of it is bad (connection lost, or every read refused), and born again with its current values."""
    probe = Probe(broker, ("spBv1.0/#",)).start()
    async with running_sink(broker, tmp_path / "spool", devices=True, primary_host_id=HOST) as bridge:
        await born(probe, bridge, [("press/Counter", 1), ("press/Run", True), ("oven/Level", 180.5)])
        bridge.lose("press/Counter", "press/Run")
        await eventually(lambda: probe.of_kind("DDEATH"), what="DDEATH")
        bridge.change("oven/Level", 182.0)  # the other device is unaffected
        bridge.change("press/Counter", 9)  # one good tag again: the device is back
        await eventually(lambda: len(probe.of_kind("DBIRTH")) == 3, what="the press born again")
        bridge.change("press/Counter", 10)
        await eventually(lambda: len(live_data(probe)) == 2, what="data after the new DBIRTH")
    checker = checked(probe)
    assert checker.live_kinds == ["NBIRTH", "DBIRTH", "DBIRTH", "DDEATH", "DDATA", "DBIRTH", "DDATA", "NDEATH"]
    death = probe.of_kind("DDEATH")[0]
    assert death.topic == TOPICS.device("DDEATH", "press") and not death.sparkplug().metrics
    assert by_name(probe.of_kind("DBIRTH")[2]) == {"Counter": 9, "Run": None}  # current values; Run still bad
    probe.stop()


async def test_a_device_not_read_yet_is_born_null_and_declared_dead(broker: Mosquitto, tmp_path: Path) -> None:
    """tck-id-operational-behavior-data-publish-dbirth-values (null where no value is known) and
    tck-id-operational-behavior-device-ddeath: a device not readable at the birth is dead until its first good read."""
    probe = Probe(broker, ("spBv1.0/#",)).start()
    async with running_sink(broker, tmp_path / "spool", devices=True, primary_host_id=HOST) as bridge:
        bridge.change("press/Counter", 1)
        await eventually(lambda: bridge.sink._connected, what="connected")
        probe.host_state(HOST, online=True)
        await eventually(lambda: probe.of_kind("DDEATH"), what="DDEATH of the oven")
        bridge.change("oven/Level", 20.0)
        await eventually(lambda: len(probe.of_kind("DBIRTH")) == 3, what="the oven born at its first read")
    checked(probe)
    assert [m.topic for m in probe.of_kind("DDEATH")] == [TOPICS.device("DDEATH", "oven")]
    assert by_name(probe.of_kind("DBIRTH")[1]) == {"Level": None}
    assert by_name(probe.of_kind("DBIRTH")[2]) == {"Level": 20.0}
    probe.stop()


async def test_rebirth_request_republishes_nbirth_and_every_dbirth(broker: Mosquitto, tmp_path: Path) -> None:
    """tck-id-operational-behavior-data-commands-rebirth-action-1, -action-2, -action-3: on NCMD Node Control/Rebirth
    the node publishes the complete birth sequence again (NBIRTH seq 0, then every DBIRTH), with the same bdSeq."""
    probe = Probe(broker, ("spBv1.0/#",)).start()
    async with running_sink(broker, tmp_path / "spool", devices=True, primary_host_id=HOST) as bridge:
        await born(probe, bridge, [("press/Counter", 1), ("press/Run", True), ("oven/Level", 180.5)])
        bridge.change("press/Counter", 2)
        await eventually(lambda: live_data(probe))
        request_rebirth(probe)
        await eventually(lambda: len(probe.of_kind("DBIRTH")) == 4, what="the second birth sequence")
        bridge.change("oven/Level", 181.0)
        await eventually(lambda: len(live_data(probe)) == 2)
    checker = checked(probe)
    assert checker.live_kinds == [
        "NBIRTH",
        "DBIRTH",
        "DBIRTH",
        "DDATA",
        "NBIRTH",
        "DBIRTH",
        "DBIRTH",
        "DDATA",
        "NDEATH",
    ]
    first, second = (by_name(m)["bdSeq"] for m in probe.of_kind("NBIRTH"))
    assert first == second
    assert by_name(probe.of_kind("DBIRTH")[2]) == {"Counter": 2, "Run": True}  # current values
    assert [m.sparkplug().seq for m in probe.snapshot() if m.kind in ("NBIRTH", "DBIRTH")][3:] == [0, 1, 2]
    probe.stop()


async def test_dcmd_writes_the_device_tags_it_names(broker: Mosquitto, tmp_path: Path) -> None:
    """tck-id-message-flow-device-dcmd-subscribe (every device's DCMD topic, QoS 1; the write gate decides);
    tck-id-operational-behavior-data-commands-dcmd-verb, -dcmd-metric-name, -dcmd-metric-value: a DCMD names a metric
    of its device's DBIRTH (by name or alias); an NCMD names node metrics only, so it writes no device tag."""
    writes: list[dict[str, Value]] = []

    async def on_command(origin: str, values: dict[str, Value]) -> None:
        writes.append(dict(values))

    probe = Probe(broker, ("spBv1.0/#",)).start()
    async with running_sink(
        broker,
        tmp_path / "spool",
        devices=True,
        primary_host_id=HOST,
        on_command=on_command,
    ) as bridge:
        await born(probe, bridge, [("press/Counter", 1), ("press/Run", True), ("oven/Level", 180.5)])
        aliases = {m.name: m.alias for m in probe.of_kind("DBIRTH")[0].sparkplug().metrics}

        def command(*metrics: dict[str, object]) -> bytes:
            payload = Payload()
            for metric in metrics:
                payload.metrics.add(**metric)  # type: ignore[arg-type]
            return payload.SerializeToString()

        refused = bridge.sink.metrics.writes.labels("mqtt", "refused")
        probe.client.publish(TOPICS.ncmd, command({"name": "press/Counter", "int_value": 5}), qos=1)
        await eventually(lambda: refused._value.get() == 1, what="the NCMD for a device tag refused")
        probe.client.publish(TOPICS.device("DCMD", "press"), command({"name": "Counter", "int_value": 7}), qos=1)
        probe.client.publish(
            TOPICS.device("DCMD", "press"), command({"alias": aliases["Run"], "boolean_value": False}), qos=1
        )
        probe.client.publish(TOPICS.device("DCMD", "press"), command({"name": "Level", "float_value": 2.0}), qos=1)
        probe.client.publish(TOPICS.device("DCMD", "oven"), command({"name": "Level", "float_value": 1.0}), qos=1)
        await eventually(lambda: len(writes) == 3 and refused._value.get() == 2, what="three writes, one refusal")
    assert writes == [{"press/Counter": 7}, {"press/Run": False}, {"oven/Level": 1.0}]
    probe.stop()


async def test_with_qos_0_births_and_data_use_qos_0_and_ndeath_qos_1(broker: Mosquitto, tmp_path: Path) -> None:
    """With `qos: 0` (giving up the no-loss promise): tck-id-payloads-nbirth-qos, -dbirth-qos, -ndata-qos, -ddata-qos,
    tck-id-topics-ddeath-mqtt (QoS 0, not retained); tck-id-payloads-ndeath-will-message-qos (NDEATH stays QoS 1)."""
    probe = Probe(broker, ("spBv1.0/#",)).start()
    async with running_sink(broker, tmp_path / "spool", devices=True, primary_host_id=HOST, qos=0) as bridge:
        await born(probe, bridge, [("press/Counter", 1), ("press/Run", True), ("oven/Level", 180.5)])
        bridge.change("press/Counter", 2)
        bridge.lose("oven/Level")
        await eventually(lambda: live_data(probe) and probe.of_kind("DDEATH"), what="DDATA and DDEATH")
    await eventually(lambda: probe.of_kind("NDEATH"), what="NDEATH")
    checked(probe)
    qos = {m.kind: m.qos for m in probe.snapshot() if m.kind in ("NBIRTH", "DBIRTH", "DDATA", "DDEATH", "NDEATH")}
    assert qos == {"NBIRTH": 0, "DBIRTH": 0, "DDATA": 0, "DDEATH": 0, "NDEATH": 1}
    assert not any(m.retain for m in probe.snapshot() if m.kind != HOST)
    probe.stop()


async def test_device_deaths_during_a_broker_outage_are_told_by_the_next_births(
    broker: Mosquitto, tmp_path: Path
) -> None:
    """Store-and-forward with devices: every value buffered during the outage is replayed as historical DDATA after
    the new NBIRTH and DBIRTHs, including what the device's deaths and births in between carried (nulls, then its
    values); the births say which devices are alive now, and one lost at the end gets its DDEATH after the replay
    (tck-id-operational-behavior-device-ddeath)."""
    probe = Probe(broker, ("spBv1.0/#",)).start()
    probe.host_state(HOST, online=True)  # the probe is the primary host: births wait until it is subscribed again
    async with running_sink(broker, tmp_path / "spool", devices=True, primary_host_id=HOST) as bridge:
        await born(probe, bridge, [("press/Counter", 1), ("press/Run", True), ("oven/Level", 180.5)])
        broker.stop(kill=True)
        await eventually(lambda: not bridge.sink._connected, what="the bridge notices the outage")
        for counter in range(2, 6):
            bridge.change("press/Counter", counter)
        bridge.lose("press/Counter", "press/Run")
        bridge.change_many([("press/Counter", 6), ("press/Run", False)])  # back during the outage
        bridge.lose("oven/Level")  # lost, and still lost when the broker is back
        broker.start()
        await eventually(lambda: len(probe.of_kind("NBIRTH")) == 2, timeout=20, what="the second birth")
        await eventually(lambda: probe.of_kind("DDEATH"), what="the oven's DDEATH after the replay")
    checked(probe)
    sparkplug = [m for m in probe.snapshot() if m.kind and m.kind != HOST]
    second = sparkplug[[m.kind for m in sparkplug].index("NBIRTH", 1) :]
    kinds = [m.kind for m in second]
    assert kinds[:3] == ["NBIRTH", "DBIRTH", "DBIRTH"] and kinds[-2:] == ["DDEATH", "NDEATH"]
    replayed = [m.sparkplug() for m in second if m.kind == "DDATA"]
    counters = [metric_value(metric) for p in replayed for metric in p.metrics if metric.alias == 1]
    assert counters == [2, 3, 4, 5, None, 6] and all(m.is_historical for p in replayed for m in p.metrics)
    assert by_name(second[1]) == {"Counter": 6, "Run": False} and by_name(second[2]) == {"Level": None}
    probe.stop()
