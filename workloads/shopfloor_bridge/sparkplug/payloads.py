"""Sparkplug B payloads and topics for one edge node: NBIRTH, NDATA, NDEATH and the NCMD it understands."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from shopfloor_bridge.sparkplug.sparkplug_payload_pb2 import Payload
from shopfloor_bridge.tags import DataType, Quality, TagInfo, TagValue, Value, now_ms

NAMESPACE = "spBv1.0"
BDSEQ = "bdSeq"
REBIRTH = "Node Control/Rebirth"

# Sparkplug B datatype codes (specification, section 6.4.16).
SP_INT16, SP_INT32, SP_INT64, SP_UINT16, SP_UINT32 = 2, 3, 4, 6, 7
SP_FLOAT, SP_BOOLEAN = 9, 11
_SP_TYPE = {
    DataType.BOOL: SP_BOOLEAN,
    DataType.INT: SP_INT16,
    DataType.UINT: SP_UINT16,
    DataType.DINT: SP_INT32,
    DataType.UDINT: SP_UINT32,
    DataType.REAL: SP_FLOAT,
}


@dataclass(frozen=True, slots=True)
class Topics:
    group_id: str
    edge_node_id: str

    def node(self, kind: str) -> str:
        return f"{NAMESPACE}/{self.group_id}/{kind}/{self.edge_node_id}"

    @property
    def nbirth(self) -> str:
        return self.node("NBIRTH")

    @property
    def ndata(self) -> str:
        return self.node("NDATA")

    @property
    def ndeath(self) -> str:
        return self.node("NDEATH")

    @property
    def ncmd(self) -> str:
        return self.node("NCMD")

    @staticmethod
    def state(host_id: str) -> str:
        return f"{NAMESPACE}/STATE/{host_id}"


class Aliases:
    """Metric aliases: 1..n in tag declaration order (0 is never used, so a missing alias is never mistaken)."""

    def __init__(self, tags: Sequence[TagInfo]) -> None:
        self.tags = list(tags)
        self.by_name = {tag.name: index + 1 for index, tag in enumerate(self.tags)}
        self.by_alias = {index + 1: tag for index, tag in enumerate(self.tags)}

    def retype(self, tag: TagInfo) -> None:
        """A tag's datatype became known (OPC UA sources): the next birth announces it, under the same alias."""
        alias = self.by_name[tag.name]
        self.tags[alias - 1] = tag
        self.by_alias[alias] = tag


def _set_value(metric: Payload.Metric, datatype: DataType, value: Value | None) -> None:
    if value is None:
        metric.is_null = True
        return
    if datatype is DataType.BOOL:
        metric.boolean_value = bool(value)
    elif datatype is DataType.REAL:
        metric.float_value = float(value)
    else:
        # Signed values go into the unsigned field as two's complement of its width, as the specification says.
        metric.int_value = int(value) & 0xFFFFFFFF


def _add_tag(payload: Payload, aliases: Aliases, value: TagValue, *, with_name: bool) -> None:
    tag = aliases.by_alias[aliases.by_name[value.name]]
    metric = payload.metrics.add()
    if with_name:
        metric.name = tag.name
        metric.datatype = _SP_TYPE[tag.datatype]
    metric.alias = aliases.by_name[value.name]
    metric.timestamp = value.source_ms
    # Quality bad is reported as a null value: the value is not known, which every Sparkplug host understands.
    _set_value(metric, tag.datatype, value.value if value.quality is Quality.GOOD else None)


def birth(aliases: Aliases, current: Sequence[TagValue | None], bd_seq: int, *, timestamp: int | None = None) -> bytes:
    """NBIRTH with seq 0: bdSeq, the rebirth control and every tag with its name, alias, datatype and value."""
    ts = now_ms() if timestamp is None else timestamp
    payload = Payload(timestamp=ts, seq=0)
    payload.metrics.add(name=BDSEQ, datatype=SP_INT64, long_value=bd_seq, timestamp=ts)
    payload.metrics.add(name=REBIRTH, datatype=SP_BOOLEAN, boolean_value=False, timestamp=ts)
    for tag, value in zip(aliases.tags, current, strict=True):
        if value is None:
            payload.metrics.add(
                name=tag.name,
                alias=aliases.by_name[tag.name],
                datatype=_SP_TYPE[tag.datatype],
                is_null=True,
                timestamp=ts,
            )
        else:
            _add_tag(payload, aliases, value, with_name=True)
    return payload.SerializeToString()


