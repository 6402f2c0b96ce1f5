import json
from pathlib import Path

import pytest

from shopfloor_bridge.sparkplug import payloads
from shopfloor_bridge.sparkplug.sparkplug_payload_pb2 import Payload
from shopfloor_bridge.tags import DataType, Quality, TagInfo, TagValue
from tests.support.sparkplug import BOOLEAN, FLOAT, INT16, INT64, UINT32, decode, metric_value

TAGS = [TagInfo("mixer/Level", DataType.REAL), TagInfo("mixer/Run", DataType.BOOL), TagInfo("mixer/Temp", DataType.INT)]
ALIASES = payloads.Aliases(TAGS)


def value(name: str, v: object, quality: Quality = Quality.GOOD) -> TagValue:
    return TagValue(name, v, quality, source_ms=1_700_000_000_000)  # type: ignore[arg-type]


def test_birth_lists_every_metric_with_datatype_alias_and_bdseq() -> None:
    current = [value("mixer/Level", 1.5), None, value("mixer/Temp", -3)]
    birth = decode(payloads.birth(ALIASES, current, bd_seq=7))
    assert birth.seq == 0
    by_name = {m.name: m for m in birth.metrics}
    assert by_name["bdSeq"].datatype == INT64 and by_name["bdSeq"].long_value == 7
    assert (
        by_name["Node Control/Rebirth"].datatype == BOOLEAN and by_name["Node Control/Rebirth"].boolean_value is False
    )
    assert (by_name["mixer/Level"].alias, by_name["mixer/Level"].datatype) == (1, FLOAT)
    assert metric_value(by_name["mixer/Level"]) == 1.5
    assert by_name["mixer/Run"].is_null and by_name["mixer/Run"].datatype == BOOLEAN
    assert by_name["mixer/Temp"].datatype == INT16
    assert by_name["mixer/Temp"].int_value == 0xFFFFFFFD  # two's complement in the unsigned field


def test_data_carries_aliases_only_and_seq_is_set_at_publish() -> None:
    encoded = payloads.data(ALIASES, [value("mixer/Run", True), value("mixer/Level", 0.0, Quality.BAD)])
    for seq in (1, 255, 0):
        message = decode(payloads.with_seq(encoded, seq))
        assert message.seq == seq
        assert [(m.alias, m.name) for m in message.metrics] == [(2, ""), (1, "")]
        assert message.metrics[0].boolean_value is True
        assert message.metrics[1].is_null  # bad quality: the value is unknown
        assert not message.metrics[0].is_historical


def test_replayed_data_is_flagged_historical() -> None:
    encoded = payloads.data(ALIASES, [value("mixer/Run", False)])
    message = decode(payloads.with_seq(encoded, 9, historical=True))
    assert message.seq == 9 and all(m.is_historical for m in message.metrics)


def test_death_carries_the_bdseq() -> None:
    death = decode(payloads.death(200))
    assert [(m.name, m.long_value) for m in death.metrics] == [("bdSeq", 200)]


def test_topics() -> None:
    topics = payloads.Topics("plant-a", "line-1")
    assert (topics.nbirth, topics.ndata, topics.ndeath, topics.ncmd) == (
        "spBv1.0/plant-a/NBIRTH/line-1",
        "spBv1.0/plant-a/NDATA/line-1",
        "spBv1.0/plant-a/NDEATH/line-1",
        "spBv1.0/plant-a/NCMD/line-1",
    )
    assert payloads.Topics.state("scada") == "spBv1.0/STATE/scada"


def test_command_with_rebirth_and_writes_by_name_or_alias() -> None:
    command = Payload()
    command.metrics.add(name="Node Control/Rebirth", boolean_value=True)
    command.metrics.add(name="mixer/Level", float_value=2.5)
    command.metrics.add(alias=3, int_value=0xFFFFFFFF)
    command.metrics.add(name="nope", boolean_value=True)
    parsed = payloads.parse_command(command.SerializeToString(), ALIASES)
    assert parsed.rebirth is True
    assert parsed.writes == {"mixer/Level": 2.5, "mixer/Temp": -1}
    assert parsed.unknown == ["nope"]


def test_garbage_command_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="not a Sparkplug B payload"):
        payloads.parse_command(b"\xff\xff\xff", ALIASES)


def test_unsigned_32_bit_datatype() -> None:
    aliases = payloads.Aliases([TagInfo("c", DataType.UDINT)])
    birth = decode(payloads.birth(aliases, [value("c", 4_000_000_000)], bd_seq=0))
    assert [(m.datatype, m.int_value) for m in birth.metrics if m.name == "c"] == [(UINT32, 4_000_000_000)]


@pytest.mark.parametrize(
    ("payload", "state"),
    [
        (b'{"online": true, "timestamp": 1}', (True, 1)),
        (b'{"online": false, "timestamp": 1}', (False, 1)),
        (b'{"online": "yes", "timestamp": "1"}', (False, None)),
        (b"ONLINE", (True, None)),
        (b"OFFLINE", (False, None)),
        (b"\xff\x00garbage", (False, None)),
        (b"[1, 2]", (False, None)),
    ],
)
def test_primary_host_state_in_both_specification_versions(payload: bytes, state: tuple[bool, int | None]) -> None:
    """tck-id-message-flow-edge-node-birth-publish-phid-wait-online: only a boolean `online` true counts; the 3.0
    `timestamp` is what stale STATE messages are told apart by (-phid-wait-timestamp)."""
    from shopfloor_bridge.primary_host import parse_state

    assert parse_state(payload) == state


