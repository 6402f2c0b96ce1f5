"""Online change: carry the state of a running instance over to a new program revision.

Variables with the same name and type keep their values; structures and FB instances keep the members that
still match, recursively; arrays keep their values when shape and element type are unchanged. A RETAIN variable
must survive: if it disappears or changes type, the change is refused (IncompatibleChange) and the caller keeps
the old program running.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from shopfloor_st.context import Symbol
from shopfloor_st.errors import IncompatibleChange
from shopfloor_st.st_types import ArrayType, FbType, StructType, StType

if TYPE_CHECKING:
    from shopfloor_st.program import Instance, Program

__all__ = ["migrate", "type_signature"]


def type_signature(typ: StType) -> str:
    """A structural description: two types with the same signature hold the same values."""
    if isinstance(typ, StructType):
        inner = ", ".join(f"{f.name}: {type_signature(f.type)}" for f in typ.fields.values())
        return f"{typ.name}{{{inner}}}"
    if isinstance(typ, FbType):
        inner = ", ".join(
            f"{f.name}: {type_signature(f.type)}" for f in typ.members.values() if f.section != "VAR_TEMP"
        )
        return f"{typ.name}{{{inner}}}"
    if isinstance(typ, ArrayType):
        bounds = ", ".join(f"{lo}..{hi}" for lo, hi in typ.dims)
        return f"ARRAY[{bounds}] OF {type_signature(typ.elem)}"
    return str(typ)


def _carry(old_value: Any, old_type: StType, new_value: Any, new_type: StType) -> Any:
    """The value the new variable starts with: the old one where compatible, else (partly) the new initial value."""
    if type_signature(old_type) == type_signature(new_type):
        if isinstance(new_type, FbType) and new_type.standard is not None:
            for slot in type(new_value).__slots__:
                if slot != "_g":
                    setattr(new_value, slot, copy.deepcopy(getattr(old_value, slot)))
            return new_value
        if isinstance(new_type, FbType):
            _carry_members(old_value, old_type, new_value, new_type)
            return new_value
        return copy.deepcopy(old_value)
    if isinstance(old_type, ArrayType) and isinstance(new_type, ArrayType) and old_type.dims == new_type.dims:
        return _carry_elements(old_value, old_type, new_value, new_type, len(new_type.dims))
    if (
        isinstance(old_type, StructType | FbType)
        and type(old_type) is type(new_type)
        and old_type.name.upper() == new_type.name.upper()
    ):
        _carry_members(old_value, old_type, new_value, new_type)
    return new_value


def _carry_elements(old: list[Any], old_type: ArrayType, new: list[Any], new_type: ArrayType, depth: int) -> list[Any]:
    """Arrays of the same shape whose element type changed: carry element by element (structures, FBs)."""
    if depth > 1:
        return [_carry_elements(o, old_type, n, new_type, depth - 1) for o, n in zip(old, new, strict=True)]
    return [_carry(o, old_type.elem, n, new_type.elem) for o, n in zip(old, new, strict=True)]


def _members(typ: StType) -> dict[str, Symbol]:
    if isinstance(typ, StructType):
        return typ.fields
    if isinstance(typ, FbType):
        return {k: s for k, s in typ.members.items() if s.section != "VAR_TEMP"}
    return {}


def _carry_members(old_value: Any, old_type: StType, new_value: Any, new_type: StType) -> None:
    old_members = _members(old_type)
    for key, new_member in _members(new_type).items():
        old_member = old_members.get(key)
        if old_member is None:
            continue
        value = _carry(
            getattr(old_value, old_member.attr), old_member.type, getattr(new_value, new_member.attr), new_member.type
        )
        setattr(new_value, new_member.attr, value)


def _migrate_scope(old_symbols: dict[str, Symbol], old_obj: Any, new_symbols: dict[str, Symbol], new_obj: Any) -> None:
    for key, old in old_symbols.items():
        if old.section == "VAR_TEMP" or not old.retain:
            continue
        new = new_symbols.get(key)
        if new is None or new.section == "VAR_TEMP":
            raise IncompatibleChange(f"retained variable {old.name!r} would be lost")
        if type_signature(old.type) != type_signature(new.type):
            raise IncompatibleChange(f"retained variable {old.name!r} would change type from {old.type} to {new.type}")
    for key, new in new_symbols.items():
        old_symbol = old_symbols.get(key)
        if new.section == "VAR_TEMP" or old_symbol is None or old_symbol.section == "VAR_TEMP" or new.constant:
            continue
        value = _carry(getattr(old_obj, old_symbol.attr), old_symbol.type, getattr(new_obj, new.attr), new.type)
        setattr(new_obj, new.attr, value)


def migrate(old_instance: Instance, old_program: Program, new_instance: Instance, new_program: Program) -> None:
    """Fill `new_instance` (freshly instantiated) from `old_instance`; raises IncompatibleChange."""
    _migrate_scope(
        old_program._unit.globals_scope.symbols,
        old_instance._globals,
        new_program._unit.globals_scope.symbols,
        new_instance._globals,
    )
    if old_program.entrypoint.upper() != new_program.entrypoint.upper():
        retained = [s.name for s in old_program._scope.symbols.values() if s.retain]
        if retained:
            raise IncompatibleChange(
                f"entry program changes from {old_program.entrypoint} to {new_program.entrypoint}; "
                f"retained {retained[0]!r} would be lost"
            )
        return
    _migrate_scope(old_program._scope.symbols, old_instance._state, new_program._scope.symbols, new_instance._state)
