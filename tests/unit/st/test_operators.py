import pytest


@pytest.mark.parametrize(
    ("decl", "expr", "expected"),
    [
        ("INT", "2 + 3 * 4", 14),
        ("INT", "(2 + 3) * 4", 20),
        ("INT", "10 - 4 - 3", 3),
        ("INT", "100 / 10 / 5", 2),
        ("INT", "7 MOD 4 * 2", 6),
        ("INT", "-2 * 3", -6),
        ("REAL", "2 ** 3 ** 2", 64.0),  # IEC: equal precedence evaluates left to right
        ("REAL", "-REAL#2.0 ** 2", -4.0),  # ** binds tighter than unary minus
        ("REAL", "2.0 ** -1", 0.5),
        ("BOOL", "1 < 2 AND 3 > 2", True),
        ("BOOL", "TRUE OR FALSE AND FALSE", True),  # AND before OR
        ("BOOL", "TRUE XOR TRUE OR TRUE", True),  # XOR before OR
        ("BOOL", "FALSE AND TRUE XOR TRUE", True),  # AND before XOR
        ("BOOL", "NOT FALSE AND FALSE", False),  # NOT binds tightest
        ("BOOL", "TRUE & NOT TRUE", False),
        ("BOOL", "5 <> 4", True),
        ("BOOL", "5 = 5", True),
        ("BOOL", "3 >= 3 AND 2 <= 1", False),
        ("BOOL", "NOT (1 > 2)", True),
        ("WORD", "WORD#16#F0F0 AND WORD#16#FF00", 0xF000),
        ("WORD", "WORD#16#F0F0 OR WORD#16#0F00", 0xFFF0),
        ("WORD", "WORD#16#F0F0 XOR WORD#16#FFFF", 0x0F0F),
        ("WORD", "NOT WORD#16#00FF", 0xFF00),
        ("BYTE", "NOT BYTE#0", 255),
        ("INT", "NOT INT#0", -1),
    ],
)
def test_operator_results(run, decl: str, expr: str, expected: object) -> None:
    assert run(f"x : {decl};", f"x := {expr};")["x"] == expected


def test_variables_in_expressions(run) -> None:
    snap = run("a : INT := 7; b : INT := 2; q : INT; r : INT; p : REAL;", "q := a / b; r := a MOD b; p := a ** b;")
    assert snap["q"] == 3 and snap["r"] == 1 and snap["p"] == 49.0


def test_mixed_width_promotes_to_the_wider_operand(run) -> None:
    snap = run("s : SINT := 100; i : DINT := 1000; d : DINT;", "d := s * i;")
    assert snap["d"] == 100_000


def test_arithmetic_is_computed_in_32_bits_and_kept_by_a_wider_target(run) -> None:
    # CODESYS "Operators": intermediate results are at least 32 bits wide, cut only on assignment
    snap = run("a : INT := 1000; b : INT := 100; d : DINT; i : INT;", "d := a * b; i := a * b;")
    assert snap["d"] == 100_000
    assert snap["i"] == 100_000 - 65536 * 2


def test_integer_to_real_is_implicit(run) -> None:
    snap = run("i : INT := 3; r : REAL;", "r := i / 2 + 0.5;")
    assert snap["r"] == 1.5  # i / 2 is integer division (1), then widened


def test_comparing_strings_and_times(run) -> None:
    snap = run("a : BOOL; b : BOOL;", "a := 'abc' < 'abd'; b := T#1s > T#999ms;")
    assert snap == {"a": True, "b": True}


def test_time_arithmetic(run) -> None:
    snap = run("t : TIME; u : TIME; v : TIME;", "t := T#1s + T#500ms; u := T#1s * 3; v := T#1s / 4;")
    assert snap == {"t": 1500, "u": 3000, "v": 250}


def test_orderings_bind_tighter_than_equality(run) -> None:
    snap = run("a : BOOL; b : BOOL; c : BOOL := TRUE;", "a := FALSE = 1 < 2; b := 2 > 1 = c;")
    assert snap["a"] is False and snap["b"] is True
