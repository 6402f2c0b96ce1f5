"""The public face of a compiled program: `compile_source`, `Program`, `Instance`, `VariableInfo`."""

from __future__ import annotations

import re
import sys
import traceback
from dataclasses import dataclass
from typing import Any

from shopfloor_st.compiler import CompiledUnit, compile_unit
from shopfloor_st.context import Scope, Symbol, is_elementary
from shopfloor_st.errors import CompileError, Diagnostic, RuntimeFault
from shopfloor_st.revision import source_revision
from shopfloor_st.st_types import ArrayType, Elementary, EnumType, FbType, StringType, StructType, StType
from shopfloor_st.values import coerce, to_json

__all__ = ["Instance", "Program", "VariableInfo", "compile_source"]


@dataclass(frozen=True)
class VariableInfo:
    """A variable of the entry program (or a global), as other components see it."""

    name: str
    type_name: str  # "INT", "REAL", "STRING(20)", "ARRAY[1..3] OF INT", a structure or FB type name
    section: str  # VAR, VAR_INPUT, VAR_OUTPUT, VAR_IN_OUT, VAR_TEMP, VAR_GLOBAL
    retain: bool
    constant: bool
    type: StType

    @property
    def is_elementary(self) -> bool:
        """BOOL, integers, bit strings, REAL/LREAL, TIME, STRING and enumerations (one value, no members)."""
        return is_elementary(self.type)

    @property
    def iec_type(self) -> str | None:
        """The elementary IEC type ("INT", "REAL", "STRING", ...; enumerations are "INT"), None for others."""
        if isinstance(self.type, Elementary):
            return self.type.name
        if isinstance(self.type, StringType):
            return "STRING"
        if isinstance(self.type, EnumType):
            return "INT"
        return None


def _info(symbol: Symbol) -> VariableInfo:
    return VariableInfo(symbol.name, str(symbol.type), symbol.section, symbol.retain, symbol.constant, symbol.type)


_PATH_PART = re.compile(r"\s*(?:\.?\s*([A-Za-z_]\w*)|\[([^\]]*)\])")


class Program:
    """A compiled, checked program. Immutable; `instantiate()` gives running state."""

    def __init__(self, unit: CompiledUnit, source: str, entrypoint: str, filename: str) -> None:
        self._unit = unit
        self.source = source
        self.filename = filename
        self.revision = source_revision(source)
        self.entrypoint = entrypoint
        self.warnings: list[Diagnostic] = unit.warnings
        self._class_name, self._scope = unit.programs[entrypoint.upper()]
        self.variables: dict[str, VariableInfo] = {
            s.name: _info(s) for s in self._scope.symbols.values() if s.section != "VAR_TEMP"
        }
        self.globals: dict[str, VariableInfo] = {s.name: _info(s) for s in unit.globals_scope.symbols.values()}

    @property
    def python_source(self) -> str:
        """The generated Python (for maintainers debugging the compiler)."""
        return self._unit.python_source

    def instantiate(self) -> Instance:
        return Instance(self)

    def migrate_from(self, old_instance: Instance, old_program: Program) -> Instance:
        """Online change: a new instance carrying over what can be carried over (see `migrate`)."""
        from shopfloor_st.migrate import migrate

        new_instance = self.instantiate()
        migrate(old_instance, old_program, new_instance, self)
        return new_instance


