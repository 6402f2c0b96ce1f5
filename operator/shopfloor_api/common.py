"""Types shared by the VirtualPLC and ProtocolBridge APIs: durations, quantities, references, placement, conditions."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

GROUP = "shopfloor.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
# Marks a field whose default is computed by the model from other fields: the CRD must not default it.
NO_CRD_DEFAULT = "x-shopfloor-no-crd-default"


class ShopfloorModel(BaseModel):
    """Base of every API model: camelCase in YAML, snake_case in Python, unknown fields rejected."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        use_enum_values=False,
    )


def cel_rules(*rules: dict[str, str]) -> ConfigDict:
    """Model config adding CEL validation rules to the model's node in the CRD schema."""
    return ConfigDict(json_schema_extra={"x-kubernetes-validations": list(rules)})  # type: ignore[arg-type]


def cel(rule: str, message: str, field_path: str = "") -> dict[str, str]:
    """One CEL rule; field_path (e.g. `.watchdog`) makes the API server name the field in its error."""
    return {"rule": rule, "message": message, **({"fieldPath": field_path} if field_path else {})}


# ---------------------------------------------------------------------------------------------- durations

_DURATION_UNITS_NS = {
    "h": 3_600_000_000_000,
    "m": 60_000_000_000,
    "s": 1_000_000_000,
    "ms": 1_000_000,
    "us": 1_000,
    "ns": 1,
}
# Go/CEL duration syntax restricted to non-negative values, so `duration(self)` in CEL rules accepts every valid value.
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(h|ms|m|s|us|ns))+$"
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(h|ms|m|s|us|ns)")
_DURATION_FULL = re.compile(DURATION_PATTERN)


class TextValue:
    """A value written as text in manifests (a duration, a quantity) that keeps its text for round trips.

    Subclasses parse the text in `__init__`, say which number compares them (`_key`) and the CRD `pattern`."""

    __slots__ = ("text",)
    pattern: ClassVar[str] = ""
    text: str

    def _key(self) -> int:
        raise NotImplementedError

    @classmethod
    def _input_schema(cls) -> core_schema.CoreSchema:
        return core_schema.str_schema()

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._key() == self._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.text!r})"

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        from_text = core_schema.no_info_after_validator_function(cls, cls._input_schema())
        return core_schema.union_schema(
            [core_schema.is_instance_schema(cls), from_text],
            serialization=core_schema.plain_serializer_function_ser_schema(str, when_used="always"),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "pattern": cls.pattern}


class Duration(TextValue):
    """A duration written like `10ms`, `1s500ms` or `2m`; keeps its text so manifests round-trip unchanged."""

    __slots__ = ("nanoseconds",)
    pattern: ClassVar[str] = DURATION_PATTERN

    def __init__(self, text: str) -> None:
        text = text.strip()
        if not _DURATION_FULL.match(text):
            raise ValueError(
                f"invalid duration {text!r}: expected a number and a unit (h, m, s, ms, us, ns), e.g. 10ms"
            )
        total = 0.0
        for number, unit in _DURATION_PART.findall(text):
            total += float(number) * _DURATION_UNITS_NS[unit]
        self.text = text
        self.nanoseconds = round(total)

    @classmethod
    def from_seconds(cls, seconds: float) -> Duration:
        """The shortest exact text for a number of seconds (whole milliseconds or microseconds)."""
        micros = round(seconds * 1_000_000)
        if micros % 1_000_000 == 0:
            return cls(f"{micros // 1_000_000}s")
        if micros % 1_000 == 0:
            return cls(f"{micros // 1_000}ms")
        return cls(f"{micros}us")

    @property
    def seconds(self) -> float:
        return self.nanoseconds / 1e9

    @property
    def milliseconds(self) -> float:
        return self.nanoseconds / 1e6

    def timedelta(self) -> timedelta:
        return timedelta(microseconds=self.nanoseconds / 1000)

    def __mul__(self, factor: int) -> Duration:
        return Duration.from_seconds(self.seconds * factor)

    def _key(self) -> int:
        return self.nanoseconds

    def __lt__(self, other: Duration) -> bool:
        return self.nanoseconds < other.nanoseconds

    def __le__(self, other: Duration) -> bool:
        return self.nanoseconds <= other.nanoseconds

    def __gt__(self, other: Duration) -> bool:
        return self.nanoseconds > other.nanoseconds

    def __ge__(self, other: Duration) -> bool:
        return self.nanoseconds >= other.nanoseconds


