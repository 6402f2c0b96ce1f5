"""The pipeline: preprocess -> parse -> declarations -> checks and code generation -> one `compile()`.

Every error is collected before anything is raised (like RestrictedPython); warnings travel with the program.
Generated Python keeps a table from its lines to ST positions, so a fault in a helper or in Python itself still
names the ST line (like hy copies source positions onto its AST).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shopfloor_st import model as m
from shopfloor_st.calls import Signature
from shopfloor_st.context import Context, Scope, Symbol
from shopfloor_st.declare import declare_types, declare_vars, init_code
from shopfloor_st.errors import CompileError, Diagnostic
from shopfloor_st.exprgen import ExprGen
from shopfloor_st.parse import parse_program
from shopfloor_st.preprocess import preprocess
from shopfloor_st.runtime import HELPERS
from shopfloor_st.st_types import FbType, StType
from shopfloor_st.stdfb import STANDARD_FBS
from shopfloor_st.stmtgen import Line, StmtGen

__all__ = ["CompiledUnit", "compile_unit"]


@dataclass
class CompiledUnit:
    namespace: dict[str, Any]
    programs: dict[str, tuple[str, Scope]]  # upper name -> (class name, scope)
    globals_scope: Scope
    line_map: dict[int, tuple[int, int]]
    code_filename: str
    warnings: list[Diagnostic]
    python_source: str


class _Module:
    def __init__(self) -> None:
        self.lines: list[Line] = []

    def add(self, indent: int, text: str, node: m.Node | None = None) -> None:
        self.lines.append(Line(indent, text, node.line if node else 0, node.col if node else 0))

    def extend(self, lines: list[Line], extra_indent: int) -> None:
        for line in lines:
            self.lines.append(Line(line.indent + extra_indent, line.text, line.line, line.col))


def _initial(ctx: Context, scope: Scope | None, symbol: Symbol) -> str:
    return init_code(ctx, scope, symbol.type, symbol.decl.init if symbol.decl else None, symbol.name)


def _register_fbs(ctx: Context, unit: m.SourceUnit) -> None:
    for name, cls in STANDARD_FBS.items():
        fb = FbType(name, standard=cls, class_name=f"_std_{name}")
        for member, section, type_name in getattr(cls, "MEMBERS", ()):
            fb.members[member.upper()] = Symbol(member, ctx.resolve_type(m.NamedTypeRef(0, 0, type_name)), section)  # type: ignore[arg-type]
        ctx.fb_types[name] = fb
    for pou in unit.pous:
        key = pou.name.upper()
        if key in ctx.fb_types or key in ctx.functions or key in ctx.types:
            ctx.error(pou.line, pou.col, f"duplicate declaration of {pou.name!r}")
            continue
        if pou.kind == "FUNCTION_BLOCK":
            ctx.fb_types[key] = FbType(pou.name, pou=pou, class_name=f"_FB_{pou.name}")
        elif pou.kind == "FUNCTION":
            ctx.functions[key] = pou


def _scope_for(ctx: Context, pou: m.Pou, globals_: dict[str, Symbol]) -> Scope:
    scope = Scope(pou.kind, pou.name, globals=globals_)
    if pou.kind == "FUNCTION":
        declare_vars(ctx, scope, pou.decls, {"VAR": ""})
        if pou.return_type is not None:
            ret = ctx.resolve_type(pou.return_type, scope)
            if ret is not None:
                scope.symbols.setdefault(pou.name.upper(), Symbol(pou.name, ret, "RETURN", ref=f"v_{pou.name}"))
    else:
        declare_vars(ctx, scope, pou.decls, {"VAR": "self.", "VAR_TEMP": ""})
    return scope


def _class(ctx: Context, module: _Module, name: str, scope: Scope, pou: m.Pou | None) -> None:
    """A class for a FB or PROGRAM (state in slots, body as `_st_body`) or for the globals (`pou` None)."""
    state = [s for s in scope.symbols.values() if s.section != "VAR_TEMP"]
    module.add(0, f"class {name}:", pou)
    hidden = ["_g", "_abort"] if pou is None else ["_g"]
    module.add(1, f"__slots__ = {tuple([*hidden, *[s.attr for s in state]])!r}")
    module.add(1, "def __init__(self, _g=None):")
    module.add(2, "_g = self if _g is None else _g" if pou is None else "self._g = _g")
    for symbol in state:
        module.add(
            2,
            f"self.{symbol.attr} = {_initial(ctx, scope, symbol)}",
            symbol.decl,
        )
    if pou is None:
        module.add(2, "self._g = self")
        module.add(2, "self._abort = False")
        return
    module.add(1, "def _st_body(self, _now):")
    module.add(2, "_g = self._g")
    for symbol in scope.symbols.values():
        if symbol.section == "VAR_TEMP":
            module.add(
                2,
                f"{symbol.attr} = {_initial(ctx, scope, symbol)}",
            )
    gen = StmtGen(ExprGen(ctx, scope))
    gen.block(pou.body, 2, pou)
    module.extend(gen.lines, 0)


def _signature(ctx: Context, pou: m.Pou, scope: Scope) -> Signature:
    ret = scope.symbols.get(pou.name.upper())
    sig = Signature(pou.name, f"_F_{pou.name}", ret.type if ret and ret.section == "RETURN" else None)
    for symbol in scope.symbols.values():
        if symbol.section in ("VAR_INPUT", "VAR_IN_OUT"):
            sig.params.append(symbol)
            sig.defaults[symbol.name.upper()] = init_code(
                ctx, scope, symbol.type, symbol.decl.init if symbol.decl else None, symbol.name
            )
        elif symbol.section == "VAR_OUTPUT":
            sig.outputs.append(symbol)
    return sig


def _function(ctx: Context, module: _Module, pou: m.Pou, scope: Scope, sig: Signature) -> None:
    params = "".join(f", {s.attr}" for s in sig.params)
    module.add(0, f"def {sig.py_name}(_g, _now{params}):", pou)
    for symbol in scope.symbols.values():
        if symbol.section not in ("VAR_INPUT", "VAR_IN_OUT"):
            code = _initial(ctx, scope, symbol)
            module.add(1, f"{symbol.attr} = {code}")
    results = [s.attr for s in ([scope.symbols[pou.name.upper()]] if sig.return_type else [])]
    results += [s.attr for s in sig.outputs] + [s.attr for s in sig.params if s.section == "VAR_IN_OUT"]
    has_outputs = bool(sig.outputs) or any(s.section == "VAR_IN_OUT" for s in sig.params)
    returned = f"({', '.join(results)},)" if has_outputs else (results[0] if results else "None")
    gen = StmtGen(ExprGen(ctx, scope), return_code=returned)
    gen.block(pou.body, 1, pou)
    module.extend(gen.lines, 0)
    module.add(1, f"return {returned}")


def compile_unit(source: str, filename: str, execute: bool = True) -> CompiledUnit:
    """Parse, check and translate `source`. With `execute=False` the translation is compiled to bytecode but not
    run: a check (the operator's) learns every diagnostic without executing anything the program defines."""
    ctx = Context(filename)
    parsed = parse_program(preprocess(source))
    if parsed.errors:
        raise CompileError([Diagnostic(filename, line, col, msg) for line, col, msg in parsed.errors])
    unit = parsed.unit
    _register_fbs(ctx, unit)
    declare_types(ctx, unit.types)
    globals_scope = Scope("CONFIGURATION", "", globals={})
    declare_vars(ctx, globals_scope, unit.globals, {"VAR_GLOBAL": "_g.", "VAR": "_g."})
    for symbol in globals_scope.symbols.values():
        symbol.section = "VAR_GLOBAL"
    scopes = {pou.name.upper(): _scope_for(ctx, pou, globals_scope.symbols) for pou in unit.pous}
    for pou in unit.pous:
        key = pou.name.upper()
        if pou.kind == "FUNCTION_BLOCK" and key in ctx.fb_types:
            ctx.fb_types[key].members = scopes[key].symbols
        elif pou.kind == "FUNCTION":
            if pou.return_type is None:
                ctx.error(pou.line, pou.col, f"FUNCTION {pou.name} needs a return type")
            ctx.signatures[key] = _signature(ctx, pou, scopes[key])

    module = _Module()
    for key, struct in ctx.types.items():
        if key in ctx.struct_classes and hasattr(struct, "fields"):
            _struct_class(ctx, module, ctx.struct_classes[key], struct.fields)
    _class(ctx, module, "_Globals", globals_scope, None)
    programs: dict[str, tuple[str, Scope]] = {}
    for pou in unit.pous:
        key = pou.name.upper()
        if pou.kind == "FUNCTION" and key in ctx.signatures:
            _function(ctx, module, pou, scopes[key], ctx.signatures[key])
        elif pou.kind == "FUNCTION_BLOCK" and key in ctx.fb_types:
            _class(ctx, module, ctx.fb_types[key].class_name, scopes[key], pou)
        elif pou.kind == "PROGRAM":
            if key in programs:
                ctx.error(pou.line, pou.col, f"duplicate declaration of {pou.name!r}")
                continue
            programs[key] = (f"_P_{pou.name}", scopes[key])
            _class(ctx, module, f"_P_{pou.name}", scopes[key], pou)
    for pou in unit.pous:
        if pou.kind != "PROGRAM" and pou.name.upper() in scopes:
            for symbol in scopes[pou.name.upper()].symbols.values():
                if symbol.section in ("VAR", "VAR_TEMP") and id(symbol) not in ctx.used:
                    ctx.warn(symbol.line, symbol.col, f"{symbol.name!r} is declared but never used")
    if ctx.errors:
        raise CompileError(sorted(ctx.errors, key=lambda d: (d.line, d.col)))
    text, line_map = _render(module.lines)
    code_filename = f"<st {filename}>"
    namespace: dict[str, Any] = {**HELPERS, **{f"_std_{key}": cls for key, cls in STANDARD_FBS.items()}}
    try:
        code = compile(text, code_filename, "exec")
    except (SyntaxError, RecursionError, MemoryError) as exc:  # limits of CPython's parser, e.g. nesting
        line, col = line_map.get(getattr(exc, "lineno", 0) or 0, (1, 1))
        raise CompileError([Diagnostic(filename, line, col, f"statement too complex to compile ({exc})")]) from None
    if execute:
        exec(code, namespace)
    warnings = [d for d in ctx.diagnostics if d.severity == "warning"]
    return CompiledUnit(namespace, programs, globals_scope, line_map, code_filename, warnings, text)


def _struct_class(ctx: Context, module: _Module, name: str, fields: dict[str, Symbol]) -> None:
    module.add(0, f"class {name}:")
    module.add(1, f"__slots__ = {tuple(f.attr for f in fields.values())!r}")
    module.add(1, "def __init__(self):")
    for symbol in fields.values():
        module.add(
            2,
            f"self.{symbol.attr} = {_initial(ctx, None, symbol)}",
        )
    if not fields:
        module.add(2, "pass")
    module.add(1, "def __deepcopy__(self, memo):")
    module.add(2, "new = object.__new__(type(self))")
    for symbol in fields.values():
        module.add(
            2,
            f"new.{symbol.attr} = _copy(self.{symbol.attr})"
            if not _immutable(symbol.type)
            else f"new.{symbol.attr} = self.{symbol.attr}",
        )
    module.add(2, "return new")


def _immutable(typ: StType) -> bool:
    from shopfloor_st.context import is_elementary

    return is_elementary(typ)


def _render(lines: list[Line]) -> tuple[str, dict[int, tuple[int, int]]]:
    out: list[str] = []
    line_map: dict[int, tuple[int, int]] = {}
    for number, line in enumerate(lines, start=1):
        out.append("    " * line.indent + line.text)
        if line.line:
            line_map[number] = (line.line, line.col)
    return "\n".join(out) + "\n", line_map
