"""Type-check an expression and translate it to a Python expression, in one walk.

Integer operations are computed in their evaluation type (`eval_type`: at least 32 bits, as CODESYS does) while
the expression keeps its operands' type for the type checks: `b + 10` with a BYTE `b` is a BYTE expression whose
value may be 265. The value is cut to a variable's width only where CODESYS cuts it: on assignment, when passed
to an input, in a conversion function.

Results of `+ - *` and unary minus are left "raw" (correct modulo 2**bits of the evaluation type, possibly outside
its range) while they feed more `+ - *`, and are wrapped once where it matters (assignment, comparison, division,
a call): modular arithmetic gives the same result as wrapping after every operation, at a fraction of the cost.
A value that is not raw but may lie outside its type's range (`b + 10` once settled, `a MOD b`) is "wide".
REAL results are rounded to single precision after every operation.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shopfloor_st import model as m
from shopfloor_st.context import Context, Scope, Symbol
from shopfloor_st.st_types import (
    BOOL,
    LREAL,
    REAL,
    ArrayType,
    Elementary,
    EnumType,
    FbType,
    LiteralType,
    StringType,
    StructType,
    StType,
    eval_type,
    implicitly_converts,
)

if TYPE_CHECKING:
    from shopfloor_st.stdfunc import StandardCall

__all__ = ["ExprGen", "Value", "literal_code"]


@dataclass
class Value:
    code: str
    type: StType | None  # None: an error was already reported
    raw: bool = False  # integers: correct modulo 2**bits of eval_type(type), not reduced to its range
    wide: bool = False  # integers: in the range of eval_type(type), maybe not in the range of type
    symbol: Symbol | None = None  # the variable (or member) this value reads, for assignment checks
    lvalue: bool = False


def literal_code(value: object) -> str:
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return f"float({str(value)!r})"
    return repr(value)


def _string_constant(code: str) -> str | None:
    """The text of a Python string literal (as `literal_code` writes one), None for any other code."""
    if not code or code[0] not in "'\"":
        return None
    try:
        text = ast.literal_eval(code)
    except (ValueError, SyntaxError):
        return None
    return text if isinstance(text, str) else None


def wrap_code(code: str, typ: Elementary) -> str:
    mask = (1 << typ.bits) - 1
    if not typ.signed:
        return f"(({code}) & {mask})"
    half = 1 << (typ.bits - 1)
    return f"(((({code}) + {half}) & {mask}) - {half})"


class ExprGen:
    def __init__(self, ctx: Context, scope: Scope) -> None:
        self.ctx = ctx
        self.scope = scope
        self.temps = 0
        self.pre: list[str] = []  # statements to run before the current one (calls of functions with outputs)
        from shopfloor_st.stdfunc import StandardCall

        self.standard: StandardCall = StandardCall(self)

    def temp(self, prefix: str = "_t") -> str:
        self.temps += 1
        return f"{prefix}{self.temps}"

    def error(self, node: m.Node, message: str) -> Value:
        self.ctx.error(node.line, node.col, message)
        return Value("None", None)

    # ---- conversions ---------------------------------------------------------------------------------------------

    def settle(self, value: Value) -> str:
        """Code for the value of the expression: an integer is reduced to its evaluation type's range."""
        if value.raw and isinstance(value.type, Elementary) and value.type.is_integral:
            return wrap_code(value.code, eval_type(value.type))
        return value.code

    def fit(self, value: Value, target: Elementary) -> str:
        """Code for an integer value cut to `target`'s width (assignment, inputs, conversions); no-op if it fits."""
        src = value.type
        assert isinstance(src, Elementary)
        evaluated = eval_type(src)
        code = value.code
        if value.raw:
            if target.bits <= evaluated.bits:
                return wrap_code(code, target)
            code, held = wrap_code(code, evaluated), evaluated
        else:
            held = evaluated if value.wide else src.base
        if target.low <= held.low and held.high <= target.high:
            return code
        return wrap_code(code, target)

    def operand(self, value: Value, typ: StType, node: m.Node, exact: bool = True) -> str:
        """Code for an operand of an operation of type `typ`: an integer is taken in typ's evaluation type, as
        its value (`exact`) or, for `+ - *`, modulo 2**bits (left raw when that is the same width)."""
        src = value.type
        if isinstance(src, Elementary) and src.is_integral and isinstance(typ, Elementary) and typ.is_integral:
            evaluated = eval_type(typ)
            if not exact and eval_type(src).bits >= evaluated.bits:
                return value.code
            return self.fit(value, evaluated)
        return self.convert(value, typ, node, "convert")

    def convert(self, value: Value, target: StType, node: m.Node, what: str = "assign") -> str:
        """Code converting `value` implicitly to `target`; reports an error when a conversion function is needed."""
        src = value.type
        if src is None or target is None:
            return value.code
        if (
            isinstance(src, LiteralType)
            and src.kind == "int"
            and isinstance(target, Elementary)
            and target.is_integral
            and value.code == literal_code(src.value)
        ):
            constant = self.ctx.integer_constant(int(src.value), target, node.line, node.col, src.pattern)
            if constant is not None:
                return literal_code(constant)
        if not implicitly_converts(src, target):
            if (
                isinstance(src, LiteralType)
                and isinstance(target, Elementary)
                and target.is_integral
                and src.kind == "int"
            ):
                self.ctx.error(node.line, node.col, f"constant {src.value} is out of the range of {target}")
            elif (
                isinstance(src, Elementary)
                and isinstance(target, Elementary)
                and src.kind != "bool"
                and target.kind not in ("bool",)
            ):
                self.ctx.error(
                    node.line, node.col, f"cannot {what} {src} to {target} implicitly; use {src}_TO_{target}"
                )
            else:
                self.ctx.error(node.line, node.col, f"type mismatch: cannot {what} {src} to {target}")
            return value.code
        if isinstance(target, LiteralType):
            return value.code
        if isinstance(src, LiteralType) and value.code != literal_code(src.value) and isinstance(target, Elementary):
            # a computed untyped constant (e.g. MAX(1, 2)): convert the value at run time
            if target.kind == "real":
                return f"_f32({value.code})" if target.name == "REAL" else f"float({value.code})"
            return wrap_code(value.code, target) if target.is_integral else value.code
        if isinstance(src, LiteralType) and isinstance(target, Elementary):
            if target.kind == "real":
                from shopfloor_st.runtime import f32

                number = float(src.value)
                return literal_code(f32(number) if target.name == "REAL" else number)
            return literal_code(int(src.value))
        if isinstance(target, Elementary) and target.kind == "real" and isinstance(src, Elementary):
            if src.is_integral:
                if src.bits > (32 if target.name == "LREAL" else 16):  # REAL holds 24 bits exactly, LREAL 53
                    self.ctx.warn(
                        node.line,
                        node.col,
                        f"implicit conversion from {src.base} to {target}: possible loss of information "
                        f"(CODESYS warns C0197){'; an LREAL holds every DINT' if src.bits == 32 else ''}",
                    )
                return f"_f32({self.settle(value)})" if target.name == "REAL" else f"float({self.settle(value)})"
            return value.code
        if isinstance(target, Elementary) and target.is_integral and isinstance(src, Elementary) and src.is_integral:
            return self.fit(value, target.base)
        if value.raw and src == target:
            return self.settle(value)
        if isinstance(target, StringType) and isinstance(src, StringType):
            text = _string_constant(value.code)
            if text is not None:  # a literal: cut it here rather than on every scan
                return literal_code(self.ctx.string_constant(text, target, node.line, node.col))
            if target.length < src.length:
                return f"({value.code})[:{target.length}]"
        return value.code

    # ---- expressions ---------------------------------------------------------------------------------------------

    def expr(self, node: m.Expr) -> Value:
        folded = self.ctx.const_value(node, self.scope) if not isinstance(node, m.Name | m.Literal) else None
        if folded is not None and isinstance(folded[1], LiteralType | Elementary) and not isinstance(folded[0], str):
            value, typ = folded
            if isinstance(typ, Elementary) and typ.is_integral and isinstance(value, int):
                return Value(literal_code(value), typ, raw=not typ.low <= value <= typ.high)
            return Value(literal_code(value), typ)
        method = getattr(self, "expr_" + type(node).__name__.lower())
        return method(node)

    def expr_literal(self, node: m.Literal) -> Value:
        folded = self.ctx.const_value(node, None)
        assert folded is not None
        value, typ = folded
        if node.type_prefix and node.type_prefix not in ("T", "TIME", "LTIME"):
            if isinstance(typ, Elementary) and typ.is_integral:
                if not isinstance(value, int) or not typ.low <= value <= typ.high:
                    return self.error(node, f"constant {value} is out of the range of {typ}")
            elif isinstance(typ, Elementary) and typ.kind == "real":
                from shopfloor_st.runtime import f32

                value = f32(float(value)) if typ.name == "REAL" else float(value)
            elif isinstance(typ, Elementary) and typ.kind == "bool":
                value = bool(value)
        if isinstance(value, str) and isinstance(typ, StringType) and len(value) > typ.length:
            typ = StringType(len(value))  # so that assigning it to a shorter STRING cuts it
        return Value(literal_code(value), typ)

    def expr_name(self, node: m.Name) -> Value:
        symbol = self.scope.lookup(node.name)
        if symbol is not None:
            self.ctx.used.add(id(symbol))
            if symbol.constant and symbol.value is not None and not isinstance(symbol.value, str):
                return Value(literal_code(symbol.value), symbol.type, symbol=symbol)
            return Value(symbol.ref, symbol.type, symbol=symbol, lvalue=True)
        enums = self.ctx.enum_values.get(node.name.upper(), [])
        if len(enums) == 1:
            return Value(str(enums[0].values[node.name.upper()]), enums[0])
        if len(enums) > 1:
            names = ", ".join(e.name for e in enums)
            return self.error(node, f"{node.name!r} is ambiguous ({names}); write Type#{node.name}")
        return self.error(node, f"undeclared name {node.name!r}")

    def expr_member(self, node: m.Member) -> Value:
        if isinstance(node.obj, m.Name) and self.scope.lookup(node.obj.name) is None:
            enum = self.ctx.types.get(node.obj.name.upper())
            if isinstance(enum, EnumType):
                if node.member.upper() not in enum.values:
                    return self.error(node, f"{node.member!r} is not a value of {enum.name}")
                return Value(str(enum.values[node.member.upper()]), enum)
        obj = self.expr(node.obj)
        if obj.type is None:
            return obj
        if isinstance(obj.type, StructType | FbType):
            members = obj.type.fields if isinstance(obj.type, StructType) else obj.type.members
            key = node.member.upper()
            if isinstance(obj.type, FbType) and obj.type.standard is not None:
                key = getattr(obj.type.standard, "ALIASES", {}).get(key, key)
            member = members.get(key)
            if member is None:
                return self.error(node, f"{obj.type.name} has no member {node.member!r}")
            if isinstance(obj.type, FbType) and member.section not in ("VAR_INPUT", "VAR_OUTPUT", "VAR_IN_OUT"):
                return self.error(
                    node, f"{member.name!r} is internal to {obj.type.name}; only inputs and outputs are visible"
                )
            return Value(f"{obj.code}.{member.attr}", member.type, symbol=member, lvalue=obj.lvalue)
        return self.error(node, f"{obj.type} has no members")

    def expr_index(self, node: m.Index) -> Value:
        obj = self.expr(node.obj)
        if obj.type is None:
            return obj
        if not isinstance(obj.type, ArrayType):
            return self.error(node, f"{obj.type} is not an array")
        if len(node.indices) > len(obj.type.dims):
            return self.error(node, f"{obj.type} has {len(obj.type.dims)} dimension(s), not {len(node.indices)}")
        code = obj.code
        for index_expr, (low, high) in zip(node.indices, obj.type.dims, strict=False):
            index = self.expr(index_expr)
            if index.type is not None and not (
                isinstance(index.type, LiteralType | Elementary) and index.type.kind in ("int", "bits")
            ):
                self.error(index_expr, f"array index must be an integer, not {index.type}")
                continue
            if isinstance(index.type, LiteralType):
                constant = int(index.type.value)
                if not low <= constant <= high:
                    self.error(index_expr, f"array index {constant} out of range {low}..{high}")
                code += f"[{constant - low}]"
                continue
            t = self.temp("_i")
            offset = f"{t} - {low}" if low else t
            line, col = index_expr.line, index_expr.col
            fault = f"_oob({t}, {low}, {high}, {line}, {col})"
            code += f"[{offset} if {low} <= ({t} := {self.settle(index)}) <= {high} else {fault}]"
        return Value(code, obj.type.peel(len(node.indices)), symbol=obj.symbol, lvalue=obj.lvalue)

    def expr_unary(self, node: m.Unary) -> Value:
        operand = self.expr(node.operand)
        typ = operand.type
        if typ is None:
            return operand
        if node.op == "NOT":
            if isinstance(typ, Elementary) and typ.kind == "bool":
                return Value(f"(not {operand.code})", BOOL)
            if isinstance(typ, Elementary) and typ.is_integral:  # complements the bits of the operand's type
                if typ.signed:
                    return Value(f"(~{self.fit(operand, typ.base)})", typ)
                return Value(f"({self.fit(operand, typ.base)} ^ {(1 << typ.bits) - 1})", typ)
            return self.error(node, f"NOT needs BOOL or a bit string, not {typ}")
        if (isinstance(typ, Elementary) and typ.kind in ("int", "real", "time")) or isinstance(typ, LiteralType):
            if node.op == "+":
                return operand
            raw = isinstance(typ, Elementary) and typ.kind != "real"
            return Value(f"(-{operand.code})", typ, raw=raw or operand.raw)
        return self.error(node, f"unary {node.op} needs a number, not {typ}")

    def expr_binary(self, node: m.Binary) -> Value:
        from shopfloor_st.operators import binary

        return binary(self, node)

    def expr_call(self, node: m.Call) -> Value:
        if not isinstance(node.func, m.Name):
            return self.error(node, "only functions can be called in an expression")
        symbol = self.scope.lookup(node.func.name)
        if symbol is not None and isinstance(symbol.type, FbType):
            return self.error(node, f"function block instance {node.func.name!r} must be called as a statement")
        pou = self.ctx.functions.get(node.func.name.upper())
        if pou is not None:
            from shopfloor_st.calls import user_function_call

            return user_function_call(self, node, pou)
        result = self.standard.call(node)
        if result is not None:
            return result
        if node.func.name.upper() in self.ctx.fb_types:
            return self.error(node, f"{node.func.name!r} is a function block type; declare an instance and call that")
        return self.error(node, f"unknown function {node.func.name!r}")

    # ---- shared by operators and functions -----------------------------------------------------------------------

    def numeric(self, typ: StType | None) -> bool:
        return isinstance(typ, LiteralType) or (isinstance(typ, Elementary) and typ.kind in ("int", "bits", "real"))

    def to_real(self, value: Value, node: m.Node) -> tuple[str, Elementary]:
        """The value as REAL (or LREAL when it is one), for math functions."""
        target = LREAL if value.type == LREAL else REAL
        return self.convert(value, target, node, "convert"), target
