import pytest

from shopfloor_st import compile_source


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("LEN('hello')", 5),
        ("LEN('')", 0),
        ("FIND('abcabc', 'ca')", 3),
        ("FIND('abc', 'x')", 0),
    ],
)
def test_integer_results(run, expr: str, expected: int) -> None:
    assert run("i : INT;", f"i := {expr};")["i"] == expected


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("LEFT('hello', 2)", "he"),
        ("RIGHT('hello', 3)", "llo"),
        ("MID('hello', 3, 2)", "ell"),
        ("CONCAT('ab', 'cd')", "abcd"),
        ("CONCAT('a', 'b', 'c')", "abc"),
        ("INSERT('abef', 'cd', 2)", "abcdef"),
        ("DELETE('abcdef', 2, 3)", "abef"),  # L = 2 characters from P = 3
        ("REPLACE('abcdef', 'XY', 3, 2)", "aXYef"),
        ("LEFT('hi', 10)", "hi"),
        ("RIGHT('hi', 0)", ""),
    ],
)
def test_string_results(run, expr: str, expected: str) -> None:
    assert run("s : STRING;", f"s := {expr};")["s"] == expected


def test_string_length_limit_on_assignment(run) -> None:
    snap = run("s : STRING(5); t : STRING;", "t := 'abcdefgh'; s := t; s := CONCAT(s, 'zz');")
    assert snap["s"] == "abcde"


def test_default_string_length_is_80(run) -> None:
    snap = run("s : STRING; i : INT;", "FOR i := 1 TO 100 DO s := CONCAT(s, 'x'); END_FOR;")
    assert snap["s"] == "x" * 80


def test_string_with_variables(run) -> None:
    snap = run("a : STRING := 'Tank'; n : INT := 7; s : STRING;", "s := CONCAT(a, INT_TO_STRING(n));")
    assert snap["s"] == "Tank7"


def test_string_to_number_type_mismatch(errors) -> None:
    source = "PROGRAM Main\nVAR s : STRING; i : INT; END_VAR\ni := s;\nEND_PROGRAM"
    assert errors(source) == ["bad.st:3:6: type mismatch: cannot assign STRING to INT"]


LONG = "x" * 152
STRING_POUS = f"""
FUNCTION Long : STRING
VAR_INPUT s : STRING(10); END_VAR
Long := '{LONG}';
END_FUNCTION
FUNCTION Length : INT
VAR_INPUT s : STRING(10); END_VAR
Length := LEN(s);
END_FUNCTION
FUNCTION_BLOCK Holder
VAR_INPUT s : STRING(4); END_VAR
VAR_OUTPUT n : INT; END_VAR
n := LEN(s);
END_FUNCTION_BLOCK
"""


def test_long_string_literal_is_cut_to_the_target_length(run) -> None:
    # CODESYS help, "Data type: STRING": a literal too long for the variable is cut from the right
    decls = "s : STRING; t : STRING(5) := 'abcdefgh'; n1, n2, n3, n4, n5 : INT; h : Holder;"
    body = (
        f"s := '{LONG}'; n1 := LEN(s); n2 := LEN(Long('a')); n3 := Length('{LONG}');"
        " h(s := 'abcdefgh'); n4 := h.n; n5 := LEN(t);"
    )
    snap = run(decls, body, prelude=STRING_POUS)
    assert snap["s"] == "x" * 80
    assert (snap["n1"], snap["n2"], snap["n3"], snap["n4"], snap["n5"]) == (80, 80, 10, 4, 5)


def test_cutting_a_string_literal_is_a_warning() -> None:
    source = "PROGRAM Main\nVAR s : STRING(3); END_VAR\ns := 'abcd';\nEND_PROGRAM\n"
    warnings = [str(w) for w in compile_source(source, "w.st").warnings]
    assert warnings == ["w.st:3:6: string constant of 4 characters cut to STRING(3)"]
