import pytest

from shopfloor_st import RuntimeFault

FUNCTIONS = """
FUNCTION Add3 : INT
VAR_INPUT a : INT; b : INT := 10; END_VAR
VAR tmp : INT; END_VAR
tmp := a + b;
Add3 := tmp + 3;
END_FUNCTION

FUNCTION Clamp : REAL
VAR_INPUT x : REAL; lo : REAL; hi : REAL; END_VAR
IF x < lo THEN Clamp := lo; RETURN; END_IF;
IF x > hi THEN Clamp := hi; RETURN; END_IF;
Clamp := x;
END_FUNCTION

FUNCTION Divide : DINT
VAR_INPUT n : DINT; d : DINT; END_VAR
VAR_OUTPUT remainder : DINT; END_VAR
Divide := n / d;
remainder := n MOD d;
END_FUNCTION

FUNCTION Bump : BOOL
VAR_IN_OUT counter : INT; END_VAR
counter := counter + 1;
Bump := counter > 2;
END_FUNCTION

FUNCTION Fact : DINT
VAR_INPUT n : DINT; END_VAR
IF n <= 1 THEN Fact := 1; ELSE Fact := n * Fact(n - 1); END_IF;
END_FUNCTION
"""


def test_positional_and_formal_calls(run) -> None:
    body = "p := Add3(1, 2); f := Add3(b := 5, a := 1); d := Add3(a := 1);"
    snap = run("p : INT; f : INT; d : INT;", body, prelude=FUNCTIONS)
    assert snap == {"p": 6, "f": 9, "d": 14}


def test_return_inside_function(run) -> None:
    body = "a := Clamp(5.0, 0.0, 1.0); b := Clamp(-1.0, 0.0, 1.0); c := Clamp(0.25, 0.0, 1.0);"
    snap = run("a : REAL; b : REAL; c : REAL;", body, prelude=FUNCTIONS)
    assert snap == {"a": 1.0, "b": 0.0, "c": 0.25}


def test_function_outputs(run) -> None:
    snap = run("q : DINT; r : DINT;", "q := Divide(n := 17, d := 5, remainder => r);", prelude=FUNCTIONS)
    assert snap == {"q": 3, "r": 2}


def test_in_out_parameter(run) -> None:
    snap = run("c : INT; big : BOOL;", "big := Bump(c); big := Bump(counter := c); big := Bump(c);", prelude=FUNCTIONS)
    assert snap == {"c": 3, "big": True}


def test_recursion(run) -> None:
    assert run("f : DINT;", "f := Fact(10);", prelude=FUNCTIONS)["f"] == 3628800


def test_functions_in_expressions_and_conditions(run) -> None:
    snap = run("x : INT;", "IF Add3(1, 1) > 4 THEN x := Add3(Add3(0, 0), 0); END_IF;", prelude=FUNCTIONS)
    assert snap["x"] == 6


def test_function_has_no_memory(run) -> None:
    prelude = "FUNCTION Count : INT\nVAR n : INT; END_VAR\nn := n + 1;\nCount := n;\nEND_FUNCTION\n"
    assert run("x : INT;", "x := Count(); x := Count();", prelude=prelude)["x"] == 1


def test_wrong_argument_count(errors) -> None:
    source = FUNCTIONS + "PROGRAM Main\nVAR x : INT; END_VAR\nx := Add3(1, 2, 3);\nEND_PROGRAM"
    line = FUNCTIONS.count("\n") + 3
    assert errors(source) == [f"bad.st:{line}:6: Add3 expects 2 argument(s), got 3"]


def test_unknown_parameter_name(errors) -> None:
    source = FUNCTIONS + "PROGRAM Main\nVAR x : INT; END_VAR\nx := Add3(a := 1, c := 2);\nEND_PROGRAM"
    line = FUNCTIONS.count("\n") + 3
    assert errors(source) == [f"bad.st:{line}:19: Add3 has no input 'c'"]


