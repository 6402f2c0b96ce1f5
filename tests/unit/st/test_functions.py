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
