"""Helpers for the ST compiler tests: run a snippet and read its variables."""

from collections.abc import Callable
from typing import Any

import pytest

from shopfloor_st import CompileError, compile_source


def _run(decls: str, body: str, scans: int = 1, cycle_ns: int = 10_000_000, prelude: str = "") -> dict[str, Any]:
    source = f"{prelude}\nPROGRAM Main\nVAR\n{decls}\nEND_VAR\n{body}\nEND_PROGRAM\n"
    instance = compile_source(source, "test.st").instantiate()
    for k in range(scans):
        instance.scan(k * cycle_ns)
    return instance.snapshot()


def _errors(source: str) -> list[str]:
    with pytest.raises(CompileError) as info:
        compile_source(source, "bad.st")
    return [str(d) for d in info.value.diagnostics]


@pytest.fixture
def run() -> Callable[..., dict[str, Any]]:
    """run(decls, body, scans=1, cycle_ns=10ms, prelude="") -> snapshot of PROGRAM Main after the scans."""
    return _run


@pytest.fixture
def errors() -> Callable[[str], list[str]]:
    """errors(source) -> the "FILE:LINE:COL: message" lines of the CompileError (file bad.st)."""
    return _errors