def test_assigning_an_input_inside_a_function(errors) -> None:
    source = "FUNCTION F : INT\nVAR_INPUT a : INT; END_VAR\na := 1;\nF := a;\nEND_FUNCTION\nPROGRAM Main\nEND_PROGRAM"
    assert errors(source) == ["bad.st:3:1: cannot assign to input 'a'"]


@pytest.mark.parametrize(
    ("call", "decl", "expected"),
    [
        ("TRUNC_INT(1.9)", "INT", 1),  # CODESYS "Operator: TRUNC_INT" examples
        ("TRUNC_INT(-1.4)", "INT", -1),
        ("TRUNC_DINT(r)", "DINT", -123456),
        ("TRUNC_SINT(r / 1000.0)", "SINT", -123),
        ("TRUNC_UINT(2.99)", "UINT", 2),
        ("TRUNC_LINT(l)", "LINT", 12345678901),
        ("TRUNC_BYTE(255.9)", "BYTE", 255),
        ("REAL_TRUNC_INT(r / 100.0)", "INT", -1234),
        ("LREAL_TRUNC_DINT(l / 10.0)", "DINT", 1234567890),
        ("TRUNC_INT(i)", "INT", 7),
    ],
)
def test_typed_trunc(run, call: str, decl: str, expected: int) -> None:
    decls = f"r : REAL := -123456.7; l : LREAL := 12345678901.9; i : INT := 7; x : {decl};"
    assert run(decls, f"x := {call};")["x"] == expected


def test_typed_trunc_has_its_type_and_faults_on_nan(run, errors) -> None:
    source = "PROGRAM Main\nVAR i : INT; END_VAR\ni := TRUNC_DINT(1.5);\nEND_PROGRAM"
    assert errors(source) == ["bad.st:3:6: cannot assign DINT to INT implicitly; use DINT_TO_INT"]
    source = "PROGRAM Main\nVAR i : INT; s : STRING; END_VAR\ni := TRUNC_INT(s);\nEND_PROGRAM"
    assert errors(source) == ["bad.st:3:6: TRUNC_INT: expected a number, got STRING"]
    with pytest.raises(RuntimeFault, match="cannot convert nan"):
        run("z : REAL; i : INT;", "z := SQRT(-1.0); i := TRUNC_INT(z);")


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("ADD_TIME(T#1s, T#500ms)", 1500),
        ("SUB_TIME(t, T#250ms)", 1750),
        ("MUL_TIME(t, 3)", 6000),
        ("MUL_TIME(t, 1.5)", 3000),
        ("DIV_TIME(t, 4)", 500),
        ("DIV_TIME(IN1 := t, IN2 := 0.5)", 4000),
        ("ADD_TIME(IN1 := t, IN2 := t)", 4000),
    ],
)
def test_time_arithmetic_functions(run, expr: str, expected: int) -> None:
    assert run("t : TIME := T#2s; r : TIME;", f"r := {expr};")["r"] == expected


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("r := ADD_TIME(t, 5);", "ADD_TIME: IN2 must be TIME, not ANY_INT"),
        ("r := MUL_TIME(5, t);", "MUL_TIME: IN1 must be TIME, not ANY_INT"),
        ("r := DIV_TIME(t, t);", "DIV_TIME: IN2 must be a number, not TIME"),
        ("r := SUB_TIME(t);", "SUB_TIME expects 2 argument(s), got 1"),
        ("b := IS_VALID(i);", "IS_VALID needs REAL or LREAL, not INT"),
        ("b := IS_VALID_BCD(i);", "IS_VALID_BCD needs a bit string (BYTE, WORD, DWORD, LWORD), not INT"),
        ("i := TO_BIG_ENDIAN(16#0102);", "TO_BIG_ENDIAN needs a typed integer or bit string, not ANY_INT"),
        ("i := UINT_TO_BCD_WORD(x);", "UINT_TO_BCD_WORD: expected UINT, got REAL"),
        ("x := ATAN2(x, 'y');", "ATAN2 needs numbers, not REAL and STRING"),
    ],
)
def test_standard_function_errors(errors, body: str, message: str) -> None:
    source = f"PROGRAM Main\nVAR t : TIME; r : TIME; i : INT; b : BOOL; x : REAL; END_VAR\n{body}\nEND_PROGRAM"
    assert [e.split(": ", 1)[1] for e in errors(source)] == [message]


