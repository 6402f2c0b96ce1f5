import math
import struct

import pytest

from shopfloor_st import compile_source


def f32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


def test_real_is_single_precision(run) -> None:
    snap = run("r : REAL; l : LREAL;", "r := 0.1; l := 0.1;")
    assert snap["r"] == f32(0.1) != 0.1
    assert snap["l"] == 0.1


def test_real_rounds_after_each_operation(run) -> None:
    snap = run("a : REAL := 16777216.0; r : REAL;", "r := a + 1.0;")
    assert snap["r"] == 16777216.0  # 2^24 + 1 is not representable in single precision


def test_real_accumulates_like_a_float32(run) -> None:
    expected = 0.0
    for _ in range(10):
        expected = f32(expected + f32(0.1))
    assert run("r : REAL;", "r := r + 0.1;", scans=10)["r"] == expected


def test_lreal_keeps_double_precision(run) -> None:
    snap = run("l : LREAL := 16777216.0;", "l := l + 1.0;")
    assert snap["l"] == 16777217.0


def test_real_overflow_gives_infinity_in_snapshot_as_text(run) -> None:
    snap = run("r : REAL := 3.0E38;", "r := r * 10.0;")
    assert snap["r"] == "inf"


def test_int_to_real_rounds_to_single(run) -> None:
    snap = run("d : DINT := 16777217; r : REAL;", "r := d;")
    assert snap["r"] == 16777216.0


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("SQRT(16.0)", 4.0),
        ("ABS(-2.5)", 2.5),
        ("LN(1.0)", 0.0),
        ("LOG(100.0)", 2.0),
        ("EXP(0.0)", 1.0),
        ("EXPT(2.0, 10)", 1024.0),
        ("SIN(0.0)", 0.0),
        ("COS(0.0)", 1.0),
        ("TAN(0.0)", 0.0),
        ("ASIN(1.0)", f32(math.pi / 2)),
        ("ACOS(1.0)", 0.0),
        ("ATAN(1.0)", f32(math.pi / 4)),
        ("SQRT(2)", f32(math.sqrt(2))),
    ],
)
def test_math_functions(run, expr: str, expected: float) -> None:
    assert run("r : REAL;", f"r := {expr};")["r"] == expected


def test_sqrt_of_negative_is_nan(run) -> None:
    assert run("r : REAL;", "r := SQRT(-1.0);")["r"] == "nan"


def test_real_to_int_needs_conversion(errors) -> None:
    source = "PROGRAM Main\nVAR r : REAL; i : INT; END_VAR\ni := r;\nEND_PROGRAM"
    assert errors(source) == ["bad.st:3:6: cannot assign REAL to INT implicitly; use REAL_TO_INT"]


def test_lreal_to_real_needs_conversion(errors) -> None:
    source = "PROGRAM Main\nVAR r : REAL; l : LREAL; END_VAR\nr := l;\nEND_PROGRAM"
    assert errors(source) == ["bad.st:3:6: cannot assign LREAL to REAL implicitly; use LREAL_TO_REAL"]


def test_untyped_real_constant_is_an_lreal_in_arithmetic(run) -> None:
    # CODESYS "Constant: Typed Literal": REAL/LREAL constants are always LREAL
    snap = run("r : REAL := 9.0; p : REAL; q : REAL;", "p := r * 0.1; q := r * REAL#0.1;")
    assert snap["p"] == 0.8999999761581421  # REAL(9.0 * 0.1)
    assert snap["q"] == 0.9000000357627869  # 9.0 * REAL(0.1), rounded


def test_an_integer_wider_than_the_mantissa_converts_with_a_warning(run) -> None:
    # CODESYS help, "Compiler Error C0197": DINT to REAL, "possible loss of information"; REAL holds 24 bits exactly
    source = (
        "PROGRAM Main\nVAR d : DINT := 16777217; r : REAL; l : LREAL; i : INT; k : LINT; END_VAR\n"
        "r := d; l := d; r := i; l := k;\nEND_PROGRAM\n"
    )
    program = compile_source(source, "w.st")
    assert [str(w) for w in program.warnings] == [
        "w.st:3:6: implicit conversion from DINT to REAL: possible loss of information (CODESYS warns C0197);"
        " an LREAL holds every DINT",
        "w.st:3:30: implicit conversion from LINT to LREAL: possible loss of information (CODESYS warns C0197)",
    ]
    assert run("d : DINT := 16777217; r : REAL;", "r := d;")["r"] == 16777216.0
