"""The VirtualPLC API (DESIGN.md §2): a Structured Text program run by the vPLC runtime on an edge node."""

from __future__ import annotations

from contextlib import suppress
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from shopfloor_api.common import (
    NO_CRD_DEFAULT,
    Between,
    Condition,
    ConfigMapKeyRef,
    Duration,
    Failover,
    LockStatus,
    NetworkPeer,
    Placement,
    Port,
    Quantity,
    SecretRef,
    ShopfloorModel,
    Variable,
    cel,
    cel_rules,
)
from shopfloor_api.meta import ObjectMeta
from shopfloor_api.runtime_contract import (
    DEFAULT_SYNC_INTERVAL_S,
    DEFAULT_TAKEOVER_AFTER_S,
    MAX_TAKEOVER_AFTER_S,
    MIN_TAKEOVER_AFTER_S,
    REDUNDANCY_HOT_STANDBY,
    SYNC_MESSAGES_PER_TAKEOVER,
    StandbyTiming,
)

SHA256_PATTERN = r"^(sha256:)?[0-9a-f]{64}$"
MAX_SOURCE_BYTES = 512 * 1024  # a ConfigMap holds at most 1 MiB, and the runtime ConfigMap carries more than the source

CycleTime = Annotated[Duration, Between("1ms", "10s")]
Watchdog = Annotated[Duration, Between("1ms", "60s")]
PollInterval = Annotated[Duration, Between("1ms", "1h")]
VerifyFor = Annotated[Duration, Between("0s", "1h")]


class ModbusTable(StrEnum):
    """The four Modbus data tables."""

    COILS = "coils"
    DISCRETE_INPUTS = "discreteInputs"
    HOLDING_REGISTERS = "holdingRegisters"
    INPUT_REGISTERS = "inputRegisters"


class WordOrder(StrEnum):
    """Order of the two registers of a 32-bit value."""

    BIG_ENDIAN = "BigEndian"
    LITTLE_ENDIAN = "LittleEndian"


class OpcUaSecurityPolicy(StrEnum):
    """OPC UA security policies with message security mode; deprecated policies (Basic128Rsa15, Basic256) omitted."""

    NONE = "None"
    BASIC256SHA256_SIGN = "Basic256Sha256_Sign"
    BASIC256SHA256_SIGN_AND_ENCRYPT = "Basic256Sha256_SignAndEncrypt"
    AES128_SHA256_RSAOAEP_SIGN = "Aes128_Sha256_RsaOaep_Sign"
    AES128_SHA256_RSAOAEP_SIGN_AND_ENCRYPT = "Aes128_Sha256_RsaOaep_SignAndEncrypt"
    AES256_SHA256_RSAPSS_SIGN = "Aes256_Sha256_RsaPss_Sign"
    AES256_SHA256_RSAPSS_SIGN_AND_ENCRYPT = "Aes256_Sha256_RsaPss_SignAndEncrypt"


class ProgramSpec(ShopfloorModel):
    """The Structured Text program: exactly one of source or configMapRef."""

    model_config = cel_rules(
        cel("has(self.source) != has(self.configMapRef)", "exactly one of source or configMapRef must be set"),
    )

    source: str | None = Field(
        None, max_length=MAX_SOURCE_BYTES, description="IEC 61131-3 Structured Text source, inline."
    )
    config_map_ref: ConfigMapKeyRef | None = Field(None, description="A ConfigMap key holding the source.")
    entrypoint: str = Field(
        "",
        max_length=128,
        pattern=r"^([A-Za-z_][A-Za-z0-9_]*)?$",
        description="The PROGRAM to run; may be empty when the source declares exactly one PROGRAM.",
    )
    sha256: str | None = Field(
        None,
        pattern=SHA256_PATTERN,
        description=(
            "Integrity pin: sha256 of the normalised source (hex, optionally prefixed `sha256:`). "
            "On mismatch nothing is deployed."
        ),
    )

    @model_validator(mode="after")
    def _one_source(self) -> ProgramSpec:
        if (self.source is None) == (self.config_map_ref is None):
            raise ValueError("exactly one of source or configMapRef must be set")
        return self

    @property
    def pinned_revision(self) -> str | None:
        """The pin in revision form (`sha256:<hex>`), or None."""
        if self.sha256 is None:
            return None
        return self.sha256 if self.sha256.startswith("sha256:") else f"sha256:{self.sha256}"


class PlcResources(ShopfloorModel):
    """CPU and memory of the runtime; requests equal limits (Guaranteed QoS)."""

    cpus: float = Field(
        1,
        ge=0.1,
        le=64,
        description="CPUs; whole numbers get exclusive cores under the static CPU manager (required for realtime).",
    )
    memory: Quantity = Field(Quantity("256Mi"), description="Memory, e.g. 256Mi.")

    @property
    def whole_cpus(self) -> bool:
        return float(self.cpus).is_integer()


