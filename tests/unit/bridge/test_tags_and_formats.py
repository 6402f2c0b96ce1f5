import json

import pytest

from shopfloor_bridge.metrics import BridgeMetrics
from shopfloor_bridge.modbus_source import WriteError
from shopfloor_bridge.mqtt_formats import JsonFormat, Message, SparkplugDeviceFormat
from shopfloor_bridge.sparkplug import payloads
from shopfloor_bridge.state import BridgeState, Health
from shopfloor_bridge.tags import DataType, Quality, TagInfo, TagTable, TagValue, Value
from shopfloor_bridge.writes import WriteGate, WriteRefused


def test_table_reports_only_changes_of_value_or_quality() -> None:
    table = TagTable([TagInfo("a", DataType.INT), TagInfo("b", DataType.BOOL)])
    assert [v.name for v in table.update([TagValue("a", 1, Quality.GOOD), TagValue("b", False, Quality.GOOD)])] == [
        "a",
        "b",
    ]
    assert table.update([TagValue("a", 1, Quality.GOOD), TagValue("b", False, Quality.GOOD)]) == []
    assert [v.name for v in table.update([TagValue("a", 1, Quality.BAD)])] == ["a"]
    assert table.count_by_quality() == {Quality.GOOD: 1, Quality.BAD: 1}


def test_duplicate_tag_names_are_refused() -> None:
    with pytest.raises(ValueError, match="'x' is used twice"):
        TagTable([TagInfo("x", DataType.INT), TagInfo("x", DataType.REAL)])


def test_json_format_and_buffer_record_round_trip() -> None:
    [message] = JsonFormat("plant/line-1/").encode([TagValue("mixer/Level", 2.5, Quality.GOOD, source_ms=123)])
    assert message.topic == "plant/line-1/mixer/Level"
    assert json.loads(message.payload) == {"value": 2.5, "quality": "good", "timestamp": 123}
    assert Message.unpack(message.pack()) == message
    [bad] = JsonFormat("p").encode([TagValue("t", 7, Quality.BAD, source_ms=1)])
    assert json.loads(bad.payload)["value"] is None


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.writes: list[tuple[str, Value]] = []
        self.fail = fail

    async def write(self, name: str, value: Value) -> None:
        if self.fail:
            raise WriteError(f"{name}: device refused")
        self.writes.append((name, value))


async def test_write_gate_refuses_and_counts() -> None:
    metrics, target = BridgeMetrics(), Recorder()
    gate = WriteGate(True, ["m/Allowed"], {"m/Allowed": target, "m/Other": target}, metrics)
    await gate.write("mqtt", "m/Allowed", 3)
    with pytest.raises(WriteRefused, match=r"not in writes\.allow"):
        await gate.write("mqtt", "m/Other", 4)
    assert target.writes == [("m/Allowed", 3)]
    assert metrics.writes.labels("mqtt", "refused")._value.get() == 1
    assert metrics.writes.labels("mqtt", "written")._value.get() == 1


async def test_disabled_writes_refuse_even_listed_tags_and_failures_are_counted() -> None:
    metrics = BridgeMetrics()
    disabled = WriteGate(False, ["m/A"], {"m/A": Recorder()}, metrics)
    with pytest.raises(WriteRefused, match="writes are disabled"):
        await disabled.write("opcua", "m/A", 1)
    failing = WriteGate(True, ["m/A"], {"m/A": Recorder(fail=True)}, metrics)
    await failing.write_many("opcua", {"m/A": 1})  # logged and counted, not raised
    assert metrics.writes.labels("opcua", "failed")._value.get() == 1


def test_health_notifies_listeners_and_needs_every_sink_for_readiness() -> None:
    seen: list[tuple[BridgeState, str | None]] = []
    health = Health([lambda state, fault: seen.append((state, fault))])
    ready = {"mqtt": False}
    health.add_sink("mqtt", lambda: ready["mqtt"])
    health.set_state(BridgeState.RUNNING)
    assert not health.ready and health.sinks_not_ready() == ["mqtt"]
    ready["mqtt"] = True
    assert health.ready
    health.set_state(BridgeState.FAULTED, "boom")
    assert not health.live
    assert seen == [(BridgeState.RUNNING, None), (BridgeState.FAULTED, "boom")]


def test_device_format_turns_quality_into_device_births_and_deaths() -> None:
    """A device is alive while one of its tags is good: DDATA while alive, DDEATH when its last good tag turns bad,
    DBIRTH (with every current value) when one is good again; one DDATA per device that changed."""
    tags = [TagInfo("press/A", DataType.INT), TagInfo("press/B", DataType.INT), TagInfo("oven/T", DataType.REAL)]
    table = TagTable(tags)
    devices = {"press": ["press/A", "press/B"], "oven": ["oven/T"]}
    fmt = SparkplugDeviceFormat(payloads.Topics("g", "n"), payloads.Aliases(tags), table, devices)

    def encode(*values: tuple[str, Value | None, Quality]) -> list[str]:
        messages = fmt.encode(table.update([TagValue(n, v, q) for n, v, q in values]))
        return [m.topic.split("/", 2)[2] for m in messages]

    good, bad = Quality.GOOD, Quality.BAD
    assert encode(("press/A", 1, good), ("oven/T", 2.0, good)) == ["DBIRTH/n/press", "DBIRTH/n/oven"]
    assert encode(("press/A", 2, good), ("press/B", 3, good)) == ["DDATA/n/press"]
    assert encode(("press/A", None, bad)) == ["DDATA/n/press"]  # B is still good
    assert encode(("press/B", None, bad), ("oven/T", 3.0, good)) == ["DDEATH/n/press", "DDATA/n/oven"]
    assert encode(("press/A", None, bad)) == []  # already dead, nothing new to say
    assert encode(("press/B", 4, good)) == ["DBIRTH/n/press"]
    assert fmt.alive == {"press": True, "oven": True} and not fmt.after_births()