def test_device_birth_names_metrics_within_the_device_and_keeps_node_wide_aliases() -> None:
    """tck-id-payloads-alias-birth-requirement, -alias-uniqueness, -metric-datatype-req, -dbirth-timestamp;
    tck-id-operational-behavior-data-publish-dbirth-values (null when unknown)."""
    tags = [TagInfo("press/Count", DataType.UDINT), TagInfo("oven/Temp", DataType.REAL)]
    aliases = payloads.Aliases(tags)
    birth = decode(payloads.device_birth(aliases, "oven", tags[1:], [None]))
    [metric] = birth.metrics
    assert (metric.name, metric.alias, metric.datatype, metric.is_null) == ("Temp", 2, FLOAT, True)
    assert birth.timestamp > 0 and metric.timestamp > 0 and not birth.HasField("seq")
    death = decode(payloads.device_death())
    assert death.timestamp > 0 and not death.metrics


def test_device_commands_write_only_their_own_tags() -> None:
    """tck-id-operational-behavior-data-commands-dcmd-metric-name: a DCMD names its device's DBIRTH metrics; with
    devices, an NCMD (tags=False) writes nothing but still carries the rebirth request."""
    tags = [TagInfo("press/Count", DataType.UDINT), TagInfo("oven/Temp", DataType.REAL)]
    aliases = payloads.Aliases(tags)
    command = Payload()
    command.metrics.add(name="Temp", float_value=1.5)
    command.metrics.add(alias=1, int_value=3)  # the press's alias, not the oven's
    command.metrics.add(name="Node Control/Rebirth", boolean_value=True)
    parsed = payloads.parse_command(command.SerializeToString(), aliases, device="oven")
    assert (parsed.writes, parsed.rebirth) == ({"oven/Temp": 1.5}, False)
    assert parsed.unknown == ["press/Count", "oven/Node Control/Rebirth"]
    node = Payload()
    node.metrics.add(name="Node Control/Rebirth", boolean_value=True)
    node.metrics.add(name="oven/Temp", float_value=1.5)
    parsed = payloads.parse_command(node.SerializeToString(), aliases, tags=False)
    assert (parsed.writes, parsed.rebirth, parsed.unknown) == ({}, True, ["oven/Temp"])
    assert payloads.message_kind("spBv1.0/plant-a/DCMD/line-1/oven") == "DCMD"
    assert payloads.message_kind("plant/line-1/oven/Temp") == ""


def test_bdseq_continues_and_wraps_after_255(tmp_path: Path) -> None:
    """tck-id-payloads-nbirth-bdseq-inc, tck-id-topics-nbirth-bdseq-increment: one more per CONNECT, 255 then 0."""
    from shopfloor_bridge.mqtt_sink import _BdSeq

    (tmp_path / "bdseq").write_text("254")
    bd_seq = _BdSeq(tmp_path / "bdseq")
    assert [bd_seq.next(), bd_seq.next(), bd_seq.next()] == [255, 0, 1]
    assert _BdSeq(tmp_path / "bdseq").next() == 2


def test_buffered_device_births_and_deaths_replay_as_historical_data() -> None:
    """What a DBIRTH or DDEATH buffered before the current births carried stays in the host's history as DDATA
    (by alias only, tck-id-payloads-alias-data-cmd-requirement; no datatype, -metric-datatype-not-req)."""
    tags = [TagInfo("press/Count", DataType.UDINT), TagInfo("press/Run", DataType.BOOL)]
    aliases = payloads.Aliases(tags)
    birth = payloads.device_birth(aliases, "press", tags, [value("press/Count", 7), None])
    data = decode(payloads.birth_as_history(birth))
    assert [(m.alias, m.name, m.HasField("datatype"), metric_value(m), m.is_historical) for m in data.metrics] == [
        (1, "", False, 7, True),
        (2, "", False, None, True),
    ]
    death = decode(payloads.device_death())
    nulls = decode(payloads.death_as_history(payloads.device_death(), aliases, ["press/Count", "press/Run"]))
    assert [(m.alias, m.is_null, m.is_historical) for m in nulls.metrics] == [(1, True, True), (2, True, True)]
    assert abs(nulls.timestamp - death.timestamp) < 1000


def test_primary_host_state_older_than_the_newest_or_of_an_ended_host_session_is_ignored() -> None:
    """tck-id-message-flow-edge-node-birth-publish-phid-wait-timestamp and
    tck-id-operational-behavior-edge-node-termination-host-offline-timestamp, per broker."""
    from shopfloor_bridge.primary_host import PrimaryHost

    def state(online: bool, timestamp: int) -> bytes:
        return json.dumps({"online": online, "timestamp": timestamp}).encode()

    host = PrimaryHost("scada")
    host.receive(state(False, 10), 0, born=False)
    host.receive(state(True, 10), 0, born=False)  # the same host session coming online: fine before a birth
    assert host.online and not host.said_offline
    host.born()
    host.receive(state(False, 5), 0, born=True)  # older than the newest: stale
    assert host.online and not host.offline_since_birth
    host.receive(state(False, 10), 0, born=True)  # ends the session
    assert not host.online and host.offline_since_birth
    host.new_session()
    host.receive(state(True, 10), 0, born=False)  # that host session again: over
    assert not host.online
    host.receive(state(True, 10), 1, born=False)  # another broker keeps its own timestamps
    assert host.online
    host.receive(state(True, 11), 0, born=False)  # a new host session
    assert host.online
    assert PrimaryHost(None).online