@dataclass(frozen=True)
class Between:
    """Annotated metadata bounding a Duration to [minimum, maximum], checked in Python and by a CEL rule in the CRD."""

    minimum: str
    maximum: str

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        low, high = Duration(self.minimum), Duration(self.maximum)

        def check(value: Duration) -> Duration:
            if not low <= value <= high:
                raise ValueError(f"must be between {self.minimum} and {self.maximum}, got {value}")
            return value

        return core_schema.no_info_after_validator_function(check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        rule = f"duration(self) >= duration('{self.minimum}') && duration(self) <= duration('{self.maximum}')"
        message = f"must be between {self.minimum} and {self.maximum}"
        return {**handler(schema), "x-kubernetes-validations": [{"rule": rule, "message": message}]}


# ---------------------------------------------------------------------------------------------- quantities

QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$"
_QUANTITY = re.compile(QUANTITY_PATTERN)
_QUANTITY_FACTOR = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}


class Quantity(TextValue):
    """A byte quantity in Kubernetes notation (`256Mi`, `1G`, `1048576`); keeps its text for round trips."""

    __slots__ = ("bytes",)
    pattern: ClassVar[str] = QUANTITY_PATTERN

    def __init__(self, text: str | int) -> None:
        text = str(text).strip()
        match = _QUANTITY.match(text)
        if not match:
            raise ValueError(f"invalid quantity {text!r}: expected a number with an optional suffix, e.g. 256Mi")
        suffix = match.group(2) or ""
        self.text = text
        self.bytes = int(float(text[: len(text) - len(suffix)]) * _QUANTITY_FACTOR[suffix])

    def _key(self) -> int:
        return self.bytes

    @classmethod
    def _input_schema(cls) -> core_schema.CoreSchema:
        return core_schema.union_schema([core_schema.str_schema(), core_schema.int_schema(ge=0)])


# ---------------------------------------------------------------------------------------------- names and references

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
IDENTIFIER_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"

ObjectName = Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)]
Variable = Annotated[str, Field(min_length=1, max_length=128, pattern=IDENTIFIER_PATTERN)]
Port = Annotated[int, Field(ge=1, le=65535)]


class SecretRef(ShopfloorModel):
    """A Secret in the same namespace."""

    name: ObjectName = Field(description="Name of the Secret in the object's namespace.")


class ConfigMapKeyRef(ShopfloorModel):
    """One key of a ConfigMap in the same namespace."""

    name: ObjectName = Field(description="Name of the ConfigMap in the object's namespace.")
    key: str = Field(
        min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$", description="Key in the ConfigMap's data."
    )


class LocalObjectRef(ShopfloorModel):
    """Another object of the same namespace, by name."""

    name: ObjectName = Field(description="Name of the object in the same namespace.")


class Endpoint(ShopfloorModel):
    """A TCP endpoint."""

    host: str = Field(min_length=1, max_length=253, description="Host name or IP address.")
    port: Port = Field(502, description="TCP port.")


# ---------------------------------------------------------------------------------------------- placement


class RealtimeMode(StrEnum):
    """Whether the workload must, should or need not run on a real-time (PREEMPT_RT) node."""

    REQUIRED = "Required"
    PREFERRED = "Preferred"
    NONE = "None"


class Toleration(ShopfloorModel):
    """A Kubernetes toleration added to the pod."""

    key: str = Field("", max_length=316, description="Taint key the toleration applies to; empty matches all keys.")
    operator: Literal["Exists", "Equal"] = Field("Equal", description="Exists or Equal.")
    value: str = Field("", max_length=63, description="Taint value to match when operator is Equal.")
    effect: Literal["", "NoSchedule", "PreferNoSchedule", "NoExecute"] = Field(
        "", description="Taint effect to match; empty matches all effects."
    )
    toleration_seconds: int | None = Field(
        None, ge=0, description="For NoExecute: how long the pod stays bound after the taint appears."
    )


