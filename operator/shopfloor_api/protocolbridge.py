"""The ProtocolBridge API (DESIGN.md §2): Modbus TCP / OPC UA sources published to MQTT (Sparkplug B) or OPC UA."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, model_validator

from shopfloor_api.common import (
    Between,
    BridgePlacement,
    Condition,
    Duration,
    Endpoint,
    Failover,
    LocalObjectRef,
    LockStatus,
    Port,
    Quantity,
    SecretRef,
    ShopfloorModel,
    cel,
    cel_rules,
)
from shopfloor_api.meta import ObjectMeta
from shopfloor_api.virtualplc import ModbusTable, OpcUaSecurityPolicy, Phase, WordOrder

PollInterval = Annotated[Duration, Between("1ms", "1h")]
TAG_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.]*$"
# MQTT topic levels may not contain wildcards or separators.
TOPIC_LEVEL_PATTERN = r"^[^/+#]+$"


class TagType(StrEnum):
    """IEC 61131-3 type of a Modbus tag; DINT, UDINT and REAL take two registers."""

    BOOL = "BOOL"
    INT = "INT"
    UINT = "UINT"
    DINT = "DINT"
    UDINT = "UDINT"
    REAL = "REAL"


BIT_TABLES = (ModbusTable.COILS, ModbusTable.DISCRETE_INPUTS)


class ModbusTag(ShopfloorModel):
    """One value read from a Modbus device."""

    model_config = cel_rules(
        cel(
            "(self.table == 'coils' || self.table == 'discreteInputs') == (self.type == 'BOOL')",
            "BOOL tags live in coils or discreteInputs, numeric tags in registers",
            ".type",
        ),
    )

    name: str = Field(min_length=1, max_length=128, pattern=TAG_NAME_PATTERN, description="Tag name as published.")
    table: ModbusTable = Field(description="coils, discreteInputs, holdingRegisters or inputRegisters.")
    address: int = Field(ge=0, le=65535, description="0-based (PDU) address.")
    type: TagType = Field(description="BOOL (coils, discreteInputs) or INT, UINT, DINT, UDINT, REAL (registers).")
    word_order: WordOrder = Field(WordOrder.BIG_ENDIAN, description="Register order of 32-bit values.")
    scale: float = Field(1.0, description="Published value = raw x scale + offset.")
    offset: float = Field(0.0, description="Published value = raw x scale + offset.")

    @model_validator(mode="after")
    def _type_fits_table(self) -> ModbusTag:
        if (self.table in BIT_TABLES) != (self.type is TagType.BOOL):
            raise ValueError("type: BOOL tags live in coils or discreteInputs, numeric tags in registers")
        return self


class ModbusSource(ShopfloorModel):
    """A Modbus TCP device or VirtualPLC polled by the bridge: exactly one of plcRef or endpoint."""

    model_config = cel_rules(
        cel("has(self.plcRef) != has(self.endpoint)", "exactly one of plcRef or endpoint must be set"),
    )

    plc_ref: LocalObjectRef | None = Field(None, description="A VirtualPLC in the same namespace (its Service).")
    endpoint: Endpoint | None = Field(None, description="Host and port of a Modbus TCP server.")
    unit_id: int = Field(1, ge=0, le=255, description="Unit identifier.")
    poll_interval: PollInterval = Field(Duration("100ms"), description="Poll period.")
    tags: list[ModbusTag] = Field(min_length=1, max_length=1000, description="Values to read.")

    @model_validator(mode="after")
    def _one_target(self) -> ModbusSource:
        if (self.plc_ref is None) == (self.endpoint is None):
            raise ValueError("exactly one of plcRef or endpoint must be set")
        return self


class OpcUaNode(ShopfloorModel):
    """One OPC UA node read by the bridge."""

    name: str = Field(min_length=1, max_length=128, pattern=TAG_NAME_PATTERN, description="Tag name as published.")
    node_id: str = Field(min_length=1, max_length=512, description='OPC UA node id, e.g. "ns=2;s=Temp".')


class OpcUaSource(ShopfloorModel):
    """An OPC UA server the bridge subscribes to."""

    model_config = cel_rules(
        cel(
            "self.securityPolicy == 'None' || has(self.certificateSecretRef)",
            "certificateSecretRef is required unless securityPolicy is None",
            ".certificateSecretRef",
        ),
    )

    endpoint: str = Field(
        min_length=1, max_length=512, pattern=r"^opc\.tcp://.+", description="Endpoint URL (opc.tcp://host:port)."
    )
    security_policy: OpcUaSecurityPolicy = Field(
        OpcUaSecurityPolicy.BASIC256SHA256_SIGN_AND_ENCRYPT, description='Security policy; "None" must be explicit.'
    )
    certificate_secret_ref: SecretRef | None = Field(
        None, description="Secret with the client certificate and key (tls.crt, tls.key)."
    )
    nodes: list[OpcUaNode] = Field(min_length=1, max_length=1000, description="Nodes to read.")
    sampling_interval: PollInterval = Field(Duration("100ms"), description="Subscription sampling interval.")

    @model_validator(mode="after")
    def _certificate_when_secured(self) -> OpcUaSource:
        if self.security_policy is not OpcUaSecurityPolicy.NONE and self.certificate_secret_ref is None:
            raise ValueError("certificateSecretRef is required unless securityPolicy is None")
        return self


class Source(ShopfloorModel):
    """A named data source: exactly one of modbus or opcua."""

    model_config = cel_rules(
        cel("has(self.modbus) != has(self.opcua)", "exactly one of modbus or opcua must be set"),
    )

    name: str = Field(
        min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", description="Source name."
    )
    modbus: ModbusSource | None = Field(None, description="Poll a Modbus TCP server.")
    opcua: OpcUaSource | None = Field(None, description="Subscribe to an OPC UA server.")

    @model_validator(mode="after")
    def _one_kind(self) -> Source:
        if (self.modbus is None) == (self.opcua is None):
            raise ValueError("exactly one of modbus or opcua must be set")
        return self


class SparkplugDevices(StrEnum):
    """How sources appear in Sparkplug: None keeps every tag a node metric; PerSource makes each source a device."""

    NONE = "None"
    PER_SOURCE = "PerSource"


class Sparkplug(ShopfloorModel):
    """Sparkplug B identity of the bridge (an edge node); immutable, since host applications track it."""

    model_config = cel_rules(
        cel(
            "self.groupId == oldSelf.groupId && self.edgeNodeId == oldSelf.edgeNodeId",
            "groupId and edgeNodeId are immutable: create a new ProtocolBridge for a new Sparkplug identity",
        ),
    )

    group_id: str = Field(min_length=1, max_length=128, pattern=TOPIC_LEVEL_PATTERN, description="Sparkplug group.")
    edge_node_id: str = Field(
        min_length=1, max_length=128, pattern=TOPIC_LEVEL_PATTERN, description="Sparkplug edge node id."
    )
    primary_host_id: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        pattern=TOPIC_LEVEL_PATTERN,
        description="Primary host application whose STATE gates births; absent publishes unconditionally.",
    )
    devices: SparkplugDevices = Field(
        SparkplugDevices.NONE,
        description="PerSource: each source is a Sparkplug device named after it (DBIRTH, DDATA, DDEATH, DCMD); "
        "None: every tag is a node metric <source>/<tag>.",
    )


class MqttBuffer(ShopfloorModel):
    """Store-and-forward while the broker is away."""

    max_bytes: Quantity = Field(Quantity("64Mi"), description="Oldest messages are dropped beyond this size.")


class MqttSink(ShopfloorModel):
    """Publish to an MQTT broker: Sparkplug B or plain JSON under topicPrefix (exactly one)."""

    model_config = cel_rules(
        cel("has(self.sparkplug) != has(self.topicPrefix)", "exactly one of sparkplug or topicPrefix must be set"),
    )

    url: str = Field(
        min_length=1,
        max_length=512,
        pattern=r"^(mqtt|mqtts|ws|wss)://.+",
        description="Broker URL: mqtt://, mqtts://, ws:// or wss://.",
    )
    failover_urls: list[Annotated[str, Field(min_length=1, max_length=512, pattern=r"^(mqtt|mqtts|ws|wss)://.+")]] = (
        Field(
            default_factory=list,
            max_length=8,
            description="Further brokers, tried in order after url when a broker is unreachable or the primary host "
            "is offline on it; the same credentials.",
        )
    )
    credentials_secret_ref: SecretRef | None = Field(
        None, description="Secret with username and password (and ca.crt for mqtts)."
    )
    sparkplug: Sparkplug | None = Field(None, description="Publish Sparkplug B.")
    topic_prefix: str | None = Field(
        None, min_length=1, max_length=256, pattern=r"^[^+#]+$", description="Publish JSON under this topic prefix."
    )
    buffer: MqttBuffer = Field(default_factory=MqttBuffer, description="Store-and-forward buffer.")
    qos: Literal[0, 1] = Field(1, description="QoS of data messages.")
    protocol_version: Literal["3.1.1", "5"] = Field("3.1.1", description="MQTT protocol version.")

    @model_validator(mode="after")
    def _one_format(self) -> MqttSink:
        if (self.sparkplug is None) == (self.topic_prefix is None):
            raise ValueError("exactly one of sparkplug or topicPrefix must be set")
        return self


class OpcUaSink(ShopfloorModel):
    """Serve the bridge's tags through an OPC UA server."""

    enabled: bool = Field(False, description="Serve OPC UA.")
    port: Port = Field(4840, description="Container and Service port.")
    security_policies: list[OpcUaSecurityPolicy] = Field(
        default_factory=lambda: [OpcUaSecurityPolicy.BASIC256SHA256_SIGN_AND_ENCRYPT],
        min_length=1,
        max_length=8,
        description='Security policies offered; "None" only when listed explicitly.',
    )
    certificate_secret_ref: SecretRef | None = Field(None, description="Secret with the server certificate and key.")
    allow_anonymous: bool = Field(False, description="Accept anonymous sessions.")


