import pytest

from shopfloor_st import IncompatibleChange, compile_source

OLD = """
TYPE Valve : STRUCT Open : BOOL; Pos : REAL; END_STRUCT; END_TYPE
FUNCTION_BLOCK Counter
VAR_INPUT step : INT := 1; END_VAR
VAR_OUTPUT n : DINT; END_VAR
n := n + step;
END_FUNCTION_BLOCK
PROGRAM Main
VAR RETAIN total : DINT; END_VAR
VAR
  level : REAL;
  c : Counter;
  t : TON;
  v : Valve;
  arr : ARRAY[1..3] OF INT;
  gone : INT;
  retyped : INT;
END_VAR
total := total + 1; level := level + 0.5; c(); t(IN := TRUE, PT := T#1s);
v.Pos := 0.75; arr[2] := 5; gone := 9; retyped := 4;
END_PROGRAM
"""


def running(source: str, scans: int = 3):  # type: ignore[no-untyped-def]
    program = compile_source(source)
    instance = program.instantiate()
    for k in range(scans):
        instance.scan(k * 100_000_000)
    return program, instance


def test_same_names_and_types_keep_values() -> None:
    old_program, old = running(OLD)
    new_source = OLD.replace("retyped : INT;", "retyped : DINT;").replace("gone : INT;", "fresh : INT := 1;")
    new_source = new_source.replace("gone := 9;", "fresh := fresh;")
    new_program = compile_source(new_source)
    new = new_program.migrate_from(old, old_program)
    snap = new.snapshot()
    assert snap["total"] == 3 and snap["level"] == 1.5
    assert snap["c"]["n"] == 3 and snap["arr"] == [0, 5, 0] and snap["v"]["Pos"] == 0.75
    assert snap["retyped"] == 0  # type changed: starts from its initial value
    assert snap["fresh"] == 1
    # the timer keeps running on the old start time
    new.scan(1_000_000_000)
    assert new.get("t.Q") is True
    # the old instance is untouched
    assert old.get("total") == 3


def test_fb_instance_keeps_matching_members_when_its_type_changes() -> None:
    old_program, old = running(OLD)
    new_source = OLD.replace("VAR_OUTPUT n : DINT; END_VAR", "VAR_OUTPUT n : DINT; extra : BOOL; END_VAR")
    new = compile_source(new_source).migrate_from(old, old_program)
    assert new.get("c.n") == 3 and new.get("c.extra") is False


def test_array_of_another_shape_restarts() -> None:
    old_program, old = running(OLD)
    new = compile_source(OLD.replace("ARRAY[1..3] OF INT", "ARRAY[1..4] OF INT")).migrate_from(old, old_program)
    assert new.get("arr") == [0, 0, 0, 0]  # another shape: starts from its initial value


def test_losing_a_retained_variable_is_refused() -> None:
    old_program, old = running(OLD)
    new_source = OLD.replace("VAR RETAIN total : DINT; END_VAR", "").replace("total := total + 1;", "")
    with pytest.raises(IncompatibleChange, match="retained variable 'total' would be lost"):
        compile_source(new_source).migrate_from(old, old_program)


def test_retyping_a_retained_variable_is_refused() -> None:
    old_program, old = running(OLD)
    with pytest.raises(IncompatibleChange, match="retained variable 'total' would change type from DINT to LINT"):
        compile_source(OLD.replace("total : DINT", "total : LINT")).migrate_from(old, old_program)


def test_retained_struct_layout_change_is_refused() -> None:
    source = OLD.replace("VAR RETAIN total : DINT; END_VAR", "VAR RETAIN total : DINT; rv : Valve; END_VAR")
    old_program, old = running(source)
    changed = source.replace("Pos : REAL;", "Pos : LREAL;")
    with pytest.raises(IncompatibleChange, match="'rv'"):
        compile_source(changed).migrate_from(old, old_program)


def test_array_of_structures_keeps_matching_fields_when_the_structure_grows() -> None:
    source = """
TYPE Slot : STRUCT id : INT; END_STRUCT; END_TYPE
PROGRAM Main
VAR slots : ARRAY[1..2, 1..2] OF Slot; END_VAR
slots[2, 1].id := 21;
END_PROGRAM
"""
    old_program, old = running(source, 1)
    grown = source.replace("id : INT;", "id : INT; weight : REAL := 1.5;")
    new = compile_source(grown).migrate_from(old, old_program)
    assert new.get("slots[2, 1].id") == 21 and new.get("slots[2, 1].weight") == 1.5


def test_migration_carries_globals() -> None:
    source = "VAR_GLOBAL RETAIN g : INT; END_VAR\nPROGRAM Main\ng := g + 1;\nEND_PROGRAM"
    old_program, old = running(source, 4)
    new = compile_source(source + "\n").migrate_from(old, old_program)
    assert new.get("g") == 4
    with pytest.raises(IncompatibleChange, match="retained variable 'g' would change type from INT to DINT"):
        compile_source(source.replace("g : INT", "g : DINT")).migrate_from(old, old_program)
