"""A Sparkplug 3.0 host's view of one edge node: checks a recorded message stream against the specification.

Feed it every message the node published, in the order a subscriber received them (one connection to one broker
keeps the node's order). Each rule quotes the normative statement it checks, by its `tck-id`; a violation raises
AssertionError naming it. Payloads are decoded with the official Tahu schema (`decode`), never with the bridge's code.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tests.support.sparkplug import BOOLEAN, INT64, decode

NAMESPACE = "spBv1.0"
DATATYPES = range(1, 35)  # Sparkplug B basic, property and array datatypes (6.4.16)
DAY_MS = 86_400_000
BDSEQ = "bdSeq"
REBIRTH = "Node Control/Rebirth"


def _require(condition: object, tck_id: str, detail: str) -> None:
    if not condition:
        raise AssertionError(f"[tck-id-{tck_id}] {detail}")


@dataclass
class Session:
    """What the host knows between an NBIRTH and the next NBIRTH or NDEATH."""

    bd_seq: int
    seq: int = 0
    aliases: dict[int, str] = field(default_factory=dict)  # alias -> "<device or ''>/<metric name>"
    born: set[str] = field(default_factory=set)  # devices with a DBIRTH in this session and no DDEATH since
    data_seen: bool = False
    dbirths_in_birth_sequence: list[str] = field(default_factory=list)


@dataclass
class EdgeNodeChecker:
    group_id: str
    edge_node_id: str
    session: Session | None = None
    births: int = 0
    deaths: list[int] = field(default_factory=list)  # bdSeq of every NDEATH
    kinds: list[str] = field(default_factory=list)
    live_kinds: list[str] = field(default_factory=list)  # without data made only of historical metrics

    def feed_all(self, messages: Iterable[tuple[str, bytes]]) -> EdgeNodeChecker:
        for topic, payload in messages:
            self.feed(topic, payload)
        return self

    def feed(self, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        if len(parts) < 4 or parts[0] != NAMESPACE or parts[1] != self.group_id or parts[3] != self.edge_node_id:
            return
        kind = parts[2]
        if kind in ("NCMD", "DCMD"):
            return
        device = parts[4] if len(parts) > 4 else ""
        # tck-id-topic-structure-namespace-device-id-associated-message-types / -non-associated-message-types
        _require(
            bool(device) == kind.startswith("D"),
            "topic-structure-namespace-device-id-associated-message-types",
            f"{topic}: device messages carry a device_id, node messages none",
        )
        self.kinds.append(kind)
        message = decode(payload)
        if message.HasField("timestamp"):
            _require(
                abs(message.timestamp - time.time() * 1000) < DAY_MS,
                "payloads-timestamp-in-UTC",
                f"{kind} timestamp {message.timestamp} is not epoch milliseconds UTC of today",
            )
        if not (kind.endswith("DATA") and message.metrics and all(m.is_historical for m in message.metrics)):
            self.live_kinds.append(kind)
        getattr(self, f"_{kind.lower()}")(message, device)

    # ---- node messages -----------------------------------------------------------------------------------------

    def _nbirth(self, message: Any, _device: str) -> None:
        _require(message.HasField("seq") and message.seq == 0, "payloads-nbirth-seq", "NBIRTH seq must be 0")
        _require(message.timestamp > 0, "payloads-nbirth-timestamp", "NBIRTH needs a payload timestamp")
        metrics = {m.name: m for m in message.metrics}
        bd_seq = metrics.get(BDSEQ)
        _require(bd_seq is not None, "payloads-nbirth-bdseq", "NBIRTH needs a bdSeq metric")
        assert bd_seq is not None
        _require(
            bd_seq.datatype == INT64 and 0 <= bd_seq.long_value <= 255,
            "message-flow-edge-node-birth-publish-nbirth-payload-bdSeq",
            "bdSeq is an Int64 in 0..255",
        )
        rebirth = metrics.get(REBIRTH)
        _require(rebirth is not None, "operational-behavior-data-commands-rebirth-name", "no Node Control/Rebirth")
        assert rebirth is not None
        _require(rebirth.datatype == BOOLEAN, "operational-behavior-data-commands-rebirth-datatype", "not Boolean")
        _require(
            rebirth.WhichOneof("value") == "boolean_value" and rebirth.boolean_value is False,
            "operational-behavior-data-commands-rebirth-value",
            "Node Control/Rebirth must be false in NBIRTH",
        )
        _require(not rebirth.HasField("alias"), "operational-behavior-data-commands-rebirth-name-aliases", "has alias")
        self.session = Session(bd_seq=bd_seq.long_value)
        self.births += 1
        self._birth_metrics(message, "")

    def _ndata(self, message: Any, _device: str) -> None:
        session = self._in_session("payloads-ndata-order", "NDATA")
        self._next_seq(message, "payloads-ndata-seq-inc")
        _require(message.timestamp > 0, "payloads-ndata-timestamp", "NDATA needs a payload timestamp")
        self._data_metrics(message, "")
        session.data_seen = True

    def _ndeath(self, message: Any, _device: str) -> None:
        _require(not message.HasField("seq"), "payloads-ndeath-seq", "NDEATH carries no seq")
        names = [m.name for m in message.metrics]
        _require(names == [BDSEQ], "topics-ndeath-payload", f"NDEATH carries only bdSeq, not {names}")
        bd_seq = message.metrics[0].long_value
        self.deaths.append(bd_seq)
        if self.session is not None and self.session.bd_seq == bd_seq:
            self.session = None  # a death for an older session (a late Will) leaves the current one alone

    # ---- device messages ---------------------------------------------------------------------------------------

    def _dbirth(self, message: Any, device: str) -> None:
        session = self._in_session("message-flow-device-birth-publish-nbirth-wait", "DBIRTH")
        self._next_seq(message, "payloads-dbirth-seq-inc")
        _require(message.timestamp > 0, "payloads-dbirth-timestamp", "DBIRTH needs a payload timestamp")
        self._birth_metrics(message, device)
        session.born.add(device)
        if not session.data_seen:
            session.dbirths_in_birth_sequence.append(device)

    def _ddata(self, message: Any, device: str) -> None:
        session = self._in_session("payloads-ddata-order", "DDATA")
        _require(device in session.born, "payloads-ddata-order", f"DDATA for {device} without its DBIRTH")
        self._next_seq(message, "payloads-ddata-seq-inc")
        _require(message.timestamp > 0, "payloads-ddata-timestamp", "DDATA needs a payload timestamp")
        self._data_metrics(message, device)
        session.data_seen = True

    def _ddeath(self, message: Any, device: str) -> None:
        session = self._in_session("payloads-ddeath-seq", "DDEATH")
        self._next_seq(message, "payloads-ddeath-seq-inc")
        _require(message.timestamp > 0, "payloads-ddeath-timestamp", "DDEATH needs a payload timestamp")
        _require(device in session.born, "operational-behavior-device-ddeath", f"DDEATH for unborn {device}")
        session.born.discard(device)
        session.data_seen = True

    # ---- shared rules ------------------------------------------------------------------------------------------

    def _in_session(self, tck_id: str, kind: str) -> Session:
        _require(self.session is not None, tck_id, f"{kind} outside a session (no NBIRTH since the last NDEATH)")
        assert self.session is not None
        return self.session

    def _next_seq(self, message: Any, tck_id: str) -> None:
        session = self.session
        assert session is not None
        expected = (session.seq + 1) % 256
        _require(message.HasField("seq"), "payloads-sequence-num-always-included", "no seq")
        _require(message.seq == expected, tck_id, f"seq {message.seq}, expected {expected}")
        session.seq = message.seq

    def _birth_metrics(self, message: Any, device: str) -> None:
        session = self.session
        assert session is not None
        for metric in message.metrics:
            _require(metric.name, "payloads-alias-birth-requirement", "a birth metric without a name")
            _require(metric.HasField("datatype"), "payloads-metric-datatype-req", f"{metric.name}: no datatype")
            _require(metric.datatype in DATATYPES, "payloads-metric-datatype-value", f"{metric.name}: datatype")
            _require(metric.HasField("timestamp"), "payloads-name-birth-data-requirement", f"{metric.name}: no time")
            _require(
                metric.is_null or metric.WhichOneof("value") is not None,
                "operational-behavior-data-publish-nbirth-values",
                f"{metric.name}: neither a value nor is_null",
            )
            if metric.name in (BDSEQ, REBIRTH) and not device:
                continue
            _require(metric.HasField("alias"), "payloads-alias-birth-requirement", f"{metric.name}: no alias")
            owner = session.aliases.get(metric.alias)
            _require(
                owner in (None, f"{device}/{metric.name}"),
                "payloads-alias-uniqueness",
                f"alias {metric.alias} used by {owner} and {device}/{metric.name}",
            )
            session.aliases[metric.alias] = f"{device}/{metric.name}"

    def _data_metrics(self, message: Any, device: str) -> None:
        session = self.session
        assert session is not None
        for metric in message.metrics:
            _require(not metric.name, "payloads-alias-data-cmd-requirement", f"data metric named {metric.name!r}")
            _require(not metric.HasField("datatype"), "payloads-metric-datatype-not-req", "datatype in data")
            _require(metric.HasField("timestamp"), "payloads-name-birth-data-requirement", "a data metric without time")
            owner = session.aliases.get(metric.alias, "")
            _require(
                owner.startswith(f"{device}/"),
                "operational-behavior-data-commands-dcmd-metric-name" if device else "topics-ndata-payload",
                f"alias {metric.alias} was not born for {device or 'the node'}",
            )