class Sinks(ShopfloorModel):
    """Where the bridge publishes."""

    mqtt: MqttSink | None = Field(None, description="MQTT broker.")
    opcua: OpcUaSink = Field(default_factory=OpcUaSink, description="OPC UA server.")


class Writes(ShopfloorModel):
    """Write-back from sinks to sources: off unless listed tag by tag."""

    enabled: bool = Field(False, description="Allow writes at all.")
    allow: list[str] = Field(
        default_factory=list,
        max_length=1000,
        description="Tags that may be written, as <source>/<tag>.",
    )


class BridgeResources(ShopfloorModel):
    """CPU and memory of the bridge."""

    cpus: float = Field(0.5, ge=0.1, le=64, description="CPUs (requests = limits).")
    memory: Quantity = Field(Quantity("128Mi"), description="Memory, e.g. 128Mi.")


class ProtocolBridgeSpec(ShopfloorModel):
    """Desired state of a protocol bridge."""

    sources: list[Source] = Field(min_length=1, max_length=64, description="Devices and PLCs read.")
    sinks: Sinks = Field(default_factory=Sinks, description="Where values are published.")
    writes: Writes = Field(default_factory=Writes, description="Write-back policy.")
    placement: BridgePlacement = Field(default_factory=BridgePlacement, description="Where the bridge may run.")
    resources: BridgeResources = Field(default_factory=BridgeResources, description="CPU and memory.")
    failover: Failover = Field(default_factory=Failover, description="The bridge's lock and how fast it fails over.")
    image: str = Field("", max_length=512, description="Bridge image override; empty uses the operator's default.")

    @model_validator(mode="after")
    def _cross_field_rules(self) -> ProtocolBridgeSpec:
        names = [source.name for source in self.sources]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"sources: duplicate names {', '.join(duplicates)}")
        known = {f"{s.name}/{t.name}" for s in self.sources if s.modbus for t in s.modbus.tags}
        known |= {f"{s.name}/{n.name}" for s in self.sources if s.opcua for n in s.opcua.nodes}
        for index, tag in enumerate(self.writes.allow):
            if tag not in known:
                raise ValueError(f"writes.allow[{index}]: unknown tag {tag!r} (expected <source>/<tag>)")
        return self


