"""The public face of a compiled program: `compile_source`, `Program`, `Instance`, `VariableInfo`."""

from __future__ import annotations

import sys
import traceback
from dataclasses import dataclass
from typing import Any

from shopfloor_st.compiler import CompiledUnit, compile_unit
from shopfloor_st.context import Symbol, iec_type_of, is_elementary
from shopfloor_st.errors import CompileError, Diagnostic, RuntimeFault
from shopfloor_st.paths import VariablePath, resolve_path
from shopfloor_st.revision import source_revision
from shopfloor_st.st_types import StType
from shopfloor_st.values import from_json, to_json

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
        return iec_type_of(self.type)


def _info(symbol: Symbol) -> VariableInfo:
    return VariableInfo(symbol.name, str(symbol.type), symbol.section, symbol.retain, symbol.constant, symbol.type)


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

    def abort(self) -> None:
        """Make a running scan stop with RuntimeFault("scan aborted (watchdog)") at its next loop iteration.

        Safe to call from another thread (the watchdog's). Sticky: every later scan that reaches a loop faults too,
        until `resume()`; straight-line code has no loop to stop in and ends by itself.
        """
        self._globals._abort = True

    def resume(self) -> None:
        self._globals._abort = False

    # ---- variables -----------------------------------------------------------------------------------------------

    def path(self, path: str) -> VariablePath:
        """Resolve a variable path once (KeyError if it names nothing); read/write it with `read`/`write`."""
        return resolve_path(path, self.program._scope, self.program._unit.globals_scope)

    def read(self, where: VariablePath) -> Any:
        """The value at a resolved path, as `get` returns it."""
        value = where.read(self._globals if where.in_globals else self._state)
        return value if where.is_elementary else to_json(value, where.type)

    def write(self, where: VariablePath, value: Any) -> None:
        """Set the elementary variable at a resolved path, as `set` does."""
        where.write(self._globals if where.in_globals else self._state, value)

    def get(self, path: str) -> Any:
        """The value at a path: elementary values as Python values (enumerations as their integer),
        arrays/structures/FB instances JSON-ready."""
        return self.read(self.path(path))

    def set(self, path: str, value: Any) -> None:
        """Set an elementary variable; coerces and range-checks (ValueError naming the variable)."""
        self.write(self.path(path), value)

    def retained_values(self) -> dict[str, Any]:
        """JSON-ready values of every RETAIN variable (entry program and globals), for a checkpoint."""
        out = {s.name: to_json(getattr(self._globals, s.attr), s.type) for s in self._retained(globals_=True)}
        out.update({s.name: to_json(getattr(self._state, s.attr), s.type) for s in self._retained(globals_=False)})
        return out

    def load_retained(self, values: dict[str, Any]) -> list[str]:
        """Restore a checkpoint made by `retained_values`; returns the reasons for entries that could not be used
        (unknown, no longer retained, or of another shape), which are skipped."""
        problems = []
        for name, data in values.items():
            try:
                where = self.path(name)
                symbol_retained = any(s.name == where.canonical for s in self._retained(where.in_globals))
                if not symbol_retained:
                    raise ValueError(f"{name}: not a retained variable")
                root = self._globals if where.in_globals else self._state
                where.write_checked(root, from_json(data, where.type, where.read(root), where.canonical))
            except (KeyError, ValueError) as exc:
                problems.append(str(exc.args[0]))
        return problems

    def _retained(self, globals_: bool) -> list[Symbol]:
        scope = self.program._unit.globals_scope if globals_ else self.program._scope
        return [s for s in scope.symbols.values() if s.retain and s.section != "VAR_TEMP"]

    # ---- hot standby ---------------------------------------------------------------------------------------------

    def capture_state(self, now_ns: int) -> bytes:
        """The whole state (every variable, FB instance and global, private FB fields too) as a state image for a
        standby running the same revision; scan-clock times are carried relative to `now_ns` (see `state_image`)."""
        from shopfloor_st.state_image import capture

        return capture(self, now_ns)

    def restore_state(self, image: bytes, now_ns: int) -> None:
        """Take over the state in a `capture_state` image, timers rebased onto this clock's `now_ns`.

        Raises StateImageError (a ValueError) saying why for an image of another revision or layout, or a truncated
        or corrupt one; the instance is then untouched.
        """
        from shopfloor_st.state_image import restore

        restore(self, image, now_ns)

    def snapshot(self) -> dict[str, Any]:
        """The entry program's variables, JSON-ready (see `values.to_json`)."""
        state = self._state
        return {
            s.name: to_json(getattr(state, s.attr), s.type)
            for s in self.program._scope.symbols.values()
            if s.section != "VAR_TEMP"
        }


def _entry_program(unit: CompiledUnit, filename: str, entrypoint: str | None) -> str:
    """The POU name of the program to run: `entrypoint`, or the only PROGRAM; CompileError otherwise."""
    names = {key: cls[1].pou_name for key, cls in unit.programs.items()}
    if entrypoint is not None:
        if entrypoint.upper() not in names:
            known = ", ".join(names.values()) or "none"
            raise CompileError([Diagnostic(filename, 1, 1, f"no PROGRAM named {entrypoint!r} (programs: {known})")])
        return names[entrypoint.upper()]
    if len(names) != 1:
        message = (
            "no PROGRAM in the source"
            if not names
            else f"several PROGRAMs ({', '.join(names.values())}); choose an entrypoint"
        )
        raise CompileError([Diagnostic(filename, 1, 1, message)])
    return next(iter(names.values()))


def _unit(source: str, filename: str, execute: bool) -> CompiledUnit:
    try:
        return compile_unit(source, filename, execute)
    except CompileError:
        raise
    except Exception as exc:  # a compiler bug must not take a runtime down: report it as a diagnostic
        message = f"internal compiler error (please report): {type(exc).__name__}: {exc}"
        raise CompileError([Diagnostic(filename, 1, 1, message)]) from exc


def compile_source(source: str, filename: str = "<program>", entrypoint: str | None = None) -> Program:
    """Compile ST source; raises CompileError with every diagnostic found."""
    unit = _unit(source, filename, execute=True)
    return Program(unit, source, _entry_program(unit, filename, entrypoint), filename)


def check_source(source: str, filename: str = "<program>", entrypoint: str | None = None) -> list[Diagnostic]:
    """What `compile_source` would say, without running any of the translation: the warnings, or CompileError."""
    unit = _unit(source, filename, execute=False)
    _entry_program(unit, filename, entrypoint)
    return list(unit.warnings)