class ModbusMapEntry(ShopfloorModel):
    """One program variable exposed at a Modbus address."""

    variable: Variable = Field(description="Program variable (dotted path for structure members).")
    table: ModbusTable = Field(description="coils, discreteInputs, holdingRegisters or inputRegisters.")
    address: int = Field(ge=0, le=65535, description="0-based (PDU) address; 32-bit types and REAL take two registers.")
    word_order: WordOrder = Field(
        WordOrder.BIG_ENDIAN, description="BigEndian: high word first (default); LittleEndian: low word first."
    )


class ModbusServerSpec(ShopfloorModel):
    """The runtime's Modbus TCP server."""

    enabled: bool = Field(True, description="Serve Modbus TCP.")
    port: Port = Field(5020, description="Container port; the Service exposes 502.")
    unit_id: int = Field(1, ge=0, le=255, description="Unit identifier answered by the server.")
    map: list[ModbusMapEntry] = Field(
        default_factory=list, max_length=4096, description="Variables exposed and their addresses."
    )


class OpcUaServerSpec(ShopfloorModel):
    """The runtime's OPC UA server."""

    model_config = cel_rules(
        cel(
            "!self.enabled || self.securityPolicies.all(p, p == 'None') || has(self.certificateSecretRef)",
            "certificateSecretRef is required when a security policy other than None is offered",
            ".certificateSecretRef",
        ),
    )

    enabled: bool = Field(False, description="Serve OPC UA.")
    port: Port = Field(4840, description="Container and Service port.")
    security_policies: list[OpcUaSecurityPolicy] = Field(
        default_factory=lambda: [OpcUaSecurityPolicy.BASIC256SHA256_SIGN_AND_ENCRYPT],
        min_length=1,
        max_length=8,
        description='Security policies offered; "None" only when listed explicitly.',
    )
    certificate_secret_ref: SecretRef | None = Field(
        None, description="Secret with the server certificate and key (tls.crt, tls.key)."
    )
    allow_anonymous: bool = Field(False, description="Accept anonymous sessions.")
    writable: list[Variable] = Field(
        default_factory=list, max_length=1024, description="Variables OPC UA clients may write; others are read-only."
    )

    @model_validator(mode="after")
    def _certificate_when_secured(self) -> OpcUaServerSpec:
        secured = any(policy is not OpcUaSecurityPolicy.NONE for policy in self.security_policies)
        if self.enabled and secured and self.certificate_secret_ref is None:
            raise ValueError("certificateSecretRef is required when a security policy other than None is offered")
        return self


class FieldDeviceModbus(ShopfloorModel):
    """Modbus TCP address of a field device."""

    host: str = Field(min_length=1, max_length=253, description="Host name or IP address of the device.")
    port: Port = Field(502, description="TCP port of the device.")
    unit_id: int = Field(1, ge=0, le=255, description="Unit identifier of the device.")


class FieldDevice(ShopfloorModel):
    """Remote I/O the PLC drives as a Modbus TCP client (its I/O scanner)."""

    model_config = cel_rules(
        cel(
            "self.outputs.all(o, o.table == 'coils' || o.table == 'holdingRegisters')",
            "outputs can only be coils or holdingRegisters",
            ".outputs",
        ),
    )

    name: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", description="Name.")
    modbus: FieldDeviceModbus = Field(description="Modbus TCP address of the device.")
    poll_interval: PollInterval | None = Field(None, description="Poll period; default: the cycle time.")
    inputs: list[ModbusMapEntry] = Field(
        default_factory=list, max_length=1024, description="Device data read into program variables."
    )
    outputs: list[ModbusMapEntry] = Field(
        default_factory=list,
        max_length=1024,
        description="Program variables written to the device (coils or holdingRegisters).",
    )
    on_loss: Literal["Fault", "HoldLastValue"] = Field(
        "Fault", description="On lost communication: Fault (safe state) or HoldLastValue."
    )

    @model_validator(mode="after")
    def _writable_outputs(self) -> FieldDevice:
        for index, entry in enumerate(self.outputs):
            if entry.table not in (ModbusTable.COILS, ModbusTable.HOLDING_REGISTERS):
                raise ValueError(f"outputs[{index}].table: outputs can only be coils or holdingRegisters")
        return self


