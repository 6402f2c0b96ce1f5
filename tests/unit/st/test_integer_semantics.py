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


# CODESYS online help, "Operators", overflow/underflow in the data type: intermediate results are computed in at
# least 32 bits and cut to the target's width only on assignment (or by a conversion).


def test_intermediate_results_are_32_bits_wide(run) -> None:
    snap = run("x : INT := 32767; y : INT;", "y := (x + 1) / 2;")
    assert snap["y"] == 16384


@pytest.mark.parametrize(
    ("decl", "init", "expr", "expected"),
    [
        ("BYTE", "255", "x + 10", 265),
        ("USINT", "0", "x - 1", -1),
        ("SINT", "127", "x + 1", 128),
        ("UINT", "65535", "x * 2", 131070),
        ("INT", "-32768", "-x", 32768),
        ("INT", "-32768", "ABS(x)", 32768),
        ("INT", "300", "x * x / 100", 900),
        ("BYTE", "200", "(x + x) MOD 256", 144),
        ("WORD", "65535", "(x + 1) AND 16#1FFFF", 65536),
    ],
)
def test_small_operands_into_a_dint(run, decl: str, init: str, expr: str, expected: int) -> None:
    assert run(f"x : {decl} := {init}; d : DINT;", f"d := {expr};")["d"] == expected


def test_codesys_help_examples(run) -> None:
    decls = "w1 : WORD := 65535; w2 : WORD := 0; w3 : WORD; dw : DWORD; b1, b2, b3, b4, b5 : BOOL;"
    body = (
        "dw := w1 + 1;"  # example 1: 65536
        "b1 := (w1 + 1) = w2; b2 := (w2 - 1) = w1;"  # example 2: both FALSE
        "w3 := w1 + 1; b3 := w3 = w2;"  # example 3: the assignment cuts, TRUE
        "b4 := TO_WORD(w1 + 1) = w2; b5 := TO_WORD(w2 - 1) = w1;"  # example 4: the conversion cuts, TRUE
    )
    snap = run(decls, body)
    assert snap["dw"] == 65536
    assert (snap["b1"], snap["b2"], snap["b3"], snap["b4"], snap["b5"]) == (False, False, True, True, True)


def test_32_and_64_bit_operands_wrap_at_their_width(run) -> None:
    decls = "d : DINT := 2147483647; u : UDINT := 0; l : LINT; m : LINT; i : INT := 32767; n : LINT;"
    snap = run(decls, "l := d + 1; m := u - 1; n := i * i * 4;")
    assert snap["l"] == -2147483648
    assert snap["m"] == 4294967295
    assert snap["n"] == 32767 * 32767 * 4 - (1 << 32)  # an INT expression is computed in 32 bits


def test_assignment_and_inputs_cut_to_the_target_width(run) -> None:
    prelude = "FUNCTION Echo : DINT\nVAR_INPUT v : INT; END_VAR\nEcho := v;\nEND_FUNCTION"
    decls = "x : INT := 32767; y : INT; a : DINT; b : DINT; c : DINT;"
    body = "y := x + 1; a := Echo(x + 1); b := INT_TO_DINT(x + 1); c := TO_DINT(x + 1);"
    snap = run(decls, body, prelude=prelude)
    assert (snap["y"], snap["a"], snap["b"], snap["c"]) == (-32768, -32768, -32768, 32768)


def test_comparison_sees_the_wide_value(run) -> None:
    snap = run("b : BYTE := 255; over : BOOL; i : INT := 32767; neg : BOOL;", "over := b + 10 > 255; neg := i + 1 < 0;")
    assert snap["over"] is True and snap["neg"] is False


def test_untyped_constant_outside_the_operand_type_takes_its_smallest_type(run, errors) -> None:
    # CODESYS "Constant: Typed Literal": the smallest possible data type is used for an IEC constant
    assert run("b : BYTE := 10; d : DINT;", "d := b + 300;")["d"] == 310
    source = "PROGRAM Main\nVAR b : BYTE; END_VAR\nb := b + 300;\nEND_PROGRAM"
    assert errors(source) == ["bad.st:3:6: cannot assign INT to BYTE implicitly; use INT_TO_BYTE"]


def test_folded_constants_follow_the_same_rule(run) -> None:
    snap = run(
        "d : DINT; e : DINT; l : LINT;", "d := (INT#32767 + 1) / 2; e := BYTE#255 + 1; l := DINT#16#7FFFFFFF + 1;"
    )
    assert (snap["d"], snap["e"], snap["l"]) == (16384, 256, -2147483648)


def test_not_and_shifts_work_on_the_operand_width(run) -> None:
    snap = run("b : BYTE := 0; w : WORD; i : INT := 16#4000; j : INT;", "w := NOT b; j := SHL(i, 1);")
    assert snap["w"] == 255 and snap["j"] == -32768


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