class ProtocolBridgeStatus(ShopfloorModel):
    """Observed state of a protocol bridge."""

    phase: Phase = Field(Phase.PENDING, description="Pending, Scheduling, Starting, Running, Degraded, Faulted.")
    observed_generation: int = Field(0, description="The generation of the spec this status describes.")
    node_name: str = Field("", description="Node the bridge's pod is bound to.")
    pod_name: str = Field("", description="The bridge's pod.")
    replacements: int = Field(0, description="How many times the operator replaced the bridge's pod.")
    lock: LockStatus = Field(default_factory=LockStatus, description="Who holds the bridge's Lease, and its epoch.")
    conditions: list[Condition] = Field(default_factory=list, description="Ready, Reconciling, Stalled, Scheduled.")


class ProtocolBridge(ShopfloorModel):
    """A protocol bridge manifest."""

    api_version: Literal["shopfloor.io/v1alpha1"] = Field("shopfloor.io/v1alpha1", description="shopfloor.io/v1alpha1")
    kind: Literal["ProtocolBridge"] = Field("ProtocolBridge", description="ProtocolBridge")
    metadata: ObjectMeta = Field(description="Standard object metadata.")
    spec: ProtocolBridgeSpec = Field(description="Desired state.")
    status: ProtocolBridgeStatus | None = Field(None, description="Observed state.")
