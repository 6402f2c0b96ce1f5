"""Malformed programs give diagnostics, never an internal error: mutations of a valid program, seeded."""

import random
import re

import pytest

from shopfloor_st import CompileError, compile_source

VALID = """
TYPE Valve : STRUCT Open : BOOL; Pos : REAL := 0.5; END_STRUCT; END_TYPE
TYPE Mode : (Idle, Run := 3); END_TYPE
FUNCTION Scale : REAL
VAR_INPUT raw : INT; k : REAL := 2.0; END_VAR
Scale := INT_TO_REAL(raw) * k;
END_FUNCTION
FUNCTION_BLOCK Pump
VAR_INPUT start : BOOL; END_VAR
VAR_OUTPUT running : BOOL; END_VAR
VAR t : TON; END_VAR
t(IN := start, PT := T#1s);
running := t.Q;
END_FUNCTION_BLOCK
PROGRAM Main
VAR
  a : ARRAY[1..3] OF INT := [1, 2(5)];
  v : Valve := (Open := TRUE);
  m : Mode;
  p : Pump;
  i : INT; r : REAL; s : STRING(10) := 'x';
END_VAR
FOR i := 1 TO 3 DO a[i] := a[i] * 2; END_FOR;
IF v.Open AND m = Idle THEN r := Scale(a[1], 2.0); ELSE r := 0.0; END_IF;
CASE i OF 1..3: m := Run; ELSE m := Idle; END_CASE;
p(start := r > 1.0);
WHILE i > 0 DO i := i - 1; END_WHILE;
s := CONCAT(s, 'y');
END_PROGRAM
"""

TOKENS = re.findall(r"T#\w+|\d+\.\d+|'[^']*'|\w+|:=|=>|\.\.|[^\s\w]", VALID)


def mutations(count: int) -> list[str]:
    rng = random.Random(61131)
    out = []
    for _ in range(count):
        tokens = list(TOKENS)
        for _ in range(rng.randint(1, 3)):
            where = rng.randrange(len(tokens))
            action = rng.choice(("drop", "dup", "swap", "insert"))
            if action == "drop":
                del tokens[where]
            elif action == "dup":
                tokens.insert(where, tokens[where])
            elif action == "swap":
                other = rng.randrange(len(tokens))
                tokens[where], tokens[other] = tokens[other], tokens[where]
            else:
                tokens.insert(where, rng.choice(TOKENS))
        out.append(" ".join(tokens).replace(" ; ", ";\n"))
    return out


def test_the_valid_program_compiles() -> None:
    compile_source(" ".join(TOKENS))


@pytest.mark.parametrize("source", mutations(400))
def test_mutated_program_gives_diagnostics_not_a_crash(source: str) -> None:
    try:
        program = compile_source(source, "m.st")
    except CompileError as exc:
        assert exc.diagnostics
        assert all("internal compiler error" not in d.message for d in exc.diagnostics), exc.diagnostics
        assert all(d.line >= 1 and d.col >= 1 for d in exc.diagnostics)
        return
    instance = program.instantiate()
    try:
        instance.scan(0)
    except Exception as exc:  # a mutated program may fault at run time, but only as a RuntimeFault
        assert type(exc).__name__ == "RuntimeFault", exc


@pytest.mark.parametrize(
    "source",
    [
        "",
        "garbage",
        "PROGRAM",
        "END_PROGRAM",
        "PROGRAM Main",
        "(* open comment",
        "'open string",
        "PROGRAM Main\n\x00\x01\nEND_PROGRAM",
    ],
)
def test_degenerate_sources(source: str) -> None:
    with pytest.raises(CompileError):
        compile_source(source)
