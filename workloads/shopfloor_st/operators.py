"""Binary operators: operand types, the result type and the Python code, with IEC/CODESYS semantics."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shopfloor_st import model as m
from shopfloor_st.st_types import (
    BOOL,
    LREAL,
    REAL,
    TIME,
    Elementary,
    EnumType,
    LiteralType,
    StringType,
    StType,
    common_type,
    eval_type,
    fits_width,
)

if TYPE_CHECKING:
    from shopfloor_st.exprgen import ExprGen, Value

__all__ = ["binary", "compare", "time_arith"]

_COMPARE = {"=": "==", "<>": "!=", "<": "<", ">": ">", "<=": "<=", ">=": ">="}
_LOGIC = {"AND": "&", "&": "&", "OR": "|", "XOR": "^"}


def binary(gen: ExprGen, node: m.Binary) -> Value:
    from shopfloor_st.exprgen import Value

    left, right = gen.expr(node.left), gen.expr(node.right)
    lt, rt = left.type, right.type
    if lt is None or rt is None:
        return Value("None", None)
    op = node.op
    if op in _LOGIC:
        if lt == BOOL and rt == BOOL:
            return Value(f"({left.code} {_LOGIC[op]} {right.code})", BOOL)
        typ = _bitwise_type(lt, rt)
        if isinstance(typ, Elementary) and typ.is_integral:  # on the evaluated values, like + - *
            a, b = gen.operand(left, typ, node), gen.operand(right, typ, node)
            return Value(f"({a} {_LOGIC[op]} {b})", typ, wide=left.raw or left.wide or right.raw or right.wide)
        return gen.error(node, f"{op} needs BOOL or bit-string operands, not {lt} and {rt}")
    if op in _COMPARE:
        return compare(gen, node, op, left, right)
    if op == "**":
        return _power(gen, node, left, right)
    if lt == TIME or rt == TIME:
        return time_arith(gen, node, op, left, right)
    if not (gen.numeric(lt) and gen.numeric(rt)):
        return gen.error(node, f"operator {op} needs numbers, not {lt} and {rt}")
    typ = common_type(lt, rt)
    if typ is None:
        return gen.error(node, f"operator {op} cannot combine {lt} and {rt}; convert one of them")
    line, col = node.line, node.col
    if isinstance(typ, LiteralType):
        return gen.error(node, "constant expression could not be folded")
    assert isinstance(typ, Elementary)
    if typ.is_integral:  # computed in eval_type(typ), at least 32 bits; typ stays the expression's type
        if op in ("+", "-", "*"):
            a, b = gen.operand(left, typ, node, exact=False), gen.operand(right, typ, node, exact=False)
            return Value(f"({a} {op} {b})", typ, raw=True)
        a, b = gen.operand(left, typ, node), gen.operand(right, typ, node)
        if op == "/":
            return Value(f"_idiv({a}, {b}, {line}, {col})", typ, raw=eval_type(typ).signed, wide=True)
        if op == "MOD":
            return Value(f"_imod({a}, {b}, {line}, {col})", typ, wide=True)
        return gen.error(node, f"unknown operator {op}")
    a, b = _real_operand(gen, left, typ, node), _real_operand(gen, right, typ, node)
    if typ.kind == "real":
        if op == "MOD":
            return gen.error(node, "MOD needs integer operands")
        code = f"_rdiv({a}, {b}, {line}, {col})" if op == "/" else f"({a} {op} {b})"
        return Value(f"_f32({code})" if typ == REAL else code, typ)
    return gen.error(node, f"unknown operator {op}")


def _bitwise_type(a: StType, b: StType) -> StType | None:
    """The type of `a AND b` (OR, XOR): an untyped constant beside an integer takes the integer's type when it fits
    its width, as a mask does (`i AND 16#FF00` on an INT is an INT; the constant's bit pattern, with a warning: see
    Context.integer_constant); otherwise the common type."""
    for typed, other in ((a, b), (b, a)):
        if (
            isinstance(typed, Elementary)
            and typed.is_integral
            and isinstance(other, LiteralType)
            and other.kind == "int"
            and (other.pattern or fits_width(int(other.value), typed.base))
        ):
            return typed.base
    return common_type(a, b)


def _real_operand(gen: ExprGen, value: Value, typ: Elementary, node: m.Node) -> str:
    """An untyped real constant is an LREAL (CODESYS "Constant: Typed Literal"): `r * 0.1` multiplies by the double
    0.1 and rounds the product to REAL, rather than multiplying by 0.1 rounded to REAL first."""
    if typ == REAL and isinstance(value.type, LiteralType) and value.type.kind == "real":
        from shopfloor_st.exprgen import literal_code

        if value.code == literal_code(value.type.value):
            return literal_code(float(value.type.value))
    return gen.convert(value, typ, node, "convert")


def compare(gen: ExprGen, node: m.Node, op: str, left: Value, right: Value) -> Value:
    """`left op right` for a comparison operator (`=`, `<>`, `<`, ...) on already evaluated operands."""
    from shopfloor_st.exprgen import Value

    lt, rt, py = left.type, right.type, _COMPARE[op]
    if lt is None or rt is None:
        return Value("None", None)
    if (isinstance(lt, StringType) and isinstance(rt, StringType)) or lt == rt == BOOL or lt == rt == TIME:
        return Value(f"({left.code} {py} {right.code})", BOOL)
    if isinstance(lt, EnumType) or isinstance(rt, EnumType):
        if lt is rt:
            return Value(f"({left.code} {py} {right.code})", BOOL)
        return gen.error(node, f"cannot compare {lt} with {rt}")
    typ = common_type(lt, rt) if gen.numeric(lt) and gen.numeric(rt) else None
    if typ is None:
        return gen.error(node, f"cannot compare {lt} with {rt}")
    return Value(f"({gen.operand(left, typ, node)} {py} {gen.operand(right, typ, node)})", BOOL)


def _power(gen: ExprGen, node: m.Binary, left: Value, right: Value) -> Value:
    from shopfloor_st.exprgen import Value

    if not (gen.numeric(left.type) and gen.numeric(right.type)):
        return gen.error(node, f"** needs numbers, not {left.type} and {right.type}")
    typ = LREAL if LREAL in (left.type, right.type) else REAL
    a, b = gen.convert(left, typ, node, "convert"), gen.convert(right, typ, node, "convert")
    code = f"_expt({a}, {b}, {node.line}, {node.col})"
    return Value(f"_f32({code})" if typ == REAL else code, typ)


def time_arith(gen: ExprGen, node: m.Node, op: str, left: Value, right: Value) -> Value:
    """TIME +/- TIME, TIME * number, TIME / number (IEC 61131-3, arithmetic functions of time data types)."""
    from shopfloor_st.exprgen import Value

    lt, rt = left.type, right.type
    if op in ("+", "-") and lt == rt == TIME:
        return Value(f"({left.code} {op} {right.code})", TIME, raw=True)
    number = right if lt == TIME else left
    if op in ("*", "/") and gen.numeric(number.type) and (lt == TIME or op == "*"):
        time_value = left if lt == TIME else right
        if (isinstance(number.type, Elementary) and number.type.kind == "real") or (
            isinstance(number.type, LiteralType) and number.type.kind == "real"
        ):
            factor = number.code
            code = (
                f"int({time_value.code} * {factor})"
                if op == "*"
                else f"int(_rdiv({time_value.code}, {factor}, {node.line}, {node.col}))"
            )
        else:
            factor = gen.settle(number)
            code = (
                f"({time_value.code} * {factor})"
                if op == "*"
                else f"_idiv({time_value.code}, {factor}, {node.line}, {node.col})"
            )
        return Value(code, TIME)
    return gen.error(node, f"operator {op} cannot combine {lt} and {rt}")
