"""Variable paths (`Tank.Level`, `Arr[2]`, `M[1, 2]`, `Fb.Q`, a global) resolved once into access steps."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from shopfloor_st.context import Scope, iec_type_of, is_elementary
from shopfloor_st.st_types import ArrayType, FbType, StructType, StType
from shopfloor_st.values import coerce

__all__ = ["VariablePath", "resolve_path"]

_PATH_PART = re.compile(r"\s*(?:\.?\s*([A-Za-z_]\w*)|\[([^\]]*)\])")


@dataclass(frozen=True)
class VariablePath:
    """Where a variable lives: in the entry program or the globals, then attribute names and list offsets."""

    canonical: str  # the path with declared spellings, e.g. "Tank.Level"
    type: StType
    in_globals: bool
    steps: tuple[str | int, ...]

    @property
    def is_elementary(self) -> bool:
        return is_elementary(self.type)

    @property
    def iec_type(self) -> str | None:
        """As `VariableInfo.iec_type`: "INT", "REAL", "STRING", ... for elementary paths, else None."""
        return iec_type_of(self.type)

    def read(self, root: Any) -> Any:
        obj = root
        for step in self.steps:
            obj = obj[step] if isinstance(step, int) else getattr(obj, step)
        return obj

    def write(self, root: Any, value: Any) -> None:
        """Coerce and range-check `value` (ValueError naming the variable), then store it."""
        if not self.is_elementary:
            raise ValueError(f"{self.canonical}: only elementary variables can be set, not {self.type}")
        self.write_checked(root, coerce(value, self.type, self.canonical))

    def write_checked(self, root: Any, value: Any) -> None:
        obj = root
        for step in self.steps[:-1]:
            obj = obj[step] if isinstance(step, int) else getattr(obj, step)
        last = self.steps[-1]
        if isinstance(last, int):
            obj[last] = value
        else:
            setattr(obj, last, value)


def resolve_path(path: str, program_scope: Scope, globals_scope: Scope) -> VariablePath:
    """Resolve a path against the entry program's variables, then the globals; KeyError says what is wrong."""
    pos, canonical = 0, ""
    steps: list[str | int] = []
    typ: StType | None = None
    in_globals = False
    while pos < len(path):
        match = _PATH_PART.match(path, pos)
        if match is None or match.end() == pos:
            raise KeyError(f"{path}: cannot read the path at {path[pos:]!r}")
        pos = match.end()
        name, index_text = match.group(1), match.group(2)
        if name is not None:
            if typ is None:
                symbol = program_scope.symbols.get(name.upper())
                if symbol is None or symbol.section == "VAR_TEMP":
                    symbol, in_globals = globals_scope.symbols.get(name.upper()), True
            else:
                members = typ.fields if isinstance(typ, StructType) else typ.members if isinstance(typ, FbType) else {}
                symbol = members.get(name.upper())
            if symbol is None or symbol.section == "VAR_TEMP":
                raise KeyError(
                    f"{path}: no variable {name!r}" if typ is None else f"{path}: {typ} has no member {name!r}"
                )
            steps.append(symbol.attr)
            typ = symbol.type
            canonical += ("." if canonical else "") + symbol.name
            continue
        if not isinstance(typ, ArrayType):
            raise KeyError(f"{path}: {canonical or 'the path'} is not an array")
        try:
            indices = [int(i) for i in index_text.split(",")]
        except ValueError:
            raise KeyError(f"{path}: array indices must be integers") from None
        if len(indices) > len(typ.dims):
            raise KeyError(f"{path}: {canonical} has {len(typ.dims)} dimension(s)")
        for (low, high), index in zip(typ.dims, indices, strict=False):
            if not low <= index <= high:
                raise KeyError(f"{path}: index {index} out of range {low}..{high}")
            steps.append(index - low)
        canonical += f"[{index_text.replace(' ', '')}]"
        typ = typ.peel(len(indices))
    if typ is None:
        raise KeyError(f"{path}: empty path")
    return VariablePath(canonical, typ, in_globals, tuple(steps))
