"""Structured Text compiler benchmarks: compile time of a 5,000-line program and ns per executed statement.

Run: .venv/bin/python bench/bench_st.py
Goals (issue 5): compile 5,000 lines in under 1 s; at most ~100 ns per simple statement (`x := x + 1;` on an INT),
printed next to the same statement in plain Python in the same run.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from shopfloor_st import compile_source
from shopfloor_st.parse import parse_program
from shopfloor_st.preprocess import preprocess

STATEMENTS = 1000
REPEATS = 200


def generated_program(lines: int) -> str:
    """A program of about `lines` lines mixing the constructs a real PLC program uses."""
    head = [
        "TYPE Valve : STRUCT Open : BOOL; Pos : REAL; END_STRUCT; END_TYPE",
        "FUNCTION Scale : REAL",
        "VAR_INPUT raw : INT; lo : REAL; hi : REAL; END_VAR",
        "Scale := lo + (hi - lo) * INT_TO_REAL(raw) / 32767.0;",
        "END_FUNCTION",
        "PROGRAM Main",
        "VAR",
        "  i : INT; n : DINT; r : REAL; b : BOOL; t : TON; c : CTU;",
        "  arr : ARRAY[1..100] OF INT; v : ARRAY[1..10] OF Valve;",
        "END_VAR",
    ]
    block = [
        "n := n + 1;",
        "IF n MOD 7 = 0 THEN",
        "  r := r + Scale(i, 0.0, 100.0);",
        "ELSIF n > 1000 THEN",
        "  n := 0;",
        "ELSE",
        "  b := NOT b;",
        "END_IF;",
        "FOR i := 1 TO 10 DO",
        "  arr[i] := arr[i] + i * 2;",
        "END_FOR;",
        "CASE i OF",
        "  1..5: v[1].Pos := r;",
        "  6, 7: v[2].Open := b;",
        "ELSE",
        "  i := 0;",
        "END_CASE;",
        "t(IN := b, PT := T#100ms);",
        "c(CU := t.Q, PV := 10);",
        "WHILE i < 3 DO i := i + 1; END_WHILE;",
    ]
    body: list[str] = []
    while len(head) + len(body) + len(block) + 1 <= lines:
        body.extend(block)
    body += ["n := n + 1;"] * (lines - len(head) - len(body) - 1)
    return "\n".join([*head, *body, "END_PROGRAM"])


def best_of(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_compile() -> None:
    source = generated_program(5000)
    count = source.count("\n") + 1
    parse_s = best_of(lambda: parse_program(preprocess(source)), 3)
    compile_s = best_of(lambda: compile_source(source, "bench.st"), 3)
    median = statistics.median(best_of(lambda: compile_source(source, "bench.st"), 1) for _ in range(3))
    print(
        f"compile: {count} lines  parse {parse_s * 1000:.0f} ms  full compile best {compile_s * 1000:.0f} ms "
        f"median {median * 1000:.0f} ms  (goal < 1000 ms: {'met' if compile_s < 1 else 'MISSED'})"
    )


def plain_python(statement: str, setup: str) -> Callable[[], None]:
    """The same statements as plain Python in one function, for the ratio."""
    lines = ["def run():", f"    {setup}"] + [f"    {statement}"] * STATEMENTS
    namespace: dict[str, object] = {}
    exec(compile("\n".join(lines), "<plain>", "exec"), namespace)
    return namespace["run"]  # type: ignore[return-value]


def bench_statement(label: str, decls: str, st_statement: str, py_statement: str, py_setup: str) -> float:
    source = f"PROGRAM Main\nVAR {decls} END_VAR\n" + "\n".join([st_statement] * STATEMENTS) + "\nEND_PROGRAM\n"
    instance = compile_source(source).instantiate()
    scan = instance.scan
    st_s = best_of(lambda: [scan(0) for _ in range(REPEATS)], 5) / REPEATS / STATEMENTS
    plain = plain_python(py_statement, py_setup)
    py_s = best_of(lambda: [plain() for _ in range(REPEATS)], 5) / REPEATS / STATEMENTS
    print(
        f"{label:<34} ST {st_s * 1e9:6.1f} ns/stmt   plain Python {py_s * 1e9:5.1f} ns/stmt   ratio {st_s / py_s:4.1f}x"
    )
    return st_s


def bench_loop() -> None:
    """A FOR loop: bounds, the wrap of the control variable and the watchdog's abort check, per iteration."""
    source = "PROGRAM Main\nVAR i : INT; s : DINT; END_VAR\nFOR i := 1 TO 1000 DO s := s + i; END_FOR;\nEND_PROGRAM"
    scan = compile_source(source).instantiate().scan
    st_s = best_of(lambda: [scan(0) for _ in range(REPEATS)], 5) / REPEATS / 1000
    namespace: dict[str, object] = {}
    exec("def run():\n    s = 0\n    for i in range(1, 1001):\n        s = s + i\n", namespace)
    plain: Callable[[], None] = namespace["run"]  # type: ignore[assignment]
    py_s = best_of(lambda: [plain() for _ in range(REPEATS)], 5) / REPEATS / 1000
    print(
        f"{'FOR loop iteration (s := s + i)':<34} ST {st_s * 1e9:6.1f} ns/iter   "
        f"plain Python {py_s * 1e9:5.1f} ns/iter   ratio {st_s / py_s:4.1f}x"
    )


def main() -> None:
    bench_compile()
    int_ns = bench_statement("x := x + 1; (INT)", "x : INT;", "x := x + 1;", "x = x + 1", "x = 0")
    bench_statement("d := d + 1; (DINT)", "d : DINT;", "d := d + 1;", "x = x + 1", "x = 0")
    bench_statement("r := r + 0.5; (REAL, float32)", "r : REAL;", "r := r + 0.5;", "x = x + 0.5", "x = 0.0")
    bench_statement("l := l * 1.0001; (LREAL)", "l : LREAL := 1.0;", "l := l * 1.0001;", "x = x * 1.0001", "x = 1.0")
    bench_statement(
        "a[i] := a[i] + 1; (checked index)",
        "a : ARRAY[1..10] OF DINT; i : INT := 3;",
        "a[i] := a[i] + 1;",
        "a[i] = a[i] + 1",
        "a = [0] * 10; i = 3",
    )
    bench_statement(
        "b := x > 5 AND NOT b; (BOOL)",
        "b : BOOL; x : INT;",
        "b := x > 5 AND NOT b;",
        "b = x > 5 and not b",
        "b = False; x = 0",
    )
    bench_loop()
    print(f"simple statement goal <= 100 ns: {'met' if int_ns <= 100e-9 else 'MISSED'} ({int_ns * 1e9:.1f} ns)")


if __name__ == "__main__":
    main()
