"""Validation of the VirtualPLC and ProtocolBridge models and the manifest loader."""

from pathlib import Path

import pytest
import yaml

from shopfloor_api import Duration, ManifestError, ProtocolBridge, Quantity, VirtualPLC, load_manifest

PLC = {
    "apiVersion": "shopfloor.io/v1alpha1",
    "kind": "VirtualPLC",
    "metadata": {"name": "mixer-1", "namespace": "line-1"},
    "spec": {"program": {"source": "PROGRAM Main\nEND_PROGRAM\n"}},
}
BRIDGE = {
    "apiVersion": "shopfloor.io/v1alpha1",
    "kind": "ProtocolBridge",
    "metadata": {"name": "line-1-bridge", "namespace": "line-1"},
    "spec": {
        "sources": [
            {
                "name": "mixer",
                "modbus": {
                    "plcRef": {"name": "mixer-1"},
                    "tags": [{"name": "Level", "table": "holdingRegisters", "address": 0, "type": "REAL"}],
                },
            }
        ],
        "sinks": {"mqtt": {"url": "mqtt://127.0.0.1:1883", "sparkplug": {"groupId": "g", "edgeNodeId": "n"}}},
    },
}


def with_spec(base: dict, **spec: object) -> str:
    return yaml.safe_dump({**base, "spec": {**base["spec"], **spec}})


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10ms", 0.01), ("1s500ms", 1.5), ("2m", 120), ("1h", 3600), ("250us", 0.00025), ("1.5s", 1.5)],
)
def test_duration_parses_and_keeps_text(text: str, seconds: float) -> None:
    duration = Duration(text)
    assert duration.seconds == pytest.approx(seconds)
    assert str(duration) == text


@pytest.mark.parametrize("text", ["", "10", "ms", "-1s", "1d", "10 ms"])
def test_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        Duration(text)


def test_quantity() -> None:
    assert Quantity("256Mi").bytes == 256 * 2**20
    assert Quantity("1G").bytes == 10**9
    with pytest.raises(ValueError, match="invalid quantity"):
        Quantity("12 apples")


def test_defaults_and_round_trip() -> None:
    plc = load_manifest(yaml.safe_dump(PLC))
    assert isinstance(plc, VirtualPLC)
    spec = plc.spec
    assert spec.cycle_time == Duration("10ms")
    assert spec.watchdog == Duration("50ms")
    assert spec.placement.realtime.value == "Required"
    assert spec.io.modbus.port == 5020
    assert spec.update_strategy.type == "OnlineChange"
    assert spec.update_strategy.verify_for == Duration("30s")
    dumped = plc.model_dump(mode="json", exclude_none=True)
    assert dumped["spec"]["cycleTime"] == "10ms"
    assert VirtualPLC.model_validate(dumped) == plc


def test_watchdog_defaults_to_five_cycles() -> None:
    plc = load_manifest(with_spec(PLC, cycleTime="1s500ms"))
    assert isinstance(plc, VirtualPLC)
    assert plc.spec.watchdog == Duration("7500ms")


def test_bridge_defaults() -> None:
    bridge = load_manifest(yaml.safe_dump(BRIDGE))
    assert isinstance(bridge, ProtocolBridge)
    assert bridge.spec.placement.realtime.value == "None"
    assert bridge.spec.sources[0].modbus is not None
    assert bridge.spec.sources[0].modbus.poll_interval == Duration("100ms")
    assert bridge.spec.sinks.mqtt is not None
    assert bridge.spec.sinks.mqtt.buffer.max_bytes == Quantity("64Mi")


def test_load_from_path(tmp_path: Path) -> None:
    path = tmp_path / "plc.yaml"
    path.write_text(yaml.safe_dump(PLC))
    assert isinstance(load_manifest(path), VirtualPLC)
    assert isinstance(load_manifest(str(path)), VirtualPLC)


