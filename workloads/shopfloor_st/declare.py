"""Declarations: named types (TYPE ... END_TYPE), variable symbols and the Python code of initial values."""

from __future__ import annotations

from math import prod
from typing import Any

from shopfloor_st import model as m
from shopfloor_st.context import Context, Scope, Symbol
from shopfloor_st.exprgen import literal_code
from shopfloor_st.st_types import (
    ELEMENTARY,
    ArrayType,
    Elementary,
    EnumType,
    FbType,
    LiteralType,
    StringType,
    StructType,
    StType,
)
from shopfloor_st.values import coerce

__all__ = ["declare_types", "declare_vars", "default_code", "init_code"]


def declare_types(ctx: Context, decls: list[m.TypeDecl]) -> None:
    """Enumerations first (their values may size arrays), then aliases and structures, in any order of use."""
    pending: dict[str, m.TypeDecl] = {}
    for decl in decls:
        key = decl.name.upper()
        if decl.init is not None:
            where = decl.init
            ctx.error(
                where.line, where.col, "initial values in TYPE declarations are not supported; initialise the variable"
            )
        if key in ctx.types or key in ELEMENTARY or key in ctx.fb_types:
            ctx.error(decl.line, decl.col, f"duplicate declaration of type {decl.name!r}")
            continue
        if isinstance(decl.type_ref, m.EnumTypeRef):
            ctx.types[key] = _enum(ctx, decl.name, decl.type_ref)
        elif isinstance(decl.type_ref, m.StructTypeRef):
            ctx.types[key] = StructType(decl.name)
            ctx.struct_classes[key] = f"_S_{decl.name}"
            pending[key] = decl
        else:
            pending[key] = decl
    resolving: set[str] = set()

    def resolve(key: str) -> None:
        decl = pending.pop(key, None)
        if decl is None:
            return
        resolving.add(key)
        for name in _referenced_names(decl.type_ref):
            if name in pending and name not in resolving:
                resolve(name)
        if isinstance(decl.type_ref, m.StructTypeRef):
            struct = ctx.types[key]
            assert isinstance(struct, StructType)
            for field in decl.type_ref.fields:
                ftype = ctx.resolve_type(field.type_ref)
                if field.name.upper() in struct.fields:
                    ctx.error(field.line, field.col, f"duplicate field {field.name!r} in {decl.name}")
                elif ftype is not None:
                    if isinstance(ftype, FbType):
                        ctx.error(field.line, field.col, "structures cannot hold function block instances")
                    struct.fields[field.name.upper()] = Symbol(
                        field.name, ftype, line=field.line, col=field.col, decl=field
                    )
        else:
            resolved = ctx.resolve_type(decl.type_ref)
            if resolved is not None:
                ctx.types[key] = resolved
        resolving.discard(key)

    for key in list(pending):
        resolve(key)


def _referenced_names(ref: m.TypeRef) -> list[str]:
    if isinstance(ref, m.NamedTypeRef):
        return [ref.name.upper()]
    if isinstance(ref, m.ArrayTypeRef):
        return _referenced_names(ref.elem)
    if isinstance(ref, m.StructTypeRef):
        return [n for f in ref.fields for n in _referenced_names(f.type_ref)]
    return []


def _enum(ctx: Context, name: str, ref: m.EnumTypeRef) -> EnumType:
    enum = EnumType(name)
    next_value = 0
    for value_name, expr, line, col in ref.values:
        if expr is not None:
            value = ctx.const_int(expr, None)
            next_value = value if value is not None else next_value
        key = value_name.upper()
        if key in enum.values:
            ctx.error(line, col, f"duplicate value {value_name!r} in {name}")
            continue
        enum.values[key] = next_value
        enum.spelling[key] = value_name
        ctx.enum_values.setdefault(key, []).append(enum)
        next_value += 1
    return enum


def declare_vars(ctx: Context, scope: Scope, decls: list[m.VarDecl], ref_for: dict[str, str]) -> None:
    """Add symbols for `decls` to the scope; `ref_for` maps a section to the Python prefix of its variables."""
    for decl in decls:
        key = decl.name.upper()
        if key in scope.symbols:
            ctx.error(decl.line, decl.col, f"duplicate declaration of {decl.name!r}")
            continue
        if decl.section == "VAR_EXTERNAL":
            if key not in scope.globals:
                ctx.error(decl.line, decl.col, f"VAR_EXTERNAL {decl.name!r} has no VAR_GLOBAL")
            continue
        typ = ctx.resolve_type(decl.type_ref, scope)
        if typ is None:
            continue
        symbol = Symbol(
            decl.name, typ, decl.section, decl.retain, decl.constant, line=decl.line, col=decl.col, decl=decl
        )
        symbol.ref = ref_for.get(decl.section, ref_for["VAR"]) + symbol.attr
        if decl.constant:
            if decl.init is None:
                ctx.error(decl.line, decl.col, f"CONSTANT {decl.name!r} needs an initial value")
            elif isinstance(decl.init, m.ExprInit):
                folded = ctx.const_value(decl.init.expr, scope)
                if folded is not None and isinstance(typ, Elementary | StringType | EnumType):
                    try:
                        symbol.value = coerce(_initial_constant(ctx, folded, typ, decl.init), typ, decl.name)
                    except ValueError as exc:
                        ctx.error(decl.init.line, decl.init.col, str(exc))
        scope.symbols[key] = symbol


