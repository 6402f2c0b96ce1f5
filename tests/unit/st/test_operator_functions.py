"""Operators written as functions and the extensible standard functions (IEC 61131-3 ed. 3, standard functions)."""

import pytest


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("MOD(a, b)", 1),
        ("MOD(IN1 := a, IN2 := b)", 1),
        ("MOD(IN2 := b, IN1 := a)", 1),
        ("DIV(a, b)", 2),
        ("DIV(IN1 := -a, IN2 := b)", -2),
        ("SUB(a, b)", 4),
        ("ADD(a, b, 10)", 20),
        ("ADD(IN1 := a, IN2 := b, IN3 := 1)", 11),
        ("MUL(a, b, 2)", 42),
        ("ADD(a, MUL(b, b))", 16),
    ],
)
def test_arithmetic_functions(run, expr: str, expected: int) -> None:
    assert run("a : INT := 7; b : INT := 3; r : DINT;", f"r := {expr};")["r"] == expected


def test_arithmetic_functions_follow_the_operator_rules(run) -> None:
    snap = run("w : WORD := 65535; d : DWORD; t : TIME;", "d := ADD(w, 1); t := ADD(T#1s, T#500ms);")
    assert snap["d"] == 65536 and snap["t"] == 1500


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("AND(x, y)", False),
        ("AND(x, x, x)", True),
        ("OR(y, y, x)", True),
        ("XOR(x, y)", True),
        ("XOR(IN1 := x, IN2 := x)", False),
        ("AND(IN1 := x, IN2 := y, IN3 := x)", False),
        ("NOT(x)", False),
        ("NOT(IN := y)", True),
        ("NOT(IN:=x) OR NOT (y)", True),
    ],
)
def test_boolean_functions(run, expr: str, expected: bool) -> None:
    assert run("x : BOOL := TRUE; y : BOOL; r : BOOL;", f"r := {expr};")["r"] is expected


def test_bitwise_functions(run) -> None:
    snap = run(
        "a : BYTE := 16#F0; b : BYTE := 16#3C; n : BYTE; o : BYTE; x : BYTE; k : BYTE;",
        "n := AND(a, b, 16#FF); o := OR(a, b); x := XOR(a, b, 16#01); k := NOT(IN := a);",
    )
    assert (snap["n"], snap["o"], snap["x"], snap["k"]) == (0x30, 0xFC, 0xCD, 0x0F)


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("GT(c, b, a)", True),  # a decreasing sequence
        ("GT(c, b, b)", False),
        ("GE(c, b, b, a)", True),
        ("EQ(a, a, a)", True),
        ("EQ(a, a, b)", False),
        ("LT(a, b, c)", True),
        ("LE(a, a, b, c)", True),
        ("LE(a, c, b)", False),
        ("GT(IN1 := c, IN2 := b, IN3 := a)", True),
        ("NE(a, b)", True),
    ],
)
def test_extensible_comparisons(run, expr: str, expected: bool) -> None:
    assert run("a : INT := 1; b : INT := 2; c : INT := 3; r : BOOL;", f"r := {expr};")["r"] is expected


def test_extensible_comparison_evaluates_each_input_once(run) -> None:
    prelude = """
FUNCTION Next : INT
VAR_IN_OUT n : INT; END_VAR
n := n + 1;
Next := n;
END_FUNCTION
"""
    snap = run("n : INT; r : BOOL;", "r := LT(0, Next(n), 5);", prelude=prelude)
    assert snap["n"] == 1 and snap["r"] is True


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("r := MOD(a);", "MOD expects 2 argument(s), got 1"),
        ("r := MOD(a, a, a);", "MOD expects 2 argument(s), got 3"),
        ("r := ADD(a);", "ADD expects at least 2 argument(s), got 1"),
        ("r := ADD(IN1 := a, IN3 := a);", "ADD takes the parameters IN1, IN2"),
        ("r := NE(a, a, a);", "NE expects 2 argument(s), got 3"),
    ],
)
def test_operator_function_errors(errors, body: str, message: str) -> None:
    source = f"PROGRAM Main\nVAR a : INT; r : INT; END_VAR\n{body}\nEND_PROGRAM"
    assert [e.split(": ", 1)[1] for e in errors(source)] == [message]