class IOSpec(ShopfloorModel):
    """How the PLC talks to the plant."""

    modbus: ModbusServerSpec = Field(default_factory=ModbusServerSpec, description="Modbus TCP server.")
    opcua: OpcUaServerSpec = Field(default_factory=OpcUaServerSpec, description="OPC UA server.")
    field_devices: list[FieldDevice] = Field(
        default_factory=list, max_length=64, description="Remote I/O scanned as a Modbus TCP client."
    )


class UpdateStrategy(ShopfloorModel):
    """How a new program revision is deployed."""

    type: Literal["OnlineChange", "Restart"] = Field(
        "OnlineChange", description="OnlineChange: swap the program in the running runtime; Restart: replace the pod."
    )
    verify_for: VerifyFor = Field(
        Duration("30s"), description="The PLC must stay healthy this long after a switch, else it is rolled back."
    )


SafeValue = bool | int | float | str

TakeoverAfter = Annotated[
    Duration,
    Between(Duration.from_seconds(MIN_TAKEOVER_AFTER_S).text, Duration.from_seconds(MAX_TAKEOVER_AFTER_S).text),
]
# CEL has no duration * int: the sum of SYNC_MESSAGES_PER_TAKEOVER intervals must fit into takeoverAfter.
_SYNC_INTERVALS = " + ".join(["duration(self.syncInterval)"] * SYNC_MESSAGES_PER_TAKEOVER)


class RedundancyMode(StrEnum):
    """One runtime, or a primary and a hot standby on another node."""

    NONE = "None"
    HOT_STANDBY = REDUNDANCY_HOT_STANDBY


class Redundancy(ShopfloorModel):
    """A second runtime on another node, fed the primary's process state, that takes over by itself."""

    model_config = cel_rules(
        cel("duration(self.syncInterval) > duration('0s')", "syncInterval must be above 0", ".syncInterval"),
        cel(
            f"{_SYNC_INTERVALS} <= duration(self.takeoverAfter)",
            f"syncInterval must be at most takeoverAfter/{SYNC_MESSAGES_PER_TAKEOVER}",
            ".syncInterval",
        ),
    )

    mode: RedundancyMode = Field(
        RedundancyMode.NONE,
        description=(
            "None: one runtime pod; HotStandby: two runtime pods on different nodes, the Lease holder drives and "
            "streams its state to the other, which takes the Lease over by itself when the primary goes silent."
        ),
    )
    takeover_after: TakeoverAfter = Field(
        Duration.from_seconds(DEFAULT_TAKEOVER_AFTER_S),
        description="A standby that has heard nothing from its primary this long takes over; 100ms..10s.",
    )
    sync_interval: Duration = Field(
        Duration.from_seconds(DEFAULT_SYNC_INTERVAL_S),
        description=f"How often the primary sends its whole state; at most takeoverAfter/{SYNC_MESSAGES_PER_TAKEOVER}.",
    )

    @model_validator(mode="after")
    def _timing_is_valid(self) -> Redundancy:
        self.timing()  # the runtime's own check (StandbyTiming): its messages name the field
        return self

    @property
    def hot_standby(self) -> bool:
        return self.mode is RedundancyMode.HOT_STANDBY

    def timing(self) -> StandbyTiming:
        return StandbyTiming(self.takeover_after.seconds, self.sync_interval.seconds)


class VirtualPLCSpec(ShopfloorModel):
    """Desired state of a virtual PLC."""

    model_config = cel_rules(
        cel(
            "!has(self.watchdog) || duration(self.watchdog) >= duration(self.cycleTime)",
            "watchdog must be at least cycleTime",
            ".watchdog",
        ),
        cel(
            "self.realtimePriority == 0 || double(int(self.resources.cpus)) == double(self.resources.cpus)",
            "resources.cpus must be a whole number when realtimePriority > 0",
            ".resources.cpus",
        ),
    )

    program: ProgramSpec = Field(description="The Structured Text program.")
    cycle_time: CycleTime = Field(Duration("10ms"), description="Scan period, 1ms..10s.")
    watchdog: Watchdog = Field(
        Duration("50ms"),
        description="A scan longer than this faults the PLC into its safe state; default 5 x cycleTime.",
        # The default depends on cycleTime: filled in by the model, so the CRD must not default it.
        json_schema_extra={NO_CRD_DEFAULT: True},
    )
    realtime_priority: int = Field(
        0, ge=0, le=99, description="SCHED_FIFO priority 1..99; 0 runs without real-time scheduling."
    )
    resources: PlcResources = Field(default_factory=PlcResources, description="CPU and memory (Guaranteed QoS).")
    placement: Placement = Field(default_factory=Placement, description="Where the PLC may run.")
    io: IOSpec = Field(default_factory=IOSpec, description="Modbus/OPC UA servers and field devices.")
    safe_state: dict[str, SafeValue] = Field(
        default_factory=dict,
        max_length=1024,
        description="Values written to variables and field outputs on fault, watchdog expiry and shutdown.",
    )
    update_strategy: UpdateStrategy = Field(
        default_factory=UpdateStrategy, description="How program changes are rolled out."
    )
    allowed_clients: list[NetworkPeer] = Field(
        default_factory=list,
        max_length=64,
        description="Peers allowed to reach Modbus and OPC UA (NetworkPolicy); empty allows none.",
    )
    failover: Failover = Field(default_factory=Failover, description="The PLC's lock and how fast it fails over.")
    redundancy: Redundancy = Field(
        default_factory=Redundancy, description="One runtime, or a primary and a hot standby (docs/failover.md)."
    )
    image: str = Field("", max_length=512, description="Runtime image override; empty uses the operator's default.")

    @model_validator(mode="before")
    @classmethod
    def _default_watchdog(cls, data: Any) -> Any:
        if isinstance(data, dict) and "watchdog" not in data:
            cycle = data.get("cycleTime", data.get("cycle_time", "10ms"))
            with suppress(ValueError):  # an invalid cycleTime is reported as such
                data = {**data, "watchdog": Duration(str(cycle)) * 5}
        return data

    @model_validator(mode="after")
    def _cross_field_rules(self) -> VirtualPLCSpec:
        if self.watchdog < self.cycle_time:
            raise ValueError(f"watchdog ({self.watchdog}) must be at least cycleTime ({self.cycle_time})")
        if self.realtime_priority > 0 and not self.resources.whole_cpus:
            raise ValueError("resources.cpus must be a whole number when realtimePriority > 0")
        return self


