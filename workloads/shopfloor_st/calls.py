"""Calls of user functions and function block instances, and assignment (shared by both and by statements).

Arguments bind formally (`IN := x`, `Q => y`) or positionally in declaration order of the inputs. VAR_IN_OUT is
passed by copy-in/copy-out for elementary values (the same result as a reference unless the callee also reaches
the variable another way) and by reference for arrays and structures.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shopfloor_st import model as m
from shopfloor_st.context import Symbol
from shopfloor_st.exprgen import ExprGen, Value
from shopfloor_st.st_types import ArrayType, Elementary, FbType, StringType, StructType, StType

__all__ = ["Signature", "assignment", "fb_call_lines", "user_function_call"]


@dataclass
class Signature:
    """What a caller needs of a FUNCTION: parameters (inputs and in-outs, in order) and outputs."""

    name: str
    py_name: str
    return_type: StType | None
    params: list[Symbol] = field(default_factory=list)
    outputs: list[Symbol] = field(default_factory=list)
    defaults: dict[str, str] = field(default_factory=dict)  # upper name -> Python code of the initial value


def _root_name(node: m.Expr) -> m.Name | None:
    while isinstance(node, m.Member | m.Index):
        node = node.obj
    return node if isinstance(node, m.Name) else None


def check_target(gen: ExprGen, node: m.Expr, target: Value) -> bool:
    """Is `node` something the program may assign to? Reports why not."""
    if target.type is None:
        return False
    root = _root_name(node)
    root_symbol = gen.scope.lookup(root.name) if root else None
    if root_symbol is not None and root_symbol.constant:
        gen.error(node, f"cannot assign to constant {root_symbol.name!r}")
        return False
    if not target.lvalue or root_symbol is None:
        gen.error(node, "cannot assign to this expression")
        return False
    if root_symbol.section == "VAR_INPUT":
        gen.error(node, f"cannot assign to input {root_symbol.name!r}")
        return False
    if isinstance(node, m.Member) and target.symbol is not None and target.symbol.section == "VAR_OUTPUT":
        gen.error(node, f"cannot assign to output {target.symbol.name!r} of a function block instance")
        return False
    if isinstance(target.type, FbType):
        gen.error(node, "function block instances cannot be assigned")
        return False
    return True


def assignment(gen: ExprGen, target: Value, source: Value, node: m.Node) -> str:
    """One Python statement assigning `source` to `target` with the conversions and wrapping the types need."""
    ttype = target.type
    if ttype is None or source.type is None:
        return "pass"
    if isinstance(ttype, Elementary) and ttype.subrange:
        code = gen.convert(source, ttype, node)
        low, high = ttype.subrange
        t = gen.temp()
        fault = f"_range({t}, {low}, {high}, {node.line}, {node.col})"
        return f"{target.code} = {t} if {low} <= ({t} := {code}) <= {high} else {fault}"
    if source.raw and source.type == ttype and isinstance(ttype, Elementary) and ttype.is_integral:
        mask = (1 << ttype.bits) - 1
        if not ttype.signed:
            return f"{target.code} = {source.code} & {mask}"
        half = 1 << (ttype.bits - 1)
        t = gen.temp()
        wrapped = f"((({t} + {half}) & {mask}) - {half})"
        return f"{target.code} = {t} if {-half} <= ({t} := {source.code}) <= {half - 1} else {wrapped}"
    code = gen.convert(source, ttype, node)
    if isinstance(ttype, ArrayType | StructType) and source.lvalue:
        if isinstance(ttype, StructType) and source.type is not ttype:
            gen.error(node, f"type mismatch: cannot assign {source.type} to {ttype}")
        code = f"_copy({code})"
    if isinstance(ttype, StringType) and isinstance(source.type, StringType) and source.type.length > ttype.length:
        pass  # convert() already clips
    return f"{target.code} = {code}"


def _bind(
    gen: ExprGen,
    call: m.Call,
    name: str,
    inputs: list[Symbol],
    outputs: list[Symbol],
    aliases: dict[str, str] | None = None,
) -> tuple[dict[str, tuple[Symbol, m.Arg]], list[tuple[Symbol, m.Arg]]] | None:
    bound: dict[str, tuple[Symbol, m.Arg]] = {}
    outs: list[tuple[Symbol, m.Arg]] = []
    positional = [a for a in call.args if a.name is None]
    if len(positional) > len(inputs):
        gen.error(call, f"{name} expects {len(inputs)} argument(s), got {len(positional)}")
        return None
    for arg, symbol in zip(positional, inputs, strict=False):
        bound[symbol.name.upper()] = (symbol, arg)
    by_name_in = {s.name.upper(): s for s in inputs}
    by_name_out = {s.name.upper(): s for s in outputs}
    ok = True
    for arg in call.args:
        if arg.name is None:
            continue
        key = arg.name.upper()
        if aliases and not arg.output:
            key = aliases.get(key, key)
        table = by_name_out if arg.output else by_name_in
        if key not in table:
            kind = "output" if arg.output else "input"
            gen.error(arg, f"{name} has no {kind} {arg.name!r}")
            ok = False
        elif arg.output:
            outs.append((table[key], arg))
        elif key in bound:
            gen.error(arg, f"{arg.name!r} is given twice")
            ok = False
        else:
            bound[key] = (table[key], arg)
    return (bound, outs) if ok else None


def _output_target(gen: ExprGen, arg: m.Arg) -> Value | None:
    target = gen.expr(arg.value)
    return target if check_target(gen, arg.value, target) else None


def user_function_call(gen: ExprGen, call: m.Call, pou: m.Pou) -> Value:
    signature: Signature = gen.ctx.signatures[pou.name.upper()]
    bound_outs = _bind(gen, call, signature.name, signature.params, signature.outputs)
    if bound_outs is None:
        return Value("None", None)
    bound, outs = bound_outs
    if all(a.name is None for a in call.args) and call.args and len(bound) != len(signature.params):
        return gen.error(call, f"{signature.name} expects {len(signature.params)} argument(s), got {len(call.args)}")
    codes, inouts = [], []
    for symbol in signature.params:
        entry = bound.get(symbol.name.upper())
        if entry is None:
            codes.append(signature.defaults[symbol.name.upper()])
            continue
        value = gen.expr(entry[1].value)
        if symbol.section == "VAR_IN_OUT":
            if not check_target(gen, entry[1].value, value):
                return Value("None", None)
            inouts.append((symbol, value))
        codes.append(gen.convert(value, symbol.type, entry[1], "pass"))
    text = f"{signature.py_name}(_g, _now{''.join(', ' + c for c in codes)})"
    if not signature.outputs and not any(s.section == "VAR_IN_OUT" for s in signature.params):
        return Value(text, signature.return_type)
    result = gen.temp("_r")
    gen.pre.append(f"{result} = {text}")
    out_index = {s.name.upper(): i + 1 for i, s in enumerate(signature.outputs)}
    for symbol, arg in outs:
        target = _output_target(gen, arg)
        if target is not None:
            gen.pre.append(
                assignment(gen, target, Value(f"{result}[{out_index[symbol.name.upper()]}]", symbol.type), arg)
            )
    inout_names = [s.name.upper() for s in signature.params if s.section == "VAR_IN_OUT"]
    for symbol, value in inouts:
        position = 1 + len(signature.outputs) + inout_names.index(symbol.name.upper())
        gen.pre.append(f"{value.code} = {result}[{position}]")
    return Value(f"{result}[0]", signature.return_type)


def fb_call_lines(gen: ExprGen, call: m.Call) -> list[str]:
    """Statements that call a function block instance: set inputs, run its body, copy outputs."""
    instance = gen.expr(call.func)
    fb_type = instance.type
    if fb_type is None:
        return []
    if not isinstance(fb_type, FbType):
        gen.error(call, f"{fb_type} is not a function block instance")
        return []
    members = list(fb_type.members.values())
    inputs = [s for s in members if s.section in ("VAR_INPUT", "VAR_IN_OUT")]
    outputs = [s for s in members if s.section == "VAR_OUTPUT"]
    bound_outs = _bind(gen, call, fb_type.name, inputs, outputs, getattr(fb_type.standard, "ALIASES", None))
    if bound_outs is None:
        return []
    bound, outs = bound_outs
    lines: list[str] = []
    fb = instance.code
    if "[" in fb:
        fb = gen.temp("_fb")
        lines.append(f"{fb} = {instance.code}")
    writebacks = []
    for symbol, arg in bound.values():
        value = gen.expr(arg.value)
        if symbol.section == "VAR_IN_OUT":
            if not check_target(gen, arg.value, value):
                continue
            if isinstance(symbol.type, Elementary | StringType):
                writebacks.append(f"{value.code} = {fb}.{symbol.attr}")
        lines.append(f"{fb}.{symbol.attr} = {gen.convert(value, symbol.type, arg, 'pass')}")
    lines.append(f"{fb}._st_body(_now)")
    for symbol, arg in outs:
        target = _output_target(gen, arg)
        if target is not None:
            lines.append(assignment(gen, target, Value(f"{fb}.{symbol.attr}", symbol.type), arg))
    return lines + writebacks
