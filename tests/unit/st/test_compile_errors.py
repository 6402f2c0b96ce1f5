from shopfloor_st import CompileError, check, compile_source


def test_syntax_errors_with_positions(errors) -> None:
    source = "PROGRAM Main\nVAR x : INT; END_VAR\nx := ;\nx := 1\nEND_PROGRAM"
    assert errors(source) == [
        "bad.st:3:5: syntax error: expected an expression",
        "bad.st:4:7: syntax error: missing ';'",
    ]


def test_missing_end_if(errors) -> None:
    source = "PROGRAM Main\nVAR x : INT; END_VAR\nIF x > 1 THEN\n  x := 1;\nEND_PROGRAM"
    assert errors(source) == ["bad.st:4:10: syntax error: missing 'END_IF'"]


def test_all_semantic_errors_are_collected(errors) -> None:
    source = """PROGRAM Main
VAR
  x : INT;
  x : REAL;
  k : INT := 1;
  u : Unknown;
  b : BOOL;
END_VAR
VAR CONSTANT c : INT := 5; END_VAR
y := 1;
c := 2;
b := x;
x := b + 1;
x := MAX(1);
END_PROGRAM"""
    assert errors(source) == [
        "bad.st:4:3: duplicate declaration of 'x'",
        "bad.st:6:7: unknown type 'Unknown'",
        "bad.st:10:1: undeclared name 'y'",
        "bad.st:11:1: cannot assign to constant 'c'",
        "bad.st:12:6: type mismatch: cannot assign INT to BOOL",
        "bad.st:13:6: operator + needs numbers, not BOOL and ANY_INT",
        "bad.st:14:6: MAX expects at least 2 arguments, got 1",
    ]


def test_error_columns_count_characters_not_bytes(errors) -> None:
    source = "PROGRAM Main\nVAR s : STRING; END_VAR\ns := 'äöü'; q := 1;\nEND_PROGRAM"
    assert errors(source) == ["bad.st:3:13: undeclared name 'q'"]


def test_entrypoint_selection() -> None:
    source = "PROGRAM A\nEND_PROGRAM\nPROGRAM B\nEND_PROGRAM\n"
    try:
        compile_source(source, "two.st")
    except CompileError as exc:
        assert [str(d) for d in exc.diagnostics] == ["two.st:1:1: several PROGRAMs (A, B); choose an entrypoint"]
    else:
        raise AssertionError("expected a CompileError")
    assert compile_source(source, "two.st", entrypoint="b").entrypoint == "B"


def test_no_program() -> None:
    assert [str(d) for d in check("FUNCTION F : INT\nF := 1;\nEND_FUNCTION", "f.st")] == [
        "f.st:1:1: no PROGRAM in the source"
    ]


def test_check_returns_nothing_for_a_good_program() -> None:
    assert check("PROGRAM Main\nVAR x : INT; END_VAR\nx := x + 1;\nEND_PROGRAM") == []


def test_unsupported_constructs_are_named(errors) -> None:
    source = "PROGRAM Main\nVAR p : POINTER TO INT; END_VAR\nEND_PROGRAM"
    assert errors(source) == ["bad.st:2:9: type 'POINTER TO INT' is not supported"]


def test_str_of_compile_error_lists_every_diagnostic() -> None:
    try:
        compile_source("PROGRAM Main\na := 1;\nb := 2;\nEND_PROGRAM", "m.st")
    except CompileError as exc:
        assert str(exc) == "m.st:2:1: undeclared name 'a'\nm.st:3:1: undeclared name 'b'"


def test_unused_local_of_a_function_block_is_a_warning() -> None:
    source = "FUNCTION_BLOCK F\nVAR spare : INT; used : INT; END_VAR\nused := 1;\nEND_FUNCTION_BLOCK\n"
    source += "PROGRAM Main\nEND_PROGRAM"
    program = compile_source(source, "w.st")
    assert [str(w) for w in program.warnings] == ["w.st:2:5: 'spare' is declared but never used"]
    assert program.warnings[0].severity == "warning"
    assert [str(d) for d in check(source, "w.st")] == ["w.st:2:5: 'spare' is declared but never used"]


def test_assigning_a_program_input(errors) -> None:
    assert errors("PROGRAM Main\nVAR_INPUT i : INT; END_VAR\ni := 1;\nEND_PROGRAM") == [
        "bad.st:3:1: cannot assign to input 'i'"
    ]


def test_deep_expressions_are_refused_with_a_position(errors) -> None:
    deep = " + ".join(["a"] * 500)
    source = f"PROGRAM Main\nVAR a : DINT; x : DINT; END_VAR\nx := {deep};\nEND_PROGRAM"
    assert errors(source) == ["bad.st:3:6: expression nested more than 60 levels deep; split it up"]


def test_long_but_shallow_programs_compile() -> None:
    sums = "\n".join(f"x := x + {i};" for i in range(3000))
    compile_source(f"PROGRAM Main\nVAR x : DINT; END_VAR\n{sums}\nEND_PROGRAM")
    nested = "(" * 40 + "x" + " + 1)" * 40
    compile_source(
        f"PROGRAM Main\nVAR x : DINT; r : REAL; END_VAR\nx := {nested};\nr := {nested.replace('x', 'r')};\nEND_PROGRAM"
    )
