from pathlib import Path

import pytest

from shopfloor_api import ProtocolBridge, load_manifest
from shopfloor_bridge.config import ConfigError, SecretFiles, from_manifest
from shopfloor_bridge.modbus_codec import Table
from shopfloor_bridge.tags import DataType

MANIFEST = """
apiVersion: shopfloor.io/v1alpha1
kind: ProtocolBridge
metadata: {name: line-1-bridge, namespace: line-1}
spec:
  sources:
    - name: mixer
      modbus:
        plcRef: {name: mixer-1}
        pollInterval: 50ms
        tags:
          - {name: Level, table: holdingRegisters, address: 0, type: REAL, wordOrder: LittleEndian}
          - {name: Raw, table: inputRegisters, address: 2, type: INT, scale: 0.5, offset: 1}
    - name: oven
      opcua:
        endpoint: opc.tcp://oven.line-1:4840
        certificateSecretRef: {name: bridge-opcua}
        nodes: [{name: Temp, nodeId: "ns=2;s=Temp"}]
  sinks:
    mqtt:
      url: mqtts://broker.plant
      credentialsSecretRef: {name: broker-creds}
      sparkplug: {groupId: plant-a, edgeNodeId: line-1, primaryHostId: scada}
      buffer: {maxBytes: 1Mi}
      protocolVersion: "5"
  writes: {enabled: true, allow: [mixer/Level]}
"""


def bridge(text: str = MANIFEST) -> ProtocolBridge:
    manifest = load_manifest(text)
    assert isinstance(manifest, ProtocolBridge)
    return manifest


def secrets(tmp_path: Path) -> SecretFiles:
    for secret, files in {
        "broker-creds": {"username": "bridge\n", "password": "s3cret\n", "ca.crt": "CA"},
        "bridge-opcua": {"tls.crt": "CERT", "tls.key": "KEY"},
    }.items():
        (tmp_path / secret).mkdir()
        for key, content in files.items():
            (tmp_path / secret / key).write_text(content)
    return SecretFiles(tmp_path)


def test_manifest_maps_to_runtime_settings(tmp_path: Path) -> None:
    config = from_manifest(bridge(), tmp_path / "state", secrets(tmp_path))
    [mixer] = config.modbus
    assert (mixer.host, mixer.port, mixer.poll_interval) == ("mixer-1.line-1.svc", 502, 0.05)
    level, raw = mixer.tags
    assert (level.name, level.table, level.little_endian_words) == ("mixer/Level", Table.HOLDING_REGISTERS, True)
    assert (raw.scale, raw.offset, raw.reported_type) == (0.5, 1.0, DataType.REAL)
    assert [(t.name, t.datatype) for t in config.tags] == [
        ("mixer/Level", DataType.REAL),
        ("mixer/Raw", DataType.REAL),
        ("oven/Temp", DataType.REAL),
    ]
    [oven] = config.opcua
    assert oven.nodes == {"oven/Temp": "ns=2;s=Temp"}
    assert oven.security is not None and oven.security.certificate.read_text() == "CERT"
    mqtt = config.mqtt
    assert mqtt is not None
    broker = mqtt.broker
    assert (broker.host, broker.port, broker.tls, broker.mqtt_version) == ("broker.plant", 8883, True, 5)
    assert (broker.username, broker.password) == ("bridge", "s3cret")
    assert "s3cret" not in repr(broker)
    assert (mqtt.group_id, mqtt.edge_node_id, mqtt.primary_host_id, mqtt.max_bytes) == (
        "plant-a",
        "line-1",
        "scada",
        1 << 20,
    )
    assert config.writes_allow == ["mixer/Level"] and config.opcua_server is None


def test_environment_overrides_mqtt_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPFLOOR_MQTT_PASSWORD", "from-env")
    config = from_manifest(bridge(), tmp_path / "state", secrets(tmp_path))
    assert config.mqtt is not None and config.mqtt.broker.password == "from-env"


def test_missing_opcua_certificate_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"spec\.sources\[1\]\.opcua\.certificateSecretRef"):
        from_manifest(bridge(), tmp_path / "state", SecretFiles(tmp_path))


def test_secured_opcua_server_needs_a_certificate(tmp_path: Path) -> None:
    text = MANIFEST.replace("  writes:", "    opcua: {enabled: true, port: 4841}\n  writes:")
    with pytest.raises(ConfigError, match=r"certificateSecretRef"):
        from_manifest(bridge(text), tmp_path / "state", secrets(tmp_path))


def test_failover_brokers_and_devices(tmp_path: Path) -> None:
    text = MANIFEST.replace(
        "      url: mqtts://broker.plant\n",
        "      url: mqtts://broker.plant\n      failoverUrls: [mqtt://standby.plant:1884, wss://cloud.example]\n",
    ).replace("primaryHostId: scada}", "primaryHostId: scada, devices: PerSource}")
    config = from_manifest(bridge(text), tmp_path / "state", secrets(tmp_path))
    assert config.mqtt is not None and config.mqtt.devices
    assert [(b.host, b.port, b.tls, b.websockets) for b in config.mqtt.brokers] == [
        ("broker.plant", 8883, True, False),
        ("standby.plant", 1884, False, False),
        ("cloud.example", 443, True, True),
    ]
    assert {b.username for b in config.mqtt.brokers} == {"bridge"}


def test_existing_manifests_keep_node_metrics(tmp_path: Path) -> None:
    config = from_manifest(bridge(), tmp_path / "state", secrets(tmp_path))
    assert config.mqtt is not None and not config.mqtt.devices and config.mqtt.brokers == [config.mqtt.broker]