def data(aliases: Aliases, changes: Sequence[TagValue]) -> bytes:
    """NDATA without seq (set at publish time with `with_seq`): aliases only, report by exception."""
    # The hot path of the bridge (every poll with a change): one constructor call per metric.
    payload = Payload(timestamp=now_ms())
    add = payload.metrics.add
    by_name, by_alias = aliases.by_name, aliases.by_alias
    for change in changes:
        alias = by_name[change.name]
        value = change.value
        if change.quality is not Quality.GOOD or value is None:
            add(alias=alias, timestamp=change.source_ms, is_null=True)
            continue
        datatype = by_alias[alias].datatype
        if datatype is DataType.REAL:
            add(alias=alias, timestamp=change.source_ms, float_value=float(value))
        elif datatype is DataType.BOOL:
            add(alias=alias, timestamp=change.source_ms, boolean_value=bool(value))
        else:
            add(alias=alias, timestamp=change.source_ms, int_value=int(value) & 0xFFFFFFFF)
    return payload.SerializeToString()


def death(bd_seq: int) -> bytes:
    """NDEATH, registered as the MQTT Will: carries only the bdSeq of the session it ends."""
    payload = Payload(timestamp=now_ms())
    payload.metrics.add(name=BDSEQ, datatype=SP_INT64, long_value=bd_seq)
    return payload.SerializeToString()


def with_seq(encoded: bytes, seq: int, *, historical: bool = False) -> bytes:
    """`encoded` with its sequence number set (and metrics flagged historical, for data replayed after a rebirth)."""
    if historical:
        payload = Payload.FromString(encoded)
        for metric in payload.metrics:
            metric.is_historical = True
        payload.seq = seq
        return payload.SerializeToString()
    # A serialized field appended to a message overrides/sets it (protobuf merge rules): no decode needed.
    return encoded + Payload(seq=seq).SerializeToString()


@dataclass(frozen=True, slots=True)
class Command:
    """An NCMD decoded: a rebirth request and/or writes by tag name."""

    rebirth: bool
    writes: dict[str, Value]
    unknown: list[str]


def parse_command(encoded: bytes, aliases: Aliases) -> Command:
    """Decodes an NCMD; raises ValueError on bytes that are not a Sparkplug payload."""
    try:
        payload = Payload.FromString(encoded)
    except DecodeError as exc:
        raise ValueError(f"NCMD payload is not a Sparkplug B payload: {exc}") from exc
    rebirth = False
    writes: dict[str, Value] = {}
    unknown: list[str] = []
    for metric in payload.metrics:
        name = metric.name or (aliases.by_alias[metric.alias].name if metric.alias in aliases.by_alias else "")
        which = metric.WhichOneof("value")
        if name == REBIRTH:
            rebirth = rebirth or (which == "boolean_value" and metric.boolean_value)
            continue
        if name not in aliases.by_name or which is None:
            unknown.append(name or f"alias {metric.alias}")
            continue
        tag = aliases.by_alias[aliases.by_name[name]]
        writes[name] = _command_value(tag.datatype, getattr(metric, which))
    return Command(rebirth, writes, unknown)


def _command_value(datatype: DataType, raw: Value | str | bytes) -> Value:
    if isinstance(raw, str | bytes):
        raise ValueError(f"a {datatype} cannot be written from a string")
    if datatype is DataType.BOOL:
        return bool(raw)
    if datatype is DataType.REAL:
        return float(raw)
    value = int(raw)
    if datatype in (DataType.INT, DataType.DINT):
        bits = 16 if datatype is DataType.INT else 32
        value &= (1 << 32) - 1
        if value >= 1 << 31:
            value -= 1 << 32
        if not -(1 << (bits - 1)) <= value < 1 << (bits - 1):
            raise ValueError(f"{value} does not fit a {datatype}")
    return value
