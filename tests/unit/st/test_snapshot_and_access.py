import json

import pytest

from shopfloor_st import compile_source, simulate

SOURCE = """
TYPE Valve : STRUCT Open : BOOL; Pos : REAL := 0.25; END_STRUCT; END_TYPE
TYPE Mode : (Idle, Run); END_TYPE
VAR_GLOBAL Shared : INT := 7; END_VAR
PROGRAM Main
VAR_INPUT Start : BOOL; END_VAR
VAR_OUTPUT Level : REAL := 1.5; END_VAR
VAR RETAIN Count : UDINT; END_VAR
VAR CONSTANT Max : INT := 10; END_VAR
VAR
  Name : STRING(8) := 'mixer';
  Delay : TIME := T#1s500ms;
  Arr : ARRAY[1..3] OF INT := [1, 2, 3];
  Grid : ARRAY[0..1, 0..1] OF BOOL;
  V : Valve;
  M : Mode;
  T : TON;
  Big : LWORD;
END_VAR
VAR_TEMP scratch : INT; END_VAR
IF Start THEN Count := Count + 1; END_IF;
T(IN := Start, PT := Delay);
Shared := Shared + 1;
END_PROGRAM
"""


def test_snapshot_is_json_ready_with_the_contract_shapes() -> None:
    instance = compile_source(SOURCE).instantiate()
    instance.scan(0)
    snap = instance.snapshot()
    assert json.loads(json.dumps(snap)) == snap
    assert snap == {
        "Start": False,
        "Level": 1.5,
        "Count": 0,
        "Max": 10,
        "Name": "mixer",
        "Delay": 1500,
        "Arr": [1, 2, 3],
        "Grid": [[False, False], [False, False]],
        "V": {"Open": False, "Pos": 0.25},
        "M": "Idle",
        "T": {"IN": False, "PT": 1500, "Q": False, "ET": 0},
        "Big": 0,
    }


def test_variable_info() -> None:
    program = compile_source(SOURCE, "plant.st")
    v = program.variables
    assert program.entrypoint == "Main"
    assert program.revision.startswith("sha256:")
    assert set(v) == {"Start", "Level", "Count", "Max", "Name", "Delay", "Arr", "Grid", "V", "M", "T", "Big"}
    assert (v["Start"].section, v["Start"].type_name, v["Start"].iec_type) == ("VAR_INPUT", "BOOL", "BOOL")
    assert (v["Level"].section, v["Level"].type_name) == ("VAR_OUTPUT", "REAL")
    assert v["Count"].retain and not v["Count"].constant
    assert v["Max"].constant
    assert v["Name"].type_name == "STRING(8)" and v["Name"].iec_type == "STRING"
    assert v["Arr"].type_name == "ARRAY[1..3] OF INT" and not v["Arr"].is_elementary and v["Arr"].iec_type is None
    assert v["Grid"].type_name == "ARRAY[0..1, 0..1] OF BOOL"
    assert v["V"].type_name == "Valve" and v["T"].type_name == "TON"
    assert v["M"].is_elementary and v["M"].iec_type == "INT"
    assert program.globals["Shared"].section == "VAR_GLOBAL"


def test_get_and_set_paths() -> None:
    instance = compile_source(SOURCE).instantiate()
    instance.set("Start", True)
    instance.set("v.pos", 0.75)
    instance.set("Arr[2]", 20)
    instance.set("Grid[1, 0]", True)
    instance.set("M", "Run")
    instance.set("Shared", 1)
    instance.scan(0)
    instance.scan(2_000_000_000)
    assert instance.get("Count") == 2
    assert instance.get("V.Pos") == 0.75
    assert instance.get("Arr[2]") == 20 and instance.get("Arr") == [1, 20, 3]
    assert instance.get("Grid[1,0]") is True
    assert instance.get("T.Q") is True
    assert instance.get("M") == 1
    assert instance.get("Shared") == 3


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("Count", -1, "Count: -1 is out of the range of UDINT (0..4294967295)"),
        ("Start", "yes", "Start: BOOL needs TRUE/FALSE, got 'yes'"),
        ("Level", "x", "Level: REAL needs a number, got 'x'"),
        ("M", "Stop", "M: 'Stop' is not a value of Mode (Idle, Run)"),
        ("Arr", [1], "Arr: only elementary variables can be set, not ARRAY[1..3] OF INT"),
    ],
)
def test_set_rejects_bad_values_naming_the_variable(path: str, value: object, message: str) -> None:
    instance = compile_source(SOURCE).instantiate()
    with pytest.raises(ValueError) as info:
        instance.set(path, value)
    assert str(info.value) == message


