"""Plans Modbus reads: contiguous tags of one table share a request, within the protocol's per-request limits."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from shopfloor_bridge.modbus_codec import ModbusTag, Table, is_bits

MAX_REGISTERS = 125  # Modbus application protocol: function codes 3 and 4
MAX_BITS = 2000  # function codes 1 and 2


@dataclass(frozen=True, slots=True)
class ReadRequest:
    table: Table
    address: int
    count: int
    tags: tuple[ModbusTag, ...]


def plan_reads(tags: Iterable[ModbusTag]) -> list[ReadRequest]:
    """As few requests as possible without reading addresses no tag asked for (devices may reject those)."""
    requests: list[ReadRequest] = []
    for table in Table:
        limit = MAX_BITS if is_bits(table) else MAX_REGISTERS
        ordered = sorted((t for t in tags if t.table is table), key=lambda t: (t.address, t.width))
        start = end = -1
        group: list[ModbusTag] = []
        for tag in ordered:
            tag_end = tag.address + tag.width
            if group and tag.address <= end and max(end, tag_end) - start <= limit:
                group.append(tag)
                end = max(end, tag_end)
                continue
            if group:
                requests.append(ReadRequest(table, start, end - start, tuple(group)))
            start, end, group = tag.address, tag_end, [tag]
        if group:
            requests.append(ReadRequest(table, start, end - start, tuple(group)))
    return requests
