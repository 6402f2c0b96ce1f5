import pytest


@pytest.mark.parametrize(
    ("decl", "init", "expr", "expected"),
    [
        ("SINT", "127", "x + 1", -128),
        ("INT", "32767", "x + 1", -32768),
        ("INT", "-32768", "x - 1", 32767),
        ("DINT", "2147483647", "x + 1", -2147483648),
        ("LINT", "9223372036854775807", "x + 1", -9223372036854775808),
        ("USINT", "255", "x + 1", 0),
        ("UINT", "0", "x - 1", 65535),
        ("UDINT", "0", "x - 1", 4294967295),
        ("ULINT", "0", "x - 1", 18446744073709551615),
        ("BYTE", "255", "x + 1", 0),
        ("WORD", "16#FFFF", "x * 2", 0xFFFE),
        ("INT", "200", "x * 200", 40000 - 65536),
        ("INT", "-32768", "-x", -32768),
        ("INT", "-32768", "ABS(x)", -32768),
        ("INT", "-32768", "x / -1", -32768),
    ],
)
def test_wrap_at_type_width(run, decl: str, init: str, expr: str, expected: int) -> None:
    assert run(f"x : {decl} := {init};", f"x := {expr};")["x"] == expected


def test_wrap_in_intermediate_results(run) -> None:
    # (x + 1) wraps before the division, as each operation's result has the operand type
    snap = run("x : INT := 32767; y : INT;", "y := (x + 1) / 2;")
    assert snap["y"] == -16384


def test_counter_wraps_across_scans(run) -> None:
    snap = run("n : USINT := 250;", "n := n + 1;", scans=10)
    assert snap["n"] == 4


@pytest.mark.parametrize(
    ("a", "b", "quotient", "remainder"),
    [(7, 2, 3, 1), (-7, 2, -3, -1), (7, -2, -3, 1), (-7, -2, 3, -1), (6, 3, 2, 0), (0, 5, 0, 0)],
)
def test_division_truncates_toward_zero_and_mod_takes_dividend_sign(
    run, a: int, b: int, quotient: int, remainder: int
) -> None:
    snap = run(f"a : DINT := {a}; b : DINT := {b}; q : DINT; r : DINT;", "q := a / b; r := a MOD b;")
    assert (snap["q"], snap["r"]) == (quotient, remainder)


def test_unsigned_division(run) -> None:
    snap = run("a : UINT := 65535; b : UINT := 2; q : UINT;", "q := a / b;")
    assert snap["q"] == 32767


def test_bit_shifts_and_rotations(run) -> None:
    decls = "b : BYTE := 2#1000_0001; l : BYTE; r : BYTE; rl : BYTE; rr : BYTE; w : WORD;"
    body = "l := SHL(b, 1); r := SHR(b, 1); rl := ROL(b, 1); rr := ROR(b, 1); w := SHL(WORD#1, 15);"
    snap = run(decls, body)
    assert snap == {"b": 0x81, "l": 0x02, "r": 0x40, "rl": 0x03, "rr": 0xC0, "w": 0x8000}


def test_narrowing_needs_a_conversion_function(errors) -> None:
    source = "PROGRAM Main\nVAR d : DINT; i : INT; END_VAR\ni := d;\nEND_PROGRAM"
    assert errors(source) == ["bad.st:3:6: cannot assign DINT to INT implicitly; use DINT_TO_INT"]


def test_signed_to_unsigned_needs_a_conversion(errors) -> None:
    source = "PROGRAM Main\nVAR u : UINT; i : INT; END_VAR\nu := i;\nEND_PROGRAM"
    assert errors(source) == ["bad.st:3:6: cannot assign INT to UINT implicitly; use INT_TO_UINT"]


def test_widening_is_implicit(run) -> None:
    snap = run(
        "s : SINT := -5; us : USINT := 200; i : INT; d : DINT; w : WORD; b : BYTE := 16#F0;", "i := s; d := us; w := b;"
    )
    assert snap["i"] == -5 and snap["d"] == 200 and snap["w"] == 0xF0