@pytest.mark.parametrize("path", ["Nope", "Arr[4]", "V.Missing", "scratch", "Start.x"])
def test_unknown_paths_raise_key_error(path: str) -> None:
    with pytest.raises(KeyError):
        compile_source(SOURCE).instantiate().get(path)


def test_real_set_rounds_to_single_precision() -> None:
    instance = compile_source(SOURCE).instantiate()
    instance.set("Level", 0.1)
    assert instance.get("Level") == 0.10000000149011612


def test_simulate_on_virtual_time_with_overrides() -> None:
    snap = simulate(
        SOURCE, "plant.st", cycles=151, cycle_time_ns=10_000_000, overrides={"Start": "TRUE", "Delay": "T#1s"}
    )
    assert snap["Count"] == 151
    assert snap["T"]["Q"] is True and snap["T"]["ET"] == 1000
    snap = simulate(
        SOURCE, "plant.st", cycles=100, cycle_time_ns=10_000_000, overrides={"Start": "TRUE", "Delay": "1000"}
    )
    assert snap["T"]["Q"] is False and snap["T"]["ET"] == 990


@pytest.mark.parametrize(
    ("path", "text", "expected"),
    [
        ("Arr[1]", "16#10", 16),
        ("Level", "2.5", 2.5),
        ("Name", "'a$Nb'", "a\nb"),
        ("Name", "plain", "plain"),
        ("M", "Mode#Run", "Run"),
    ],
)
def test_simulate_parses_overrides_per_type(path: str, text: str, expected: object) -> None:
    snap = simulate(SOURCE, cycles=0, overrides={path: text})
    head = path.split("[")[0]
    assert (snap[head][0] if "[" in path else snap[head]) == expected


def test_simulate_rejects_bad_override() -> None:
    with pytest.raises(ValueError, match=r"^Count: cannot read 'abc' as UDINT$"):
        simulate(SOURCE, cycles=1, overrides={"Count": "abc"})
    with pytest.raises(ValueError, match="no variable 'Nope'"):
        simulate(SOURCE, cycles=1, overrides={"Nope": "1"})


RETAIN_SOURCE = """
TYPE Valve : STRUCT Open : BOOL; Pos : REAL; END_STRUCT; END_TYPE
VAR_GLOBAL RETAIN Runs : UDINT; END_VAR
PROGRAM Main
VAR RETAIN total : DINT; v : Valve; hist : ARRAY[1..2, 1..2] OF INT; t : TON; level : REAL; END_VAR
VAR scratch : INT; END_VAR
total := total + 1; Runs := Runs + 1; v.Pos := 0.1; hist[2, 1] := 7; scratch := 5; level := 1.0 / 3.0;
t(IN := TRUE, PT := T#1s);
END_PROGRAM
"""


def test_retained_values_round_trip_through_json() -> None:
    program = compile_source(RETAIN_SOURCE)
    instance = program.instantiate()
    for k in range(3):
        instance.scan(k)
    checkpoint = json.loads(json.dumps(instance.retained_values()))
    assert set(checkpoint) == {"Runs", "total", "v", "hist", "t", "level"}
    restored = program.instantiate()
    assert restored.load_retained(checkpoint) == []
    assert restored.retained_values() == checkpoint
    assert restored.get("scratch") == 0 and restored.get("hist[2,1]") == 7 and restored.get("Runs") == 3


def test_load_retained_skips_what_no_longer_fits() -> None:
    program = compile_source(RETAIN_SOURCE)
    problems = program.instantiate().load_retained(
        {"total": "x", "gone": 1, "scratch": 3, "hist": [[1, 2]], "v": {"Open": True, "Nope": 1}, "level": 2.5}
    )
    assert problems == [
        "total: DINT needs an integer, got 'x'",
        "gone: no variable 'gone'",
        "scratch: not a retained variable",
        "hist: expected a list of 2 values",
        "v: Valve has no member 'Nope'",
    ]


def test_resolved_paths_read_and_write_fast() -> None:
    instance = compile_source(SOURCE).instantiate()
    where = instance.path("arr[3]")
    assert where.canonical == "Arr[3]" and where.is_elementary and where.iec_type == "INT"
    assert instance.path("V").iec_type is None and instance.path("V.Pos").iec_type == "REAL"
    instance.write(where, 30)
    assert instance.read(where) == 30 and instance.get("Arr") == [1, 2, 30]
    with pytest.raises(KeyError):
        instance.path("Arr[x]")
