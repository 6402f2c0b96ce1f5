"""Sparkplug B edge node behaviour against a real Mosquitto, decoded with the official Tahu schema."""

from __future__ import annotations

from pathlib import Path

from tests.integration.bridge.probe import Probe, eventually
from tests.integration.bridge.sinks import TOPICS, checked, request_rebirth, running_sink
from tests.support.mosquitto import Mosquitto
from tests.support.sparkplug import metric_value


def metrics_by_name(message: object) -> dict[str, object]:
    return {m.name: metric_value(m) for m in message.metrics}  # type: ignore[attr-defined]


async def test_birth_then_data_by_exception_with_sequence(broker: Mosquitto, tmp_path: Path) -> None:
    """tck-id-payloads-nbirth-seq, -nbirth-bdseq, -ndata-seq-inc, -alias-data-cmd-requirement;
    tck-id-topics-ndata-payload, tck-id-principles-rbe-recommended (only what changed)."""
    probe = Probe(broker).start()
    async with running_sink(broker, tmp_path / "spool") as bridge:
        await eventually(lambda: probe.of_kind("NBIRTH"), what="NBIRTH")
        bridge.change_many([("dev/Counter", 1), ("dev/Run", True), ("dev/Level", 0.5)])
        bridge.change_many([("dev/Counter", 2), ("dev/Run", True), ("dev/Level", 0.5)])  # only Counter changed
        data = await eventually(lambda: len(probe.of_kind("NDATA")) >= 2 and probe.of_kind("NDATA"))
    birth = probe.of_kind("NBIRTH")[0].sparkplug()
    assert birth.seq == 0
    assert metrics_by_name(birth)["bdSeq"] == 0
    first, second = (m.sparkplug() for m in data[:2])
    assert (first.seq, second.seq) == (1, 2)
    assert sorted(m.alias for m in first.metrics) == [1, 2, 3]
    assert [(m.alias, m.int_value) for m in second.metrics] == [(1, 2)]
    assert all(not m.name for m in second.metrics)
    checked(probe)
    probe.stop()


async def test_sequence_wraps_after_255(broker: Mosquitto, tmp_path: Path) -> None:
    """tck-id-payloads-sequence-num-incrementing, -ndata-seq-inc: 255 is followed by 0."""
    probe = Probe(broker).start()
    async with running_sink(broker, tmp_path / "spool") as bridge:
        await eventually(lambda: probe.of_kind("NBIRTH"))
        for i in range(300):
            bridge.change("dev/Counter", i + 1)
        await eventually(lambda: len(probe.of_kind("NDATA")) >= 300, what="300 NDATA")
    seqs = [m.sparkplug().seq for m in probe.of_kind("NDATA")]
    assert seqs == [(i % 256) for i in range(1, 301)]
    counters = [m.sparkplug().metrics[0].int_value for m in probe.of_kind("NDATA")]
    assert counters == list(range(1, 301))
    checked(probe)
    probe.stop()


async def test_rebirth_on_ncmd_resets_seq_and_keeps_bdseq(broker: Mosquitto, tmp_path: Path) -> None:
    """tck-id-message-flow-edge-node-ncmd-subscribe; tck-id-operational-behavior-data-commands-rebirth-action-2,
    -action-3, tck-id-operational-behavior-data-publish-nbirth-values."""
    probe = Probe(broker).start()
    async with running_sink(broker, tmp_path / "spool") as bridge:
        await eventually(lambda: probe.of_kind("NBIRTH"))
        bridge.change("dev/Counter", 5)
        await eventually(lambda: probe.of_kind("NDATA"))
        request_rebirth(probe)
        await eventually(lambda: len(probe.of_kind("NBIRTH")) == 2, what="second NBIRTH")
        bridge.change("dev/Counter", 6)
        await eventually(lambda: len(probe.of_kind("NDATA")) == 2)
    births = [m.sparkplug() for m in probe.of_kind("NBIRTH")]
    assert [b.seq for b in births] == [0, 0]
    assert metrics_by_name(births[0])["bdSeq"] == metrics_by_name(births[1])["bdSeq"]
    assert metrics_by_name(births[1])["dev/Counter"] == 5  # the rebirth carries current values
    assert probe.of_kind("NDATA")[1].sparkplug().seq == 1
    checked(probe)
    probe.stop()