class Phase(StrEnum):
    PENDING = "Pending"
    SCHEDULING = "Scheduling"
    STARTING = "Starting"
    RUNNING = "Running"
    UPDATING = "Updating"
    DEGRADED = "Degraded"
    FAULTED = "Faulted"


class ProgramStatus(ShopfloorModel):
    """Program revisions (content hashes `sha256:<hex>`)."""

    desired_revision: str = Field("", description="Revision compiled from the current spec.")
    active_revision: str = Field("", description="Revision the runtime reports running.")
    last_known_good_revision: str = Field("", description="Last revision that passed verification.")
    deployed_revision: str = Field("", description="Revision handed to the runtime (its ConfigMap).")
    deployed_at: str = Field("", description="When the deployed revision was handed over (RFC 3339).")
    switched_at: str = Field("", description="When the runtime reported the deployed revision active (RFC 3339).")
    failed_revision: str = Field("", description="Revision rolled back after failing verification; not retried.")
    message: str = Field("", description="Why the last rollback happened, or the program's first compile error.")


class RedundancyStatus(ShopfloorModel):
    """The hot standby, as the operator last saw it (spec.redundancy.mode HotStandby)."""

    standby: str = Field("", description="The standby pod (the live pod not holding the Lease); empty when none.")
    standby_node: str = Field("", description="Node the standby pod is bound to.")
    in_sync: bool = Field(
        False, description="The primary reports this standby in sync (the Lease's shopfloor.io/standby annotation)."
    )


class VirtualPLCStatus(ShopfloorModel):
    """Observed state of a virtual PLC."""

    phase: Phase = Field(
        Phase.PENDING, description="Pending, Scheduling, Starting, Running, Updating, Degraded, Faulted."
    )
    observed_generation: int = Field(0, description="The generation of the spec this status describes.")
    node_name: str = Field("", description="Node the PLC's pod (the primary's, with hot standby) is bound to.")
    pod_name: str = Field("", description="The PLC's pod; with hot standby the primary's, the Lease holder.")
    program: ProgramStatus = Field(default_factory=ProgramStatus, description="Program revisions.")
    replacements: int = Field(0, description="How many times the operator replaced the PLC's pod.")
    lock: LockStatus = Field(default_factory=LockStatus, description="Who holds the PLC's Lease, and its epoch.")
    redundancy: RedundancyStatus | None = Field(None, description="The hot standby; absent with mode None.")
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready, Reconciling, Stalled, ProgramValid, Scheduled, RuntimeHealthy, Degraded, Redundant.",
    )


class VirtualPLC(ShopfloorModel):
    """A virtual PLC manifest."""

    api_version: Literal["shopfloor.io/v1alpha1"] = Field("shopfloor.io/v1alpha1", description="shopfloor.io/v1alpha1")
    kind: Literal["VirtualPLC"] = Field("VirtualPLC", description="VirtualPLC")
    metadata: ObjectMeta = Field(description="Standard object metadata.")
    spec: VirtualPLCSpec = Field(description="Desired state.")
    status: VirtualPLCStatus | None = Field(None, description="Observed state.")
