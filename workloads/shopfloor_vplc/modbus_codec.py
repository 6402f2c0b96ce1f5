"""Modbus encoding of IEC variables (pure): which tables a type may live in, and its register words.

BOOL is a coil or discrete input (or one register holding 0/1); 8/16-bit types take one register; 32-bit types and
REAL take two; 64-bit types and LREAL four. Multi-register values are high word first unless the word order is
little-endian. Signed types are two's complement.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from shopfloor_api.virtualplc import ModbusTable as Table
from shopfloor_api.virtualplc import WordOrder

# The API's enums are the tables and word orders; the codec adds which tables hold bits.
BIT_TABLES = frozenset({Table.COILS, Table.DISCRETE_INPUTS})


# type name -> (struct format of the whole value, big-endian)
_FORMATS: dict[str, str] = {
    "BOOL": ">H",
    "SINT": ">h",
    "INT": ">h",
    "USINT": ">H",
    "UINT": ">H",
    "BYTE": ">H",
    "WORD": ">H",
    "DINT": ">i",
    "UDINT": ">I",
    "DWORD": ">I",
    "REAL": ">f",
    "LINT": ">q",
    "ULINT": ">Q",
    "LWORD": ">Q",
    "LREAL": ">d",
}


class CodecError(ValueError):
    pass


def check_binding(type_name: str, table: Table) -> None:
    """Raise CodecError when a variable of `type_name` cannot live in `table`."""
    upper = type_name.upper()
    if table in BIT_TABLES:
        if upper != "BOOL":
            raise CodecError(f"{table.value} hold BOOL variables only, not {type_name}")
    elif upper not in _FORMATS:
        raise CodecError(f"type {type_name} cannot be mapped to {table.value}")


def register_count(type_name: str) -> int:
    return struct.calcsize(_FORMATS[type_name.upper()]) // 2


def encode(type_name: str, value: Any, word_order: WordOrder = WordOrder.BIG_ENDIAN) -> list[int]:
    upper = type_name.upper()
    fmt = _FORMATS[upper]
    if upper == "BOOL":
        value = 1 if value else 0
    elif upper in ("SINT", "USINT", "BYTE"):
        value = int(value)  # 8-bit values sit in the low byte; SINT sign-extends to 16 bits
    try:
        raw = struct.pack(fmt, value)
    except struct.error:
        raise CodecError(f"{value!r} does not fit {type_name}") from None
    words = [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]
    return words[::-1] if word_order is WordOrder.LITTLE_ENDIAN else words


def decode(type_name: str, words: list[int], word_order: WordOrder = WordOrder.BIG_ENDIAN) -> Any:
    upper = type_name.upper()
    ordered = words[::-1] if word_order is WordOrder.LITTLE_ENDIAN else words
    raw = b"".join(w.to_bytes(2, "big") for w in ordered)
    (value,) = struct.unpack(_FORMATS[upper], raw)
    if upper == "BOOL":
        return value != 0
    if upper == "SINT":
        return _wrap_signed(value, 8)
    if upper in ("USINT", "BYTE"):
        return value & 0xFF
    return value


def _wrap_signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >= 1 << (bits - 1) else value


@dataclass(frozen=True)
class Binding:
    """One variable at one Modbus address (its first register for multi-register types)."""

    variable: str
    table: Table
    address: int
    type_name: str
    word_order: WordOrder = WordOrder.BIG_ENDIAN

    @property
    def is_bits(self) -> bool:
        return self.table in BIT_TABLES

    @property
    def width(self) -> int:
        return 1 if self.is_bits else register_count(self.type_name)

    def encode(self, value: Any) -> list[int]:
        if self.is_bits:
            return [1 if value else 0]
        return encode(self.type_name, value, self.word_order)

    def decode(self, words: list[int]) -> Any:
        if self.is_bits:
            return bool(words[0])
        return decode(self.type_name, words, self.word_order)


class AddressMap:
    """Bindings indexed by (table, address) of every word they occupy; refuses overlaps, naming both variables."""

    def __init__(self, bindings: list[Binding]) -> None:
        self.bindings = bindings
        self._cells: dict[tuple[Table, int], tuple[Binding, int]] = {}
        for binding in bindings:
            check_binding(binding.type_name, binding.table)
            for offset in range(binding.width):
                key = (binding.table, binding.address + offset)
                if key[1] > 0xFFFF:
                    raise CodecError(f"{binding.variable}: address {key[1]} beyond 65535")
                if key in self._cells:
                    other = self._cells[key][0].variable
                    raise CodecError(f"{binding.variable} overlaps {other} at {binding.table.value} {key[1]}")
                self._cells[key] = (binding, offset)

    def cell(self, table: Table, address: int) -> tuple[Binding, int] | None:
        return self._cells.get((table, address))
