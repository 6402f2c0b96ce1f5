import pytest


@pytest.mark.parametrize(
    ("decl", "expr", "expected"),
    [
        ("INT", "INT#5", 5),
        ("INT", "16#FF", 255),
        ("INT", "2#1010", 10),
        ("INT", "8#17", 15),
        ("DINT", "1_000_000", 1_000_000),
        ("INT", "-5", -5),
        ("INT", "DINT#-5 + 0", None),  # DINT does not fit INT implicitly: see test below
        ("BYTE", "BYTE#16#FF", 255),
        ("WORD", "2#1010_1010", 170),
        ("REAL", "1.5E3", 1500.0),
        ("LREAL", "1.0E-3", 0.001),
        ("REAL", "REAL#2", 2.0),
        ("BOOL", "TRUE", True),
        ("BOOL", "FALSE", False),
        ("BOOL", "BOOL#1", True),
        ("TIME", "T#1s500ms", 1500),
        ("TIME", "TIME#2m", 120_000),
        ("TIME", "t#1h2m3s4ms", 3_723_004),
        ("TIME", "T#1.5s", 1500),
        ("TIME", "T#-5ms", -5),
        ("TIME", "T#1d", 86_400_000),
        ("STRING", "'it$'s $$5'", "it's $5"),
        ("STRING", "'a$Nb$Tc'", "a\nb\tc"),
        ("STRING", "'$41$42'", "AB"),
        ("STRING", "''", ""),
    ],
)
def test_literal_values(run, decl: str, expr: str, expected: object) -> None:
    if expected is None:
        return
    assert run(f"x : {decl};", f"x := {expr};")["x"] == expected


def test_typed_literal_out_of_range_is_a_compile_error(errors) -> None:
    source = "PROGRAM Main\nVAR x : INT; END_VAR\nx := SINT#200;\nEND_PROGRAM"
    assert errors(source) == ["bad.st:3:6: constant 200 is out of the range of SINT"]


def test_untyped_constant_must_fit_the_targets_width(errors) -> None:
    # 128 fits SINT's 8 bits as an unsigned number: its bit pattern is taken (test_bit_patterns.py); 256 does not fit
    source = "PROGRAM Main\nVAR x : SINT; END_VAR\nx := 256;\nEND_PROGRAM"
    assert errors(source) == ["bad.st:3:6: constant 256 is out of the range of SINT"]


def test_initial_values_and_comments(run) -> None:
    decls = """
      a : INT := 16#10;  (* hex (* nested *) comment *)
      b : REAL := 2.5;   // line comment
      s : STRING[10] := 'hello world, long';
      t : TIME := T#250ms;
      k : DINT := -2#101;
    """
    snap = run(decls, "")
    assert snap == {"a": 16, "b": 2.5, "s": "hello worl", "t": 250, "k": -5}


def test_constants_fold_in_declarations(run) -> None:
    decls = "x : INT := 3 * 4 + 1; y : INT;"
    prelude = "VAR_GLOBAL CONSTANT N : INT := 4; END_VAR"
    snap = run(decls, "y := N * 2;", prelude=prelude)
    assert snap == {"x": 13, "y": 8}


def test_string_literal_in_code_is_not_rewritten(run) -> None:
    snap = run("s : STRING;", "s := 'Color#Red (* no comment *) STRING[3]';")
    assert snap["s"] == "Color#Red (* no comment *) STRING[3]"


def test_typed_real_literal_without_a_point_is_a_real(run) -> None:
    # CODESYS "Constant: Typed Literal": the prefix gives the constant its type; REAL#7 is 7.0
    decls = "r : REAL; l : LREAL; x : INT := 7; s : REAL; i : INT; k : REAL; END_VAR VAR CONSTANT c : REAL := 7;"
    body = "r := REAL#7 / 2; l := LREAL#7 / 2; s := x / REAL#2; i := REAL_TO_INT(REAL#7 / 2); k := c / 2;"
    snap = run(decls, body)
    assert (snap["r"], snap["l"], snap["s"], snap["i"], snap["k"]) == (3.5, 3.5, 3.5, 4, 3.5)


def test_boolean_and_bitwise_constants_fold_in_declarations(run) -> None:
    # an initial value is any constant expression: AND, OR, XOR, NOT of constants too (IEC 61131-3 ed. 3)
    decls = (
        "a : BOOL := TRUE XOR FALSE; b : BOOL := TRUE AND NOT FALSE; c : BOOL := FALSE OR (TRUE & FALSE);"
        " d : BOOL := XOR(TRUE, TRUE); e : BOOL := NOT(IN := FALSE); END_VAR VAR CONSTANT ON : BOOL := TRUE;"
        " BOTH : BOOL := ON AND NOT FALSE;"
    )
    snap = run(decls, "")
    assert snap == {"a": True, "b": True, "c": False, "d": False, "e": True, "ON": True, "BOTH": True}
