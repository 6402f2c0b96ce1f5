from __future__ import annotations

import math

import pytest

from shopfloor_vplc.modbus_codec import AddressMap, Binding, CodecError, Table, WordOrder, decode, encode


@pytest.mark.parametrize(
    ("type_name", "value", "words"),
    [
        ("BOOL", True, [1]),
        ("INT", -2, [0xFFFE]),
        ("SINT", -5, [0xFFFB]),
        ("UINT", 65535, [0xFFFF]),
        ("DINT", -2, [0xFFFF, 0xFFFE]),
        ("UDINT", 0x12345678, [0x1234, 0x5678]),
        ("REAL", 1.5, [0x3FC0, 0x0000]),
        ("LINT", 1, [0, 0, 0, 1]),
    ],
)
def test_big_endian_words_round_trip(type_name: str, value: object, words: list[int]) -> None:
    assert encode(type_name, value) == words
    assert decode(type_name, words) == value


def test_little_endian_puts_the_low_word_first() -> None:
    assert encode("UDINT", 0x12345678, WordOrder.LITTLE_ENDIAN) == [0x5678, 0x1234]
    assert decode("UDINT", [0x5678, 0x1234], WordOrder.LITTLE_ENDIAN) == 0x12345678


def test_real_is_single_precision() -> None:
    assert math.isclose(decode("REAL", encode("REAL", 0.1)), 0.1, rel_tol=1e-7)
    assert decode("REAL", encode("REAL", 0.1)) != 0.1


def test_out_of_range_value_is_refused() -> None:
    with pytest.raises(CodecError, match="40000 does not fit INT"):
        encode("INT", 40000)


def test_address_map_spans_every_register_of_a_value() -> None:
    level = Binding("Level", Table.HOLDING_REGISTERS, 10, "REAL")
    amap = AddressMap([level, Binding("Count", Table.HOLDING_REGISTERS, 12, "INT")])
    assert amap.cell(Table.HOLDING_REGISTERS, 11) == (level, 1)
    assert amap.cell(Table.HOLDING_REGISTERS, 13) is None
    assert amap.cell(Table.INPUT_REGISTERS, 10) is None


def test_overlaps_name_both_variables() -> None:
    with pytest.raises(CodecError, match="Count overlaps Level at holdingRegisters 11"):
        level, count = (
            Binding("Level", Table.HOLDING_REGISTERS, 10, "REAL"),
            Binding("Count", Table.HOLDING_REGISTERS, 11, "INT"),
        )
        AddressMap([level, count])


def test_bit_tables_take_bool_only() -> None:
    with pytest.raises(CodecError, match="coils hold BOOL variables only, not INT"):
        AddressMap([Binding("Speed", Table.COILS, 0, "INT")])


def test_strings_cannot_be_mapped() -> None:
    with pytest.raises(CodecError, match="type STRING cannot be mapped to holdingRegisters"):
        AddressMap([Binding("Name", Table.HOLDING_REGISTERS, 0, "STRING")])
