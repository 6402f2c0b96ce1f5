"""The slice of the Structured Text compiler's interface that the runtime relies on.

Structural types, so the scan engine, the servers and their tests name exactly what they use of `shopfloor_st`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class VariableInfoLike(Protocol):
    name: str
    type_name: str
    retain: bool


class InstanceLike(Protocol):
    def scan(self, now_ns: int) -> None: ...
    def get(self, path: str) -> Any: ...
    def set(self, path: str, value: Any) -> None: ...
    def snapshot(self) -> dict[str, Any]: ...


class ProgramLike(Protocol):
    revision: str
    entrypoint: str

    @property
    def variables(self) -> Mapping[str, Any]: ...
    def instantiate(self) -> Any: ...
    def migrate_from(self, old_instance: Any, old_program: Any) -> Any: ...


def find_variable(program: ProgramLike, name: str) -> str | None:
    """The declared spelling of `name` in the program (ST identifiers are case-insensitive), or None."""
    if name in program.variables:
        return name
    folded = name.casefold()
    for declared in program.variables:
        if declared.casefold() == folded:
            return declared
    return None


def retained_variables(program: ProgramLike) -> list[str]:
    return [name for name, info in program.variables.items() if getattr(info, "retain", False)]