class Instance:
    """The state of one running program: its variables, FB instances and the globals."""

    def __init__(self, program: Program) -> None:
        self.program = program
        namespace = program._unit.namespace
        self._globals = namespace["_Globals"]()
        self._state = namespace[program._class_name](self._globals)
        self._body = self._state._st_body

    # ---- running -------------------------------------------------------------------------------------------------

    def scan(self, now_ns: int) -> None:
        """Run one scan; timers see `now_ns`. Raises RuntimeFault naming the ST line on a fault."""
        try:
            self._body(now_ns)
        except RuntimeFault:
            raise
        except RecursionError:
            raise RuntimeFault("recursion too deep", *self._position(sys.exc_info()[2])) from None
        except Exception as exc:  # a Python error inside generated code is a PLC fault at that ST line
            raise RuntimeFault(f"{type(exc).__name__}: {exc}", *self._position(exc.__traceback__)) from None

    def _position(self, tb: Any) -> tuple[int, int]:
        found = (0, 0)
        for frame, lineno in traceback.walk_tb(tb):
            if frame.f_code.co_filename == self.program._unit.code_filename:
                found = self.program._unit.line_map.get(lineno, found)
        return found

    # ---- variables -----------------------------------------------------------------------------------------------

    def _resolve(self, path: str) -> tuple[Any, Any, StType, str]:
        """(container, key, type, canonical path) for a path such as `Tank.Level`, `Arr[2]`, `M[1, 2]`, `Fb.Q`."""
        pos, canonical = 0, ""
        container: Any = None
        key: Any = None
        typ: StType | None = None
        scope: Scope = self.program._scope
        while pos < len(path):
            match = _PATH_PART.match(path, pos)
            if match is None or match.end() == pos:
                raise KeyError(f"{path}: cannot read the path at {path[pos:]!r}")
            pos = match.end()
            name, index_text = match.group(1), match.group(2)
            current: Any = None
            if container is not None:
                current = getattr(container, key) if isinstance(key, str) else container[key]
            if name is not None:
                if typ is None:
                    symbol = scope.symbols.get(name.upper())
                    if symbol is None or symbol.section == "VAR_TEMP":
                        symbol = self.program._unit.globals_scope.symbols.get(name.upper())
                        container = self._globals
                    else:
                        container = self._state
                    if symbol is None:
                        raise KeyError(f"{path}: no variable {name!r}")
                else:
                    members = (
                        typ.fields if isinstance(typ, StructType) else typ.members if isinstance(typ, FbType) else None
                    )
                    symbol = members.get(name.upper()) if members else None
                    if symbol is None:
                        raise KeyError(f"{path}: {typ} has no member {name!r}")
                    container = current
                key, typ = symbol.attr, symbol.type
                canonical += ("." if canonical else "") + symbol.name
            else:
                if not isinstance(typ, ArrayType):
                    raise KeyError(f"{path}: {canonical} is not an array")
                indices = [int(i) for i in index_text.split(",")]
                if len(indices) > len(typ.dims):
                    raise KeyError(f"{path}: {canonical} has {len(typ.dims)} dimension(s)")
                for dim, index in enumerate(indices):
                    offset = self._offset(path, typ, index, dim)
                    if dim < len(indices) - 1:
                        current = current[offset]
                    else:
                        container, key = current, offset
                canonical += f"[{index_text.replace(' ', '')}]"
                typ = typ.peel(len(indices))
        if typ is None:
            raise KeyError(f"{path}: empty path")
        return container, key, typ, canonical

    @staticmethod
    def _offset(path: str, typ: ArrayType, index: int, dim: int) -> int:
        low, high = typ.dims[dim]
        if not low <= index <= high:
            raise KeyError(f"{path}: index {index} out of range {low}..{high}")
        return index - low

    def get(self, path: str) -> Any:
        """The value at a path: elementary values as Python values (enumerations as their integer)."""
        container, key, typ, _ = self._resolve(path)
        value = getattr(container, key) if isinstance(key, str) else container[key]
        return value if is_elementary(typ) else to_json(value, typ)

    def set(self, path: str, value: Any) -> None:
        """Set an elementary variable; coerces and range-checks (ValueError naming the variable)."""
        container, key, typ, canonical = self._resolve(path)
        if not is_elementary(typ):
            raise ValueError(f"{canonical}: only elementary variables can be set, not {typ}")
        checked = coerce(value, typ, canonical)
        if isinstance(key, str):
            setattr(container, key, checked)
        else:
            container[key] = checked

    def snapshot(self) -> dict[str, Any]:
        """The entry program's variables, JSON-ready (see `values.to_json`)."""
        state = self._state
        return {
            s.name: to_json(getattr(state, s.attr), s.type)
            for s in self.program._scope.symbols.values()
            if s.section != "VAR_TEMP"
        }


def compile_source(source: str, filename: str = "<program>", entrypoint: str | None = None) -> Program:
    """Compile ST source; raises CompileError with every diagnostic found."""
    try:
        unit = compile_unit(source, filename)
    except CompileError:
        raise
    except Exception as exc:  # a compiler bug must not take a runtime down: report it as a diagnostic
        message = f"internal compiler error (please report): {type(exc).__name__}: {exc}"
        raise CompileError([Diagnostic(filename, 1, 1, message)]) from exc
    names = {key: cls[1].pou_name for key, cls in unit.programs.items()}
    if entrypoint is not None:
        if entrypoint.upper() not in names:
            known = ", ".join(names.values()) or "none"
            raise CompileError([Diagnostic(filename, 1, 1, f"no PROGRAM named {entrypoint!r} (programs: {known})")])
        return Program(unit, source, names[entrypoint.upper()], filename)
    if len(names) != 1:
        message = (
            "no PROGRAM in the source"
            if not names
            else f"several PROGRAMs ({', '.join(names.values())}); choose an entrypoint"
        )
        raise CompileError([Diagnostic(filename, 1, 1, message)])
    return Program(unit, source, next(iter(names.values())), filename)
