"""Modbus register and bit encoding of the bridge's tag types: word order, scale and offset."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from shopfloor_api.virtualplc import ModbusTable as Table
from shopfloor_bridge.tags import DataType, Value


def is_bits(table: Table) -> bool:
    """Coils and discrete inputs hold bits; the register tables hold 16-bit words."""
    return table in (Table.COILS, Table.DISCRETE_INPUTS)


def is_writable(table: Table) -> bool:
    return table in (Table.COILS, Table.HOLDING_REGISTERS)


_REGISTERS = {
    DataType.BOOL: 1,
    DataType.INT: 1,
    DataType.UINT: 1,
    DataType.DINT: 2,
    DataType.UDINT: 2,
    DataType.REAL: 2,
}
# Big-endian bytes of the registers, high word first (Modbus' own byte order; word order handled separately).
_STRUCT = {
    DataType.INT: struct.Struct(">h"),
    DataType.UINT: struct.Struct(">H"),
    DataType.DINT: struct.Struct(">i"),
    DataType.UDINT: struct.Struct(">I"),
    DataType.REAL: struct.Struct(">f"),
}


@dataclass(frozen=True, slots=True)
class ModbusTag:
    name: str
    table: Table
    address: int
    datatype: DataType
    little_endian_words: bool = False
    scale: float | None = None
    offset: float | None = None

    def __post_init__(self) -> None:
        if is_bits(self.table) and self.datatype is not DataType.BOOL:
            raise ValueError(f"tag {self.name}: {self.table} hold bits, so the type must be BOOL, not {self.datatype}")
        if self.address < 0 or self.address + self.width - 1 > 0xFFFF:
            raise ValueError(f"tag {self.name}: address {self.address} is outside 0..65535")

    @property
    def width(self) -> int:
        """Number of coils/inputs (bits) or registers the tag occupies."""
        return 1 if is_bits(self.table) else _REGISTERS[self.datatype]

    @property
    def scaled(self) -> bool:
        return self.scale is not None or self.offset is not None

    @property
    def reported_type(self) -> DataType:
        """Scaled integers are reported as REAL, since scale and offset make them fractional."""
        return DataType.REAL if self.scaled and self.datatype is not DataType.BOOL else self.datatype

    def decode(self, words: list[int] | list[bool]) -> Value:
        """The engineering value of the tag from exactly `width` registers or bits."""
        if is_bits(self.table):
            return bool(words[0])
        if self.datatype is DataType.BOOL:
            return bool(words[0])
        return self.decode_from(struct.pack(f">{len(words)}H", *words), 0)

    def decode_from(self, registers: bytes, index: int) -> Value:
        """The value from big-endian register bytes (a whole read request), the tag starting at register `index`."""
        if self.datatype is DataType.BOOL:
            return registers[2 * index] != 0 or registers[2 * index + 1] != 0
        start = 2 * index
        if self.little_endian_words and self.width == 2:
            registers = registers[start + 2 : start + 4] + registers[start : start + 2]
            start = 0
        raw: int | float = _STRUCT[self.datatype].unpack_from(registers, start)[0]
        if not self.scaled:
            return raw
        return float(raw) * (1.0 if self.scale is None else self.scale) + (self.offset or 0.0)

    def encode(self, value: Value) -> list[int] | bool:
        """Registers (or one bit) that make the device hold `value`; raises ValueError when it does not fit."""
        if is_bits(self.table) or self.datatype is DataType.BOOL:
            if not isinstance(value, bool | int) or value not in (0, 1):
                raise ValueError(f"tag {self.name}: {value!r} is not a BOOL")
            return bool(value) if is_bits(self.table) else [int(value)]
        raw: float = float(value)
        if self.scaled:
            raw = (raw - (self.offset or 0.0)) / (1.0 if self.scale is None else self.scale)
        try:
            packed = _STRUCT[self.datatype].pack(raw if self.datatype is DataType.REAL else round(raw))
        except (struct.error, OverflowError) as exc:
            raise ValueError(f"tag {self.name}: {value!r} does not fit a {self.datatype}") from exc
        words = list(struct.unpack(f">{len(packed) // 2}H", packed))
        return words[::-1] if self.little_endian_words else words