async def test_births_wait_for_primary_host_state(broker: Mosquitto, tmp_path: Path) -> None:
    """tck-id-message-flow-edge-node-birth-publish-connect, -phid-wait, -phid-offline;
    tck-id-operational-behavior-edge-node-termination-host-offline, -host-offline-reconnect."""
    probe = Probe(broker).start()
    async with running_sink(broker, tmp_path / "spool", primary_host_id="scada") as bridge:
        bridge.change("dev/Counter", 1)
        await eventually(lambda: bridge.sink._connected, what="bridge connected")
        assert not probe.of_kind("NBIRTH") and not probe.of_kind("NDATA")
        probe.host_state("scada", online=True)
        await eventually(lambda: probe.of_kind("NBIRTH") and probe.of_kind("NDATA"), what="birth after STATE")
        probe.host_state("scada", online=False)
        death = await eventually(lambda: probe.of_kind("NDEATH"), what="NDEATH when the host goes offline")
        probe.host_state("scada", online=True)
        await eventually(lambda: len(probe.of_kind("NBIRTH")) == 2, what="rebirth when the host is back")
    first, second = (metrics_by_name(m.sparkplug()) for m in probe.of_kind("NBIRTH"))
    assert metrics_by_name(death[0].sparkplug())["bdSeq"] == first["bdSeq"]
    assert second["bdSeq"] == first["bdSeq"] + 1  # type: ignore[operator]
    checked(probe)
    probe.stop()


async def test_clean_shutdown_publishes_ndeath_with_matching_bdseq(broker: Mosquitto, tmp_path: Path) -> None:
    """tck-id-operational-behavior-edge-node-intentional-disconnect-ndeath; tck-id-payloads-ndeath-bdseq."""
    probe = Probe(broker).start()
    async with running_sink(broker, tmp_path / "spool"):
        await eventually(lambda: probe.of_kind("NBIRTH"))
    death = await eventually(lambda: probe.of_kind("NDEATH"))
    birth = probe.of_kind("NBIRTH")[0].sparkplug()
    assert metrics_by_name(death[0].sparkplug())["bdSeq"] == metrics_by_name(birth)["bdSeq"]
    checked(probe)
    probe.stop()


async def test_bdseq_continues_across_restarts(broker: Mosquitto, tmp_path: Path) -> None:
    """tck-id-topics-nbirth-bdseq-increment, tck-id-payloads-nbirth-bdseq-inc: one more per CONNECT, across
    restarts."""
    probe = Probe(broker).start()
    for expected in (1, 2):
        async with running_sink(broker, tmp_path / "spool"):
            await eventually(lambda n=expected: len(probe.of_kind("NBIRTH")) == n)  # type: ignore[misc]
    assert [metrics_by_name(m.sparkplug())["bdSeq"] for m in probe.of_kind("NBIRTH")] == [0, 1]
    checked(probe)
    probe.stop()


async def test_garbage_commands_and_state_never_stop_the_node(broker: Mosquitto, tmp_path: Path) -> None:
    """Malformed NCMD and STATE are refused and counted;
    tck-id-message-flow-edge-node-birth-publish-phid-wait-online (garbage is not online)."""
    probe = Probe(broker).start()
    async with running_sink(broker, tmp_path / "spool", primary_host_id="scada") as bridge:
        probe.client.publish("spBv1.0/STATE/scada", b"\x00\xff not json", qos=1, retain=True)
        await eventually(lambda: bridge.sink._connected, what="connected")
        probe.host_state("scada", online=True)
        await eventually(lambda: probe.of_kind("NBIRTH"), what="birth after a garbage STATE")
        probe.client.publish(TOPICS.ncmd, b"\xff\xff\xff\xff", qos=1)
        probe.client.publish(TOPICS.ncmd, b"\x12\x03\xff\xff", qos=1)  # truncated protobuf
        bridge.change("dev/Counter", 1)
        await eventually(lambda: probe.of_kind("NDATA"))
        refused = bridge.sink.metrics.writes.labels("mqtt", "refused")
        await eventually(lambda: refused._value.get() == 2, what="both bad NCMDs counted")
    probe.stop()