def default_code(ctx: Context, typ: StType) -> str:
    if isinstance(typ, Elementary):
        if typ.subrange:  # IEC: a subrange starts at its lower limit
            return str(typ.subrange[0])
        return {"bool": "False", "real": "0.0"}.get(typ.kind, "0")
    if isinstance(typ, StringType):
        return "''"
    if isinstance(typ, EnumType):
        return str(next(iter(typ.values.values()), 0))
    if isinstance(typ, StructType):
        return f"{ctx.struct_classes[typ.name.upper()]}()"
    if isinstance(typ, FbType):
        return f"{typ.class_name}(_g)"
    if isinstance(typ, ArrayType):
        elem = default_code(ctx, typ.elem)
        mutable = isinstance(typ.elem, StructType | FbType)
        sizes = [hi - lo + 1 for lo, hi in typ.dims]
        code = f"[{elem} for _ in range({sizes[-1]})]" if mutable else f"[{elem}] * {sizes[-1]}"
        for size in reversed(sizes[:-1]):
            code = f"[{code} for _ in range({size})]"
        return code
    return "None"


def init_code(ctx: Context, scope: Scope | None, typ: StType, init: m.Init | None, name: str) -> str:
    """Python code creating the initial value of a variable of type `typ`."""
    if init is None:
        return default_code(ctx, typ)
    if isinstance(init, m.ExprInit):
        if not isinstance(typ, Elementary | StringType | EnumType):
            ctx.error(init.line, init.col, f"initial value of {name!r} must be written as [...] or (field := ...)")
            return default_code(ctx, typ)
        folded = ctx.const_value(init.expr, scope)
        if folded is None:
            ctx.error(init.line, init.col, f"initial value of {name!r} must be a constant expression")
            return default_code(ctx, typ)
        if isinstance(typ, EnumType) and folded[1] is not typ:
            ctx.error(init.line, init.col, f"type mismatch: cannot initialise {typ} {name!r} with {folded[1]}")
            return default_code(ctx, typ)
        try:
            return literal_code(coerce(_initial_constant(ctx, folded, typ, init), typ, name))
        except ValueError as exc:
            ctx.error(init.line, init.col, str(exc))
            return default_code(ctx, typ)
    if isinstance(init, m.ArrayInit):
        if not isinstance(typ, ArrayType):
            ctx.error(init.line, init.col, f"{name!r} is not an array")
            return default_code(ctx, typ)
        sizes = [hi - lo + 1 for lo, hi in typ.dims]
        flat: list[m.Init | None] = [item for count, item in init.items for _ in range(count)]
        if len(sizes) > 1 and any(isinstance(item, m.ArrayInit) for item in flat):
            return _nested_array_code(ctx, scope, typ, init, flat, name)
        if len(flat) > prod(sizes):
            ctx.error(init.line, init.col, f"{len(flat)} initial values for {prod(sizes)} elements of {name!r}")
            flat = flat[: prod(sizes)]
        codes = [init_code(ctx, scope, typ.elem, item, name) if item else default_code(ctx, typ.elem) for item in flat]
        codes += [default_code(ctx, typ.elem)] * (prod(sizes) - len(codes))
        return _nest(codes, sizes)
    if isinstance(init, m.StructInit):
        if isinstance(typ, StructType):
            members, head = typ.fields, f"_make({ctx.struct_classes[typ.name.upper()]}"
        elif isinstance(typ, FbType):
            members, head = typ.members, f"_make_fb({typ.class_name}, _g"
        else:
            ctx.error(init.line, init.col, f"{name!r} is not a structure or function block")
            return default_code(ctx, typ)
        parts = []
        for field_name, value, line, col in init.fields:
            member = members.get(field_name.upper())
            if member is None:
                ctx.error(line, col, f"{typ} has no member {field_name!r}")
                continue
            parts.append(f"{member.attr}={init_code(ctx, scope, member.type, value, field_name)}")
        return f"{head}{''.join(', ' + p for p in parts)})"
    return default_code(ctx, typ)


def _nested_array_code(
    ctx: Context, scope: Scope | None, typ: ArrayType, init: m.ArrayInit, rows: list[m.Init | None], name: str
) -> str:
    """`[[1, 2, 3], [4, 5, 6]]`: one initialiser per index of the first dimension, as an array of arrays is
    initialised (CODESYS help, "Compiler Error C0232"); accepted for a multi-dimensional array too."""
    row_type = typ.peel(1)
    size = typ.dims[0][1] - typ.dims[0][0] + 1
    if len(rows) > size:
        ctx.error(init.line, init.col, f"{len(rows)} initial values for {size} elements of {name!r}")
        rows = rows[:size]
    codes = [init_code(ctx, scope, row_type, row, name) if row else default_code(ctx, row_type) for row in rows]
    codes += [default_code(ctx, row_type) for _ in range(size - len(codes))]
    return "[" + ", ".join(codes) + "]"


def _initial_constant(ctx: Context, folded: tuple[Any, StType], typ: StType, init: m.Init) -> Any:
    """A folded initial value as the variable's value, by the rules of an assignment: an untyped integer by its bit
    pattern when only that fits, a string constant cut to the variable's length (with their warnings)."""
    value, vtype = folded
    if isinstance(vtype, LiteralType) and vtype.kind == "int" and isinstance(typ, Elementary) and typ.is_integral:
        converted = ctx.integer_constant(int(value), typ, init.line, init.col, vtype.pattern)
        return value if converted is None else converted
    if isinstance(vtype, LiteralType) and vtype.pattern:
        raise ValueError(f"type mismatch: NOT of a constant is a bit string, not a {typ}")
    if isinstance(value, str) and isinstance(typ, StringType):
        return ctx.string_constant(value, typ, init.line, init.col)
    return value


def _nest(codes: list[str], sizes: list[int]) -> str:
    if len(sizes) == 1:
        return "[" + ", ".join(codes) + "]"
    step = prod(sizes[1:])
    return "[" + ", ".join(_nest(codes[i : i + step], sizes[1:]) for i in range(0, len(codes), step)) + "]"
