from shopfloor_bridge.modbus_codec import ModbusTag, Table
from shopfloor_bridge.modbus_plan import MAX_BITS, MAX_REGISTERS, plan_reads
from shopfloor_bridge.tags import DataType


def reg(name: str, address: int, datatype: DataType = DataType.INT) -> ModbusTag:
    return ModbusTag(name, Table.HOLDING_REGISTERS, address, datatype)


def test_contiguous_registers_share_one_request() -> None:
    plan = plan_reads([reg("a", 0), reg("b", 1, DataType.REAL), reg("c", 3)])
    assert [(r.table, r.address, r.count) for r in plan] == [(Table.HOLDING_REGISTERS, 0, 4)]
    assert [t.name for t in plan[0].tags] == ["a", "b", "c"]


def test_gap_splits_requests_so_unrequested_addresses_are_never_read() -> None:
    plan = plan_reads([reg("a", 0), reg("b", 5)])
    assert [(r.address, r.count) for r in plan] == [(0, 1), (5, 1)]


def test_register_requests_stop_at_125() -> None:
    plan = plan_reads([reg(f"r{i}", i) for i in range(300)])
    assert [(r.address, r.count) for r in plan] == [(0, MAX_REGISTERS), (125, MAX_REGISTERS), (250, 50)]


def test_a_32_bit_value_is_never_split_across_requests() -> None:
    plan = plan_reads([reg(f"r{i}", i) for i in range(124)] + [reg("wide", 124, DataType.DINT)])
    assert [(r.address, r.count) for r in plan] == [(0, 124), (124, 2)]


def test_coils_batch_up_to_2000_and_tables_are_separate() -> None:
    coils = [ModbusTag(f"c{i}", Table.COILS, i, DataType.BOOL) for i in range(2500)]
    plan = plan_reads([*coils, reg("h", 0), ModbusTag("i", Table.INPUT_REGISTERS, 0, DataType.INT)])
    assert [(r.table, r.address, r.count) for r in plan] == [
        (Table.COILS, 0, MAX_BITS),
        (Table.COILS, 2000, 500),
        (Table.HOLDING_REGISTERS, 0, 1),
        (Table.INPUT_REGISTERS, 0, 1),
    ]


def test_overlapping_tags_are_read_once() -> None:
    plan = plan_reads([reg("whole", 0, DataType.DINT), reg("low", 1)])
    assert [(r.address, r.count, len(r.tags)) for r in plan] == [(0, 2, 2)]
