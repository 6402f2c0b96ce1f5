"""The slice of the Structured Text compiler's interface that the runtime relies on.

Structural types, so the scan engine, the servers and their tests name exactly what they use of `shopfloor_st`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from shopfloor_st import compile_source


class VariableInfoLike(Protocol):
    name: str
    type_name: str
    retain: bool


class InstanceLike(Protocol):
    def scan(self, now_ns: int) -> None: ...
    def get(self, path: str) -> Any: ...
    def set(self, path: str, value: Any) -> None: ...
    def path(self, path: str) -> Any: ...
    def read(self, where: Any) -> Any: ...
    def write(self, where: Any, value: Any) -> None: ...
    def snapshot(self) -> dict[str, Any]: ...
    def retained_values(self) -> dict[str, Any]: ...
    def load_retained(self, values: dict[str, Any]) -> list[str]: ...
    def capture_state(self, now_ns: int) -> bytes: ...
    def restore_state(self, image: bytes, now_ns: int) -> None: ...


class ResolvedAccess:
    """Reads and writes of one instance by variable name, each name resolved to a path once: the scan's hot path."""

    def __init__(self, instance: InstanceLike) -> None:
        self.instance = instance
        self._paths: dict[str, Any] = {}

    def _where(self, name: str) -> Any:
        where = self._paths.get(name)
        if where is None:
            where = self._paths[name] = self.instance.path(name)
        return where

    def get(self, name: str) -> Any:
        return self.instance.read(self._where(name))

    def set(self, name: str, value: Any) -> None:
        self.instance.write(self._where(name), value)


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
    """RETAIN variables of the entry program and the globals."""
    scopes = [program.variables, getattr(program, "globals", {})]
    return [name for scope in scopes for name, info in scope.items() if getattr(info, "retain", False)]


def compile_program(source: str, filename: str, entrypoint: str | None) -> ProgramLike:
    program: ProgramLike = compile_source(source, filename=filename, entrypoint=entrypoint or None)
    return program
