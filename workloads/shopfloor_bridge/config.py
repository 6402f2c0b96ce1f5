"""Turns a ProtocolBridge manifest into the bridge's runtime settings: endpoints resolved, secrets read from files.

Secrets follow the layout of a Secret mounted as a volume: `<secrets dir>/<secret name>/<key>`. In a pod the operator
mounts them under /etc/shopfloor/secrets; standalone, point SHOPFLOOR_SECRETS_DIR at a directory with the same
layout. SHOPFLOOR_MQTT_USERNAME / SHOPFLOOR_MQTT_PASSWORD override the MQTT credentials. Keys used:
  MQTT credentialsSecretRef: username, password, ca.crt (optional, for mqtts), tls.crt + tls.key (optional client cert)
  OPC UA source certificateSecretRef: tls.crt, tls.key (DER or PEM), ca.crt (optional: the server's certificate)
  OPC UA server sink certificateSecretRef: tls.crt, tls.key, ca.crt (optional: trusted client certificates or CAs)
A VirtualPLC source (plcRef) is reached through its Service: host <plc>.<namespace>.svc, port 502 (the operator
writes the same endpoint into the pod's manifest). Every host is resolved through shopfloor_inpod.endpoints at each
connect, so the local edge site can map Service and broker names to loopback.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from shopfloor_api.common import LocalObjectRef
from shopfloor_api.protocolbridge import ProtocolBridge, SparkplugDevices, WordOrder
from shopfloor_bridge.modbus_codec import ModbusTag
from shopfloor_bridge.modbus_source import ModbusDevice
from shopfloor_bridge.mqtt_session import BrokerSettings
from shopfloor_bridge.opcua_server import OpcUaServerSettings
from shopfloor_bridge.opcua_source import OpcUaDevice, OpcUaSecurity
from shopfloor_bridge.tags import DataType, TagInfo

DEFAULT_SECRETS_DIR = Path("/etc/shopfloor/secrets")  # where the operator mounts Secrets in the pod
PLC_SERVICE_PORT = 502
_DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883, "ws": 80, "wss": 443}


class ConfigError(ValueError):
    """The manifest cannot be run here (a secret file is missing); the message names the field."""


class SecretFiles:
    def __init__(self, root: Path | None = None) -> None:
        self.root = root or Path(os.environ.get("SHOPFLOOR_SECRETS_DIR", DEFAULT_SECRETS_DIR))

    def path(self, secret: str, key: str) -> Path | None:
        candidate = self.root / secret / key
        return candidate if candidate.is_file() else None

    def text(self, secret: str, key: str) -> str | None:
        path = self.path(secret, key)
        return path.read_text().strip() if path else None


@dataclass(frozen=True)
class MqttConfig:
    broker: BrokerSettings
    qos: int
    max_bytes: int
    group_id: str | None = None
    edge_node_id: str | None = None
    primary_host_id: str | None = None
    topic_prefix: str | None = None
    devices: bool = False  # Sparkplug: each source is a device (DBIRTH/DDATA/DDEATH/DCMD)
    failover: tuple[BrokerSettings, ...] = ()  # further brokers, walked in order after `broker`

    @property
    def brokers(self) -> list[BrokerSettings]:
        return [self.broker, *self.failover]


@dataclass(frozen=True)
class BridgeConfig:
    name: str
    tags: list[TagInfo]
    modbus: list[ModbusDevice]
    opcua: list[OpcUaDevice]
    mqtt: MqttConfig | None
    opcua_server: OpcUaServerSettings | None
    writes_enabled: bool
    writes_allow: list[str]
    state_dir: Path


def from_manifest(manifest: ProtocolBridge, state_dir: Path, secrets: SecretFiles | None = None) -> BridgeConfig:
    secrets = secrets or SecretFiles()
    spec = manifest.spec
    tags: list[TagInfo] = []
    modbus: list[ModbusDevice] = []
    opcua: list[OpcUaDevice] = []
    for index, source in enumerate(spec.sources):
        if source.modbus is not None:
            m = source.modbus
            host, port = (m.endpoint.host, m.endpoint.port) if m.endpoint else _plc_service(manifest, m.plc_ref)
            device_tags = [
                ModbusTag(
                    f"{source.name}/{t.name}",
                    t.table,
                    t.address,
                    t.type,
                    little_endian_words=t.word_order is WordOrder.LITTLE_ENDIAN,
                    scale=None if t.scale == 1.0 else t.scale,
                    offset=None if t.offset == 0.0 else t.offset,
                )
                for t in m.tags
            ]
            tags += [TagInfo(t.name, t.reported_type) for t in device_tags]
            modbus.append(ModbusDevice(source.name, host, port, m.unit_id, m.poll_interval.seconds, device_tags))
        elif source.opcua is not None:
            o = source.opcua
            security = None
            if o.security_policy.value != "None":
                ref = o.certificate_secret_ref
                assert ref is not None  # the model requires it
                cert, key = secrets.path(ref.name, "tls.crt"), secrets.path(ref.name, "tls.key")
                if cert is None or key is None:
                    raise ConfigError(
                        f"spec.sources[{index}].opcua.certificateSecretRef: {secrets.root / ref.name} needs tls.crt "
                        "and tls.key"
                    )
                security = OpcUaSecurity(o.security_policy.value, cert, key, secrets.path(ref.name, "ca.crt"))
            nodes = {f"{source.name}/{n.name}": n.node_id for n in o.nodes}
            tags += [TagInfo(name, DataType.REAL) for name in nodes]  # the real type is read from the server
            opcua.append(OpcUaDevice(source.name, o.endpoint, nodes, o.sampling_interval.seconds, security))
    sources = {s.name: [t.name for t in tags if t.name.startswith(f"{s.name}/")] for s in spec.sources}
    return BridgeConfig(
        name=manifest.metadata.name,
        tags=tags,
        modbus=modbus,
        opcua=opcua,
        mqtt=_mqtt(manifest, secrets),
        opcua_server=_opcua_server(manifest, secrets, sources),
        writes_enabled=spec.writes.enabled,
        writes_allow=list(spec.writes.allow),
        state_dir=state_dir,
    )


def _plc_service(manifest: ProtocolBridge, ref: LocalObjectRef | None) -> tuple[str, int]:
    assert ref is not None  # the model requires plcRef or endpoint
    namespace = manifest.metadata.namespace
    return (f"{ref.name}.{namespace}.svc" if namespace else ref.name), PLC_SERVICE_PORT


def _mqtt(manifest: ProtocolBridge, secrets: SecretFiles) -> MqttConfig | None:
    sink = manifest.spec.sinks.mqtt
    if sink is None:
        return None
    username = password = None
    ca = cert = key = None
    if sink.credentials_secret_ref is not None:
        name = sink.credentials_secret_ref.name
        username, password = secrets.text(name, "username"), secrets.text(name, "password")
        ca, cert, key = secrets.path(name, "ca.crt"), secrets.path(name, "tls.crt"), secrets.path(name, "tls.key")
    username = os.environ.get("SHOPFLOOR_MQTT_USERNAME", username)
    password = os.environ.get("SHOPFLOOR_MQTT_PASSWORD", password)
    brokers: list[BrokerSettings] = []
    fields = ["url"] + [f"failoverUrls[{i}]" for i in range(len(sink.failover_urls))]
    for field, text in zip(fields, [sink.url, *sink.failover_urls], strict=True):
        url = urlsplit(text)
        if not url.hostname:
            raise ConfigError(f"spec.sinks.mqtt.{field}: no host in {text!r}")
        brokers.append(
            BrokerSettings(
                host=url.hostname,
                port=url.port or _DEFAULT_PORTS[url.scheme],
                tls=url.scheme in ("mqtts", "wss"),
                ca_file=ca,
                cert_file=cert,
                key_file=key,
                username=username,
                password=password,
                mqtt_version=5 if sink.protocol_version == "5" else 4,
                websockets=url.scheme in ("ws", "wss"),
                client_id=f"shopfloor-bridge-{manifest.metadata.name}",
            )
        )
    sparkplug = sink.sparkplug
    return MqttConfig(
        broker=brokers[0],
        failover=tuple(brokers[1:]),
        devices=sparkplug is not None and sparkplug.devices is SparkplugDevices.PER_SOURCE,
        qos=sink.qos,
        max_bytes=sink.buffer.max_bytes.bytes,
        group_id=sparkplug.group_id if sparkplug else None,
        edge_node_id=sparkplug.edge_node_id if sparkplug else None,
        primary_host_id=sparkplug.primary_host_id if sparkplug else None,
        topic_prefix=sink.topic_prefix,
    )


def _opcua_server(
    manifest: ProtocolBridge, secrets: SecretFiles, sources: dict[str, list[str]]
) -> OpcUaServerSettings | None:
    sink = manifest.spec.sinks.opcua
    if not sink.enabled:
        return None
    cert = key = trusted = None
    if sink.certificate_secret_ref is not None:
        cert = secrets.path(sink.certificate_secret_ref.name, "tls.crt")
        key = secrets.path(sink.certificate_secret_ref.name, "tls.key")
        trusted = secrets.path(sink.certificate_secret_ref.name, "ca.crt")
    try:
        return OpcUaServerSettings(
            port=sink.port,
            host=os.environ.get("SHOPFLOOR_BRIDGE_OPCUA_HOST", "0.0.0.0"),
            policies=[p.value for p in sink.security_policies],
            certificate=cert,
            private_key=key,
            trusted_clients=trusted,
            allow_anonymous=sink.allow_anonymous,
            sources=sources,
        )
    except ValueError as exc:
        raise ConfigError(f"spec.{exc}") from None
