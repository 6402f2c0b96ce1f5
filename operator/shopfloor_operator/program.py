"""The program of a VirtualPLC: resolve its source, check the sha256 pin, compile it, name its revision."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from shopfloor_api.virtualplc import ProgramSpec
from shopfloor_st import CompileError, check_source, source_revision

CHECKED_SOURCES = 64  # distinct sources whose check is remembered (each entry keeps its source text)
SourceLookup = Callable[[str, str], str | None]  # (configmap name, key) -> text, None when missing


@dataclass(frozen=True)
class ProgramCheck:
    """The outcome: a revision when the program may be deployed, else a reason and message for ProgramValid."""

    revision: str | None
    source: str
    entrypoint: str
    reason: str  # Compiled | CompileError | ChecksumMismatch | SourceNotFound
    message: str

    @property
    def valid(self) -> bool:
        return self.revision is not None


@functools.lru_cache(maxsize=CHECKED_SOURCES)
def compile_errors(source: str, entrypoint: str) -> str | None:
    """Every compile error as `line:col: message`, one per line, or None. Memoised on the exact source: a fleet
    running one program is checked once, not once per PLC and pass. A check only: nothing of the program runs in
    the operator's process."""
    try:
        check_source(source, "program.st", entrypoint or None)
    except CompileError as error:
        return "\n".join(
            f"{d.line}:{d.col}: {d.message}" for d in error.diagnostics if getattr(d, "severity", "error") == "error"
        )
    return None


def check_program(program: ProgramSpec, lookup: SourceLookup) -> ProgramCheck:
    if program.source is not None:
        source = program.source
    else:
        assert program.config_map_ref is not None  # the model guarantees one of the two
        ref = program.config_map_ref
        found = lookup(ref.name, ref.key)
        if found is None:
            message = f"ConfigMap {ref.name} has no key {ref.key} (or does not exist)"
            return ProgramCheck(None, "", program.entrypoint, "SourceNotFound", message)
        source = found
    revision = source_revision(source)
    pinned = program.pinned_revision
    if pinned is not None and pinned != revision:
        message = f"sha256 pin {pinned} does not match the source ({revision}); nothing deployed"
        return ProgramCheck(None, source, program.entrypoint, "ChecksumMismatch", message)
    error = compile_errors(source, program.entrypoint)
    if error is not None:
        return ProgramCheck(None, source, program.entrypoint, "CompileError", error)
    return ProgramCheck(revision, source, program.entrypoint, "Compiled", f"revision {revision} compiles")
