"""Sparkplug B payloads and topics for one edge node and its devices: births, data, deaths and the commands it
understands."""

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

    def device(self, kind: str, device_id: str) -> str:
        return f"{NAMESPACE}/{self.group_id}/{kind}/{self.edge_node_id}/{device_id}"

    @staticmethod
    def state(host_id: str) -> str:
        return f"{NAMESPACE}/STATE/{host_id}"


def message_kind(topic: str) -> str:
    """NBIRTH, DDATA, ... for a Sparkplug topic; "" for any other."""
    parts = topic.split("/", 3)
    return parts[2] if len(parts) > 2 and parts[0] == NAMESPACE else ""


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


def _add_tag(payload: Payload, aliases: Aliases, value: TagValue, *, with_name: bool, strip: int = 0) -> None:
    tag = aliases.by_alias[aliases.by_name[value.name]]
    metric = payload.metrics.add()
    if with_name:
        metric.name = tag.name[strip:]
        metric.datatype = _SP_TYPE[tag.datatype]
    metric.alias = aliases.by_name[value.name]
    metric.timestamp = value.source_ms
    # Quality bad is reported as a null value: the value is not known, which every Sparkplug host understands.
    _set_value(metric, tag.datatype, value.value if value.quality is Quality.GOOD else None)


def birth(aliases: Aliases, current: Sequence[TagValue | None], bd_seq: int, *, timestamp: int | None = None) -> bytes:
    """NBIRTH with seq 0: bdSeq, the rebirth control and every tag with its name, alias, datatype and value.

    With devices, `aliases` has no tags and `current` is empty: the node itself has only bdSeq and the rebirth control.
    """
    ts = now_ms() if timestamp is None else timestamp
    payload = Payload(timestamp=ts, seq=0)
    payload.metrics.add(name=BDSEQ, datatype=SP_INT64, long_value=bd_seq, timestamp=ts)
    payload.metrics.add(name=REBIRTH, datatype=SP_BOOLEAN, boolean_value=False, timestamp=ts)
    _add_tags(payload, aliases, aliases.tags, current, ts, strip=0)
    return payload.SerializeToString()


def device_birth(aliases: Aliases, device: str, tags: Sequence[TagInfo], current: Sequence[TagValue | None]) -> bytes:
    """DBIRTH without seq (set when published): every tag of the device with its name (without the `<device>/`
    prefix), its edge-node-wide alias, datatype and current value (null while bad or never read)."""
    ts = now_ms()
    payload = Payload(timestamp=ts)
    _add_tags(payload, aliases, tags, current, ts, strip=len(device) + 1)
    return payload.SerializeToString()


def device_death() -> bytes:
    """DDEATH without seq (set when published): a timestamp and nothing else."""
    return Payload(timestamp=now_ms()).SerializeToString()


def birth_as_history(encoded: bytes) -> bytes:
    """A DBIRTH buffered before the current birth sequence, as DDATA: its values by alias, flagged historical."""
    birth = Payload.FromString(encoded)
    data = Payload(timestamp=birth.timestamp)
    for metric in birth.metrics:
        copy = data.metrics.add(alias=metric.alias, timestamp=metric.timestamp, is_historical=True)
        which = metric.WhichOneof("value")
        if which is None or metric.is_null:
            copy.is_null = True
        else:
            setattr(copy, which, getattr(metric, which))
    return data.SerializeToString()


def death_as_history(encoded: bytes, aliases: Aliases, names: Sequence[str]) -> bytes:
    """A DDEATH buffered before the current birth sequence, as DDATA: every tag of the device null (its value was
    unknown from then on) at the time of the death, flagged historical."""
    death = Payload.FromString(encoded)
    data = Payload(timestamp=death.timestamp)
    for name in names:
        data.metrics.add(alias=aliases.by_name[name], timestamp=death.timestamp, is_null=True, is_historical=True)
    return data.SerializeToString()


def _add_tags(
    payload: Payload,
    aliases: Aliases,
    tags: Sequence[TagInfo],
    current: Sequence[TagValue | None],
    ts: int,
    *,
    strip: int,
) -> None:
    for tag, value in zip(tags, current, strict=True):
        if value is None:
            payload.metrics.add(
                name=tag.name[strip:],
                alias=aliases.by_name[tag.name],
                datatype=_SP_TYPE[aliases.by_alias[aliases.by_name[tag.name]].datatype],
                is_null=True,
                timestamp=ts,
            )
        else:
            _add_tag(payload, aliases, value, with_name=True, strip=strip)


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


def parse_command(encoded: bytes, aliases: Aliases, *, device: str | None = None, tags: bool = True) -> Command:
    """Decodes an NCMD (`device` None) or a DCMD for `device`; raises ValueError on bytes that are not a Sparkplug
    payload. A DCMD names metrics as its DBIRTH did (without the `<device>/` prefix) or by alias; an NCMD writes tags
    only when they are node metrics (`tags`), and only an NCMD requests a rebirth."""
    try:
        payload = Payload.FromString(encoded)
    except DecodeError as exc:
        raise ValueError(f"{'DCMD' if device else 'NCMD'} payload is not a Sparkplug B payload: {exc}") from exc
    prefix = f"{device}/" if device else ""
    rebirth = False
    writes: dict[str, Value] = {}
    unknown: list[str] = []
    for metric in payload.metrics:
        if metric.name:
            name = metric.name if device is None and metric.name == REBIRTH else prefix + metric.name
        else:
            name = aliases.by_alias[metric.alias].name if metric.alias in aliases.by_alias else ""
        which = metric.WhichOneof("value")
        if name == REBIRTH:
            rebirth = rebirth or (which == "boolean_value" and metric.boolean_value)
            continue
        if name not in aliases.by_name or which is None or not tags or not name.startswith(prefix):
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