def test_selection_and_equality_on_enumerations(run) -> None:
    snap = run(
        "m : Mode; n : Mode; g : BOOL := TRUE; e : BOOL; f : BOOL;",
        "m := SEL(g, Mode#Idle, Mode#Run); n := MUX(0, Mode#Run, Mode#Idle); e := EQ(m, n); f := NE(m, n);",
        prelude="TYPE Mode : (Idle, Run); END_TYPE",
    )
    assert (snap["m"], snap["n"], snap["e"], snap["f"]) == ("Run", "Run", True, False)


# IEC 61131-3 ed. 3 standard functions beyond CODESYS's operators: ATAN2, validation, BCD, endianness


def test_atan2_is_the_angle_of_a_point(run) -> None:
    snap = run("a : REAL; b : LREAL; c : REAL;", "a := ATAN2(1.0, 1.0); b := ATAN2(LREAL#-1, 0); c := ATAN2(0, -1);")
    assert snap["a"] == pytest.approx(0.785398163) and snap["b"] == pytest.approx(-1.5707963267948966)
    assert snap["c"] == pytest.approx(3.14159265)


def test_is_valid_and_is_valid_bcd(run) -> None:
    decls = "r : REAL := 1.5; a : BOOL; b : BOOL; c : BOOL; d : BOOL; w : WORD := 16#0999;"
    body = "a := IS_VALID(r); b := IS_VALID(LN(0.0)); c := IS_VALID_BCD(w); d := IS_VALID_BCD(WORD#16#12A4);"
    snap = run(decls, body)
    assert (snap["a"], snap["b"], snap["c"], snap["d"]) == (True, False, True, False)


@pytest.mark.parametrize(
    ("decl", "expr", "expected"),
    [
        ("UINT", "WORD_BCD_TO_UINT(16#1234)", 1234),
        ("USINT", "BYTE_BCD_TO_USINT(BYTE#16#99)", 99),
        ("DINT", "DWORD_BCD_TO_DINT(16#9999_9999)", 99_999_999),
        ("WORD", "UINT_TO_BCD_WORD(4321)", 0x4321),
        ("BYTE", "USINT_TO_BCD_BYTE(7)", 0x07),
        ("LWORD", "ULINT_TO_BCD_LWORD(1234567890)", 0x1234567890),
    ],
)
def test_bcd_conversions(run, decl: str, expr: str, expected: int) -> None:
    assert run(f"x : {decl};", f"x := {expr};")["x"] == expected


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("u := WORD_BCD_TO_UINT(16#12A4);", "16#12A4 is not a BCD value"),
        ("w := UINT_TO_BCD_WORD(10000);", "10000 does not fit 4 BCD digits"),
        ("w := INT_TO_BCD_WORD(i);", "-1 does not fit 4 BCD digits"),
    ],
)
def test_a_value_bcd_cannot_hold_is_a_runtime_fault(run, body: str, message: str) -> None:
    with pytest.raises(RuntimeFault, match=message):
        run("u : UINT; w : WORD; i : INT := -1;", body)


def test_endianness_conversions_on_a_little_endian_runtime(run) -> None:
    decls = "d : DINT := 16#0102_0304; i : INT := -2; b : BYTE := 5; e : DINT; f : DINT; j : INT; k : BYTE; l : DINT;"
    body = "e := TO_BIG_ENDIAN(d); f := FROM_BIG_ENDIAN(e); j := TO_BIG_ENDIAN(i); k := TO_BIG_ENDIAN(b);"
    body += " l := TO_LITTLE_ENDIAN(d) + FROM_LITTLE_ENDIAN(d) - d;"
    snap = run(decls, body)
    assert (snap["e"], snap["f"], snap["j"], snap["k"], snap["l"]) == (0x0403_0201, 0x0102_0304, -257, 5, 0x0102_0304)