BAD_PLCS = [
    ({"cycleTime": "0.5ms"}, "spec.cycleTime: must be between 1ms and 10s"),
    ({"cycleTime": "fast"}, "spec.cycleTime: invalid duration"),
    ({"cycleTime": "10ms", "watchdog": "5ms"}, "watchdog (5ms) must be at least cycleTime (10ms)"),
    ({"realtimePriority": 100}, "spec.realtimePriority: Input should be less than or equal to 99"),
    ({"realtimePriority": 50, "resources": {"cpus": 1.5}}, "resources.cpus must be a whole number"),
    ({"program": {"source": "x", "configMapRef": {"name": "a", "key": "b"}}}, "exactly one of source or configMapRef"),
    ({"program": {}}, "exactly one of source or configMapRef"),
    ({"program": {"source": "x", "sha256": "abc"}}, "spec.program.sha256: String should match pattern"),
    ({"placement": {"realtime": "Always"}}, "spec.placement.realtime: Input should be"),
    (
        {"io": {"modbus": {"map": [{"variable": "L", "table": "registers", "address": 0}]}}},
        "spec.io.modbus.map[0].table",
    ),
    ({"io": {"modbus": {"map": [{"variable": "1x", "table": "coils", "address": 0}]}}}, "map[0].variable"),
    ({"io": {"opcua": {"enabled": True}}}, "certificateSecretRef is required"),
    ({"updateStrategy": {"type": "Rolling"}}, "spec.updateStrategy.type"),
    ({"resources": {"memory": "lots"}}, "spec.resources.memory: Value error, invalid quantity"),
    ({"colour": "red"}, "spec.colour: Extra inputs are not permitted"),
    (
        {
            "io": {
                "fieldDevices": [
                    {
                        "name": "rio",
                        "modbus": {"host": "h"},
                        "outputs": [{"variable": "X", "table": "inputRegisters", "address": 0}],
                    }
                ]
            }
        },
        "outputs can only be coils or holdingRegisters",
    ),
]


@pytest.mark.parametrize(("spec", "message"), BAD_PLCS)
def test_bad_virtualplc_names_the_field(spec: dict, message: str) -> None:
    with pytest.raises(ManifestError) as raised:
        load_manifest(with_spec(PLC, **spec))
    assert message.replace("Value error, ", "") in str(raised.value)


BAD_BRIDGES = [
    ({"sources": []}, "spec.sources: List should have at least 1 item"),
    (
        {
            "sources": [
                {"name": "a", "modbus": {"tags": [{"name": "T", "table": "coils", "address": 0, "type": "BOOL"}]}}
            ]
        },
        "exactly one of plcRef or endpoint",
    ),
    (
        {
            "sources": [
                {
                    "name": "a",
                    "modbus": {
                        "endpoint": {"host": "h"},
                        "tags": [{"name": "T", "table": "coils", "address": 0, "type": "REAL"}],
                    },
                }
            ]
        },
        "BOOL tags live in coils or discreteInputs",
    ),
    (
        {
            "sources": [
                {
                    "name": "a",
                    "opcua": {
                        "endpoint": "http://x",
                        "securityPolicy": "None",
                        "nodes": [{"name": "T", "nodeId": "i=1"}],
                    },
                }
            ]
        },
        "spec.sources[0].opcua.endpoint: String should match pattern",
    ),
    ({"sinks": {"mqtt": {"url": "mqtt://h"}}}, "exactly one of sparkplug or topicPrefix"),
    ({"sinks": {"mqtt": {"url": "mqtt://h", "topicPrefix": "a", "qos": 2}}}, "spec.sinks.mqtt.qos"),
    ({"writes": {"enabled": True, "allow": ["mixer/Nope"]}}, "writes.allow[0]: unknown tag 'mixer/Nope'"),
]


@pytest.mark.parametrize(("spec", "message"), BAD_BRIDGES)
def test_bad_bridge_names_the_field(spec: dict, message: str) -> None:
    with pytest.raises(ManifestError) as raised:
        load_manifest(with_spec(BRIDGE, **spec))
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("apiVersion: v1\nkind: Pod\n", "apiVersion: expected shopfloor.io/v1alpha1"),
        ("apiVersion: shopfloor.io/v1alpha1\nkind: Pod\n", "kind: expected one of VirtualPLC, ProtocolBridge"),
        ("- a\n- b\n", "expected a mapping"),
        ("a: [\n", "<yaml>"),
    ],
)
def test_bad_documents(text: str, message: str) -> None:
    with pytest.raises(ManifestError, match="invalid manifest") as raised:
        load_manifest(text)
    assert message in str(raised.value)


def test_bad_name() -> None:
    with pytest.raises(ManifestError, match=r"metadata\.name"):
        load_manifest(yaml.safe_dump({**PLC, "metadata": {"name": "Mixer_1"}}))
