import pytest


@pytest.mark.parametrize(
    ("decl", "expr", "expected"),
    [
        ("INT", "DINT_TO_INT(70000)", 70000 - 65536),
        ("SINT", "INT_TO_SINT(-129)", 127),
        ("USINT", "INT_TO_USINT(-1)", 255),
        ("UINT", "INT_TO_UINT(-1)", 65535),
        ("INT", "UINT_TO_INT(65535)", -1),
        ("INT", "REAL_TO_INT(2.5)", 3),  # rounds half away from zero
        ("INT", "REAL_TO_INT(-2.5)", -3),
        ("INT", "REAL_TO_INT(1.4)", 1),
        ("DINT", "LREAL_TO_DINT(-1.6)", -2),
        ("DINT", "TRUNC(-1.9)", -1),
        ("DINT", "TRUNC(1.9)", 1),
        ("REAL", "INT_TO_REAL(3)", 3.0),
        ("LREAL", "REAL_TO_LREAL(0.5)", 0.5),
        ("REAL", "LREAL_TO_REAL(0.1)", 0.10000000149011612),
        ("BOOL", "INT_TO_BOOL(5)", True),
        ("BOOL", "INT_TO_BOOL(0)", False),
        ("INT", "BOOL_TO_INT(TRUE)", 1),
        ("WORD", "INT_TO_WORD(-1)", 65535),
        ("BYTE", "WORD_TO_BYTE(16#1234)", 0x34),
        ("DINT", "TIME_TO_DINT(T#1s)", 1000),
        ("TIME", "DINT_TO_TIME(250)", 250),
        ("STRING", "INT_TO_STRING(-42)", "-42"),
        ("STRING", "REAL_TO_STRING(1.5)", "1.5"),
        ("STRING", "BOOL_TO_STRING(TRUE)", "TRUE"),
        ("STRING", "TIME_TO_STRING(T#1m2s5ms)", "T#1m2s5ms"),
        ("INT", "STRING_TO_INT('123')", 123),
        ("INT", "STRING_TO_INT('16#FF')", 255),
        ("REAL", "STRING_TO_REAL('2.5')", 2.5),
        ("TIME", "STRING_TO_TIME('T#2s')", 2000),
        ("BOOL", "STRING_TO_BOOL('TRUE')", True),
        ("INT", "TO_INT(REAL#7.7)", 8),
        ("UDINT", "TO_UDINT(WORD#16#FFFF)", 65535),
    ],
)
def test_conversion_functions(run, decl: str, expr: str, expected: object) -> None:
    assert run(f"x : {decl};", f"x := {expr};")["x"] == expected


def test_conversion_checks_its_source_type(errors) -> None:
    source = "PROGRAM Main\nVAR r : REAL; i : INT; END_VAR\ni := DINT_TO_INT(r);\nEND_PROGRAM"
    assert errors(source) == ["bad.st:3:6: DINT_TO_INT: expected DINT, got REAL"]


def test_selection_functions(run) -> None:
    body = "a := MIN(5, 3, 9); b := MAX(a, 7); c := LIMIT(0, 150, 100); d := SEL(TRUE, 1, 2); e := MUX(2, 10, 20, 30);"
    snap = run("a : INT; b : INT; c : INT; d : INT; e : INT;", body)
    assert snap == {"a": 3, "b": 7, "c": 100, "d": 2, "e": 30}


def test_comparison_functions(run) -> None:
    body = "a := GT(2, 1); b := LE(2, 1); c := EQ(3, 3); d := NE(3, 3); e := GE(1, 1); f := LT(0, 1);"
    snap = run("a : BOOL; b : BOOL; c : BOOL; d : BOOL; e : BOOL; f : BOOL;", body)
    assert snap == {"a": True, "b": False, "c": True, "d": False, "e": True, "f": True}


def test_limit_with_named_arguments(run) -> None:
    assert run("x : REAL;", "x := LIMIT(MN := 0.0, IN := -4.0, MX := 1.0);")["x"] == 0.0
