PRELUDE = """
TYPE
  Mode : (Idle, Filling, Draining := 5, Fault);
  Valve : STRUCT
    Open : BOOL;
    Position : REAL := 0.5;
  END_STRUCT;
  Tank : STRUCT
    Level : REAL := 1.5;
    Inlet : Valve;
    History : ARRAY[1..3] OF INT := [3(7)];
    State : Mode := Filling;
  END_STRUCT;
  Percent : INT;
  Small : INT(0..100);
END_TYPE
"""


def test_struct_defaults_and_nesting(run) -> None:
    snap = run("t : Tank;", "", prelude=PRELUDE)
    assert snap["t"] == {
        "Level": 1.5,
        "Inlet": {"Open": False, "Position": 0.5},
        "History": [7, 7, 7],
        "State": "Filling",
    }


def test_struct_member_access_and_initialiser(run) -> None:
    decls = "t : Tank := (Level := 2.0, Inlet := (Open := TRUE)); l : REAL; o : BOOL;"
    body = "t.History[2] := 1; t.Inlet.Position := t.Level * 2.0; l := t.Inlet.Position; o := t.Inlet.Open;"
    snap = run(decls, body, prelude=PRELUDE)
    assert snap["l"] == 4.0 and snap["o"] is True
    assert snap["t"]["History"] == [7, 1, 7]


def test_struct_assignment_copies(run) -> None:
    snap = run("a : Valve; b : Valve;", "a.Open := TRUE; b := a; b.Position := 0.0;", prelude=PRELUDE)
    assert snap["a"] == {"Open": True, "Position": 0.5}
    assert snap["b"] == {"Open": True, "Position": 0.0}


def test_enum_values_and_comparison(run) -> None:
    decls = "m : Mode; n : Mode := Mode#Fault; isIdle : BOOL; v : INT;"
    body = "isIdle := m = Idle; m := Draining; v := Mode_TO_INT(n);"
    snap = run(decls, body.replace("Mode_TO_INT(n)", "TO_INT(n)"), prelude=PRELUDE)
    assert snap["m"] == "Draining" and snap["n"] == "Fault" and snap["isIdle"] is True
    assert snap["v"] == 6  # Fault follows Draining := 5


def test_alias_and_subrange_types(run) -> None:
    snap = run("p : Percent := 5; s : Small := 50;", "p := p + s;", prelude=PRELUDE)
    assert snap["p"] == 55


def test_enum_type_mismatch(errors) -> None:
    source = PRELUDE + "PROGRAM Main\nVAR m : Mode; i : INT; END_VAR\nm := i;\nEND_PROGRAM"
    assert errors(source) == ["bad.st:19:6: type mismatch: cannot assign INT to Mode"]


def test_unknown_member(errors) -> None:
    source = PRELUDE + "PROGRAM Main\nVAR t : Tank; END_VAR\nt.Volume := 1.0;\nEND_PROGRAM"
    assert errors(source) == ["bad.st:19:1: Tank has no member 'Volume'"]


def test_array_alias_type(run) -> None:
    prelude = "TYPE Row : ARRAY[1..3] OF INT; END_TYPE\nTYPE Pair : STRUCT a : Row; END_STRUCT; END_TYPE"
    snap = run("r : Row := [1, 2, 3]; p : Pair;", "p.a := r; p.a[1] := 9;", prelude=prelude)
    assert snap == {"r": [1, 2, 3], "p": {"a": [9, 2, 3]}}


def test_duplicate_type_and_enum_value(errors) -> None:
    source = "TYPE A : (X, Y, X); END_TYPE\nTYPE A : INT; END_TYPE\nPROGRAM Main\nEND_PROGRAM"
    assert errors(source) == ["bad.st:1:17: duplicate value 'X' in A", "bad.st:2:6: duplicate declaration of type 'A'"]


def test_subrange_starts_at_its_low_limit_and_is_checked_on_assignment() -> None:
    import pytest

    from shopfloor_st import RuntimeFault, compile_source

    source = "TYPE Pct : INT(0..100); END_TYPE\nPROGRAM Main\nVAR p : Pct; q : INT(10..20); n : INT; END_VAR\n"
    source += "q := q + 1;\nn := n + 30;\np := n * 2;\nEND_PROGRAM"
    program = compile_source(source, "s.st")
    assert program.variables["p"].type_name == "INT(0..100)" and program.variables["p"].iec_type == "INT"
    instance = program.instantiate()
    assert instance.get("q") == 10
    instance.scan(0)
    assert (instance.get("q"), instance.get("p")) == (11, 60)
    with pytest.raises(RuntimeFault) as info:
        instance.scan(1)
    assert (info.value.message, info.value.line, info.value.col) == ("value 120 out of the subrange 0..100", 6, 6)
    with pytest.raises(ValueError, match=r"^q: 21 is out of the range of INT\(10..20\) \(10..20\)$"):
        instance.set("q", 21)


def test_subrange_must_fit_its_base(errors) -> None:
    assert errors("TYPE T : SINT(0..300); END_TYPE\nPROGRAM Main\nEND_PROGRAM") == [
        "bad.st:1:15: subrange 0..300 does not fit SINT"
    ]


def test_type_level_initial_value_is_refused_not_ignored(errors) -> None:
    assert errors("TYPE Level : REAL := 1.5; END_TYPE\nPROGRAM Main\nEND_PROGRAM") == [
        "bad.st:1:22: initial values in TYPE declarations are not supported; initialise the variable"
    ]