class Placement(ShopfloorModel):
    """Where the workload's pod may run."""

    realtime: RealtimeMode = Field(
        RealtimeMode.REQUIRED,
        description=(
            "Required: only real-time nodes (the operator's real-time node selector) and tolerate their taint; "
            "Preferred: prefer them; None: any node."
        ),
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict,
        max_length=32,
        description="Node labels the pod requires, added to the operator's real-time node selector.",
    )
    node_name: str = Field("", max_length=253, description="Pin the pod to this node; empty lets the scheduler choose.")
    tolerations: list[Toleration] = Field(default_factory=list, max_length=32, description="Extra tolerations.")
    runtime_class_name: str = Field("", max_length=253, description="RuntimeClass of the pod, passed through.")
    priority_class_name: str = Field("", max_length=253, description="PriorityClass of the pod, passed through.")


class BridgePlacement(Placement):
    """Where the bridge's pod may run; real-time nodes are not needed by default."""

    realtime: RealtimeMode = Field(
        RealtimeMode.NONE,
        description=(
            "Required: only real-time nodes and tolerate their taint; Preferred: prefer them; None: any node."
        ),
    )


LeaseDuration = Annotated[Duration, Between("1s", "60s")]


class Failover(ShopfloorModel):
    """How the workload's lock (its Lease) behaves when the runtime or its node is lost (docs/failover.md)."""

    lease_duration: LeaseDuration = Field(
        Duration("3s"),
        description=(
            "A runtime that has not renewed its Lease for this long (less a margin) stops driving its outputs; a "
            "replacement is started once the Lease has been seen unchanged for this long (plus a margin). Shorter "
            "fails over faster and costs more API requests: three renewals per period."
        ),
    )


class LabelSelectorRequirement(ShopfloorModel):
    """One expression of a label selector."""

    key: str = Field(min_length=1, max_length=316, description="Label key.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(description="In, NotIn, Exists or DoesNotExist.")
    values: list[str] = Field(default_factory=list, max_length=64, description="Values for In and NotIn.")


class LabelSelector(ShopfloorModel):
    """A Kubernetes label selector."""

    match_labels: dict[str, str] = Field(default_factory=dict, max_length=32, description="Labels that must match.")
    match_expressions: list[LabelSelectorRequirement] = Field(
        default_factory=list, max_length=16, description="Expressions that must all match."
    )


class IPBlock(ShopfloorModel):
    """An address range."""

    cidr: str = Field(min_length=1, max_length=64, description="CIDR, e.g. 198.51.100.0/24.")
    except_: list[str] = Field(
        default_factory=list, alias="except", max_length=32, description="CIDRs inside cidr to exclude."
    )


class NetworkPeer(ShopfloorModel):
    """A client allowed to reach the workload (a NetworkPolicy peer: zone and conduit)."""

    pod_selector: LabelSelector | None = Field(None, description="Pods allowed, in the namespaces selected.")
    namespace_selector: LabelSelector | None = Field(
        None, description="Namespaces allowed; absent means the object's own namespace."
    )
    ip_block: IPBlock | None = Field(None, description="Addresses allowed (cannot be combined with selectors).")


# ---------------------------------------------------------------------------------------------- status


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(ShopfloorModel):
    """One observation of the object's state, following Kubernetes' condition conventions (kstatus)."""

    model_config = ConfigDict(extra="ignore")

    type: str = Field(max_length=316, description="Ready, Reconciling, Stalled, ProgramValid, Scheduled, ...")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field("", max_length=1024, description="One CamelCase word for machines.")
    message: str = Field("", max_length=32768, description="Explanation for humans.")
    last_transition_time: str = Field("", description="When the status last changed (RFC 3339).")
    observed_generation: int = Field(0, ge=0, description="The generation this condition was computed from.")


class LockStatus(ShopfloorModel):
    """Who holds the workload's lock (its Lease), as the operator last saw it."""

    holder: str = Field("", description="The pod holding the Lease: the one runtime allowed to drive the outputs.")
    epoch: int = Field(0, ge=0, description="Fencing epoch: the Lease's leaseTransitions, one more per new holder.")
