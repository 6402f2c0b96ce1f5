import pytest

from shopfloor_bridge.modbus_codec import ModbusTag, Table
from shopfloor_bridge.tags import DataType


def tag(datatype: DataType, **kw: object) -> ModbusTag:
    return ModbusTag("t", Table.HOLDING_REGISTERS, 0, datatype, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("datatype", "words", "value"),
    [
        (DataType.INT, [0xFFFF], -1),
        (DataType.UINT, [0xFFFF], 65535),
        (DataType.DINT, [0xFFFF, 0xFFFE], -2),
        (DataType.UDINT, [0x0001, 0x0000], 65536),
        (DataType.REAL, [0x3FC0, 0x0000], 1.5),
    ],
)
def test_decodes_high_word_first(datatype: DataType, words: list[int], value: float) -> None:
    assert tag(datatype).decode(words) == value
    assert tag(datatype).encode(value) == words


def test_little_endian_word_order_swaps_registers() -> None:
    assert tag(DataType.REAL, little_endian_words=True).decode([0x0000, 0x3FC0]) == 1.5
    assert tag(DataType.UDINT, little_endian_words=True).encode(65536) == [0x0000, 0x0001]


def test_scale_and_offset_apply_both_ways() -> None:
    scaled = tag(DataType.INT, scale=0.1, offset=-20.0)
    assert scaled.decode([250]) == pytest.approx(5.0)
    assert scaled.encode(5.0) == [250]
    assert scaled.reported_type is DataType.REAL


def test_value_that_does_not_fit_names_the_tag() -> None:
    with pytest.raises(ValueError, match="tag t: 70000 does not fit a INT"):
        tag(DataType.INT).encode(70000)


def test_bit_tables_hold_only_bools() -> None:
    with pytest.raises(ValueError, match="must be BOOL"):
        ModbusTag("b", Table.COILS, 0, DataType.INT)
    coil = ModbusTag("b", Table.COILS, 3, DataType.BOOL)
    assert coil.decode([True]) is True
    assert coil.encode(True) is True
    with pytest.raises(ValueError, match="not a BOOL"):
        coil.encode(5)
