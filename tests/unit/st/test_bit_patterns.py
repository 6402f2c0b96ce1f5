"""Untyped integer constants as bit patterns, and bit operations on constants (CODESYS online help, cited per test)."""

import pytest

from shopfloor_st import compile_source


def _warnings(decls: str, body: str = "") -> list[str]:
    source = f"PROGRAM Main\nVAR\n{decls}\nEND_VAR\n{body}\nEND_PROGRAM\n"
    return [w.message for w in compile_source(source, "w.st").warnings]


@pytest.mark.parametrize(
    ("decl", "expected", "code"),
    [
        ("INT := 16#FFFF", -1, "C0196"),
        ("INT := 2#1000_0000_0000_0000", -32768, "C0196"),
        ("SINT := 16#80", -128, "C0196"),
        ("DINT := 16#FFFF_FFFF", -1, "C0196"),
        ("INT := 65535", -1, "C0196"),  # the rule is the value's, whatever its base
        ("UINT := -1", 65535, "C0195"),
        ("WORD := -2", 65534, "C0195"),
        ("BYTE := -128", 128, "C0195"),
    ],
)
def test_a_constant_that_fits_only_with_the_other_signedness_is_its_bit_pattern(
    run, decl: str, expected: int, code: str
) -> None:
    # CODESYS help, "Attribute: warning disable": `test2 : UINT := -1` compiles with warning C0195 (C0196 the other way)
    assert run(f"x : {decl};", "")["x"] == expected
    (warning,) = _warnings(f"x : {decl};")
    assert f"its bit pattern is taken, {expected}" in warning and code in warning


def test_the_bit_pattern_rule_holds_for_assignments_arguments_and_constants(run) -> None:
    prelude = "FUNCTION Twice : DINT\nVAR_INPUT i : INT; END_VAR\nTwice := i * 2;\nEND_FUNCTION"
    decls = "a : INT; b : DINT; MASK : INT := 16#FF00; c : INT;"
    snap = run(decls, "a := 16#8000; b := Twice(16#FFFF); c := MASK;", prelude=prelude)
    assert (snap["a"], snap["b"], snap["c"]) == (-32768, -2, -256)


def test_a_constant_wider_than_the_target_stays_an_error(errors) -> None:
    source = "PROGRAM Main\nVAR x : INT; y : UINT := 16#1_0000; END_VAR\nx := -32769;\nEND_PROGRAM"
    assert errors(source) == [
        "bad.st:2:26: y: 65536 is out of the range of UINT (0..65535)",
        "bad.st:3:6: constant -32769 is out of the range of INT",
    ]


def test_a_typed_literal_must_fit_its_type(errors) -> None:
    # CODESYS help, "Compiler Error C0001": INT#123456 is too large for INT; a typed literal says its type
    source = "PROGRAM Main\nVAR x : INT; END_VAR\nx := INT#16#FFFF;\nEND_PROGRAM"
    assert errors(source) == ["bad.st:3:6: constant 65535 is out of the range of INT"]


def test_a_constant_that_fits_gives_no_warning() -> None:
    assert _warnings("a : INT := 16#7FFF; b : UINT := 16#FFFF; c : WORD := 0; d : SINT := -128;") == []


@pytest.mark.parametrize(
    ("decl", "expr", "expected"),
    [
        # CODESYS help, "Operator: AND": var1 := 2#1001_0011 AND 2#1000_1010 gives 2#1000_0010; OR and XOR alike
        ("BYTE", "2#1001_0011 AND 2#1000_1010", 0b1000_0010),
        ("WORD", "16#F0F0 AND 16#FF00", 0xF000),
        ("WORD", "16#F0F0 OR 16#0F0F", 0xFFFF),
        ("WORD", "16#F0F0 XOR 16#FF00", 0x0FF0),
        ("DWORD", "16#F0F0 & 16#FF00", 0xF000),
        ("WORD", "AND(16#F0F0, 16#FF00, 16#3000)", 0x3000),
        # CODESYS help, "Operator: NOT": Var1 := NOT 2#1001_0011 in a BYTE gives 2#0110_1100
        ("BYTE", "NOT 2#1001_0011", 0b0110_1100),
        ("WORD", "NOT 2#1001_0011", 0xFF6C),  # the target's width
        ("WORD", "NOT 0", 0xFFFF),
        ("INT", "NOT 0", -1),
        ("WORD", "16#FFFF AND NOT 16#00F0", 0xFF0F),
        ("WORD", "WORD#16#F0F0 AND 16#0FF0", 0x00F0),
        ("WORD", "NOT WORD#16#00FF", 0xFF00),
        ("INT", "NOT INT#0", -1),
    ],
)
def test_bit_operations_on_constants(run, decl: str, expr: str, expected: int) -> None:
    snap = run(f"x : {decl}; y : {decl} := {expr};", f"x := {expr};")
    assert (snap["x"], snap["y"]) == (expected, expected)


def test_an_untyped_mask_takes_the_other_operands_type(run) -> None:
    # a constant beside a typed operand of AND/OR/XOR converts to its type, by its bit pattern if need be
    decls = "i : INT := -1; j : INT; k : INT; w : WORD := 16#1234; v : WORD; b : BYTE := 16#0F; c : BYTE;"
    snap = run(decls, "j := i AND 16#FF00; k := i XOR 16#FFFF; v := w AND NOT 16#00FF; c := b OR NOT 16#0F;")
    assert (snap["j"], snap["k"], snap["v"], snap["c"]) == (-256, 0, 0x1200, 0xFF)
    warnings = _warnings("i : INT; j : INT;", "j := i AND 16#FF00;")
    assert warnings == [
        "constant 65280 does not fit INT: its bit pattern is taken, -256 "
        "(CODESYS warns C0196: implicit conversion from unsigned to signed type, possible change of sign)"
    ]


def test_a_not_of_constants_is_no_number(errors) -> None:
    source = "PROGRAM Main\nVAR r : REAL := NOT 0; s : REAL; END_VAR\ns := NOT 0;\nEND_PROGRAM"
    assert errors(source) == [
        "bad.st:2:17: type mismatch: NOT of a constant is a bit string, not a REAL",
        "bad.st:3:6: type mismatch: cannot assign ANY_INT to REAL",
    ]


@pytest.mark.parametrize(
    ("decl", "expr", "expected", "width"),
    [
        ("WORD", "SHL(1, 3)", 8, "BYTE"),
        ("WORD", "SHL(1, 8)", 0, "BYTE"),  # the bits of a BYTE: written DWORD#1, it would be 256
        ("BYTE", "ROL(16#81, 1)", 0x03, "BYTE"),
        ("WORD", "ROR(16#8001, 1)", 0xC000, "WORD"),
        ("DWORD", "SHR(16#1_0000, 4)", 0x1000, "DWORD"),
    ],
)
def test_a_shift_of_an_untyped_constant_works_on_its_smallest_type(
    run, decl: str, expr: str, expected: int, width: str
) -> None:
    # CODESYS help, "Constant: Typed Literal": a constant has the smallest type that holds it; its static analysis
    # rule SA0024 flags untyped constants for this reason (`dw := ROL(DWORD#1, i)`)
    assert run(f"x : {decl};", f"x := {expr};")["x"] == expected
    (warning,) = _warnings(f"x : {decl};", f"x := {expr};")
    assert f"as a {width}, its smallest type" in warning


def test_a_shift_of_a_typed_constant_gives_no_warning(run) -> None:
    assert run("x : DWORD;", "x := ROL(DWORD#1, 31);")["x"] == 1 << 31
    assert _warnings("x : DWORD;", "x := ROL(DWORD#1, 31);") == []
