"""What `shopfloor-vplc check` and `simulate` do, so the CLI is a thin wrapper.

`simulate` runs on virtual time: scan k (counting from 0) sees now = k * cycle_time_ns, so the first scan runs at
t = 0 and a TON with PT = 30ms on a 10ms cycle turns on in the scan at t = 30ms (the fourth scan).
"""

from __future__ import annotations

from typing import Any

from shopfloor_st.errors import CompileError, Diagnostic
from shopfloor_st.program import check_source, compile_source
from shopfloor_st.values import parse_text

__all__ = ["check", "simulate"]


def check(source: str, filename: str = "<program>", entrypoint: str | None = None) -> list[Diagnostic]:
    """Every error and warning of the source, in order; an empty list means it compiles cleanly."""
    try:
        return check_source(source, filename, entrypoint)
    except CompileError as exc:
        return exc.diagnostics


def simulate(
    source: str,
    filename: str = "<program>",
    cycles: int = 1,
    cycle_time_ns: int = 10_000_000,
    overrides: dict[str, str] | None = None,
    entrypoint: str | None = None,
) -> dict[str, Any]:
    """Run `cycles` scans on virtual time and return the snapshot after the last one.

    `overrides` maps variable paths to text values parsed per the variable's type (TRUE/FALSE, integers in any
    base, reals, T#... or milliseconds) and applied before the first scan. Raises CompileError, ValueError (a bad
    override, naming the variable) or RuntimeFault.
    """
    program = compile_source(source, filename, entrypoint)
    instance = program.instantiate()
    for path, text in (overrides or {}).items():
        try:
            where = instance.path(path)
        except KeyError as exc:
            raise ValueError(exc.args[0]) from None
        instance.write(where, parse_text(text, where.type, where.canonical))
    for cycle in range(cycles):
        instance.scan(cycle * cycle_time_ns)
    return instance.snapshot()
