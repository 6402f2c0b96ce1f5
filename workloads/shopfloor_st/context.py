"""Compile-time state shared by the passes: diagnostics, named types, symbols, constant folding."""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shopfloor_st import model as m
from shopfloor_st.errors import Diagnostic
from shopfloor_st.runtime import f32
from shopfloor_st.st_types import (
    BOOL,
    ELEMENTARY,
    ArrayType,
    Elementary,
    EnumType,
    FbType,
    LiteralType,
    StringType,
    StructType,
    StType,
    common_type,
    eval_type,
    fits_width,
    reinterpret_bits,
)

__all__ = ["Context", "Scope", "Symbol"]

_BITWISE: dict[str, Callable[[Any, Any], Any]] = {
    "AND": operator.and_,
    "&": operator.and_,
    "OR": operator.or_,
    "XOR": operator.xor,
}


@dataclass
class Symbol:
    """A declared variable, structure field or FB member."""

    name: str  # declared spelling
    type: StType
    section: str = "VAR"
    retain: bool = False
    constant: bool = False
    ref: str = ""  # Python expression that reads it inside the declaring POU
    line: int = 0
    col: int = 0
    value: Any = None  # compile-time value of a CONSTANT with a constant initial value
    decl: m.VarDecl | None = None

    @property
    def attr(self) -> str:
        return "v_" + self.name


@dataclass
class Scope:
    """Names visible in one POU: its own variables, then the globals."""

    pou_kind: str
    pou_name: str
    symbols: dict[str, Symbol] = field(default_factory=dict)
    globals: dict[str, Symbol] = field(default_factory=dict)

    def lookup(self, name: str) -> Symbol | None:
        key = name.upper()
        return self.symbols.get(key) or self.globals.get(key)


class Context:
    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.diagnostics: list[Diagnostic] = []
        self.types: dict[str, StType] = {}
        self.enum_values: dict[str, list[EnumType]] = {}
        self.functions: dict[str, m.Pou] = {}
        self.fb_types: dict[str, FbType] = {}
        self.struct_classes: dict[str, str] = {}  # struct name (upper) -> generated class name
        self.signatures: dict[str, Any] = {}  # function name (upper) -> calls.Signature
        self.used: set[int] = set()  # id() of every Symbol an expression reads or writes

    def error(self, line: int, col: int, message: str) -> None:
        self.diagnostics.append(Diagnostic(self.filename, line, col, message))

    def warn(self, line: int, col: int, message: str) -> None:
        warning = Diagnostic(self.filename, line, col, message, "warning")
        if warning not in self.diagnostics:  # constant folding may look at an expression more than once
            self.diagnostics.append(warning)

    def string_constant(self, text: str, target: StringType, line: int, col: int) -> str:
        """A string constant stored in `target`: cut to its length, with a warning (CODESYS help, "Data type:
        STRING", cuts a longer literal; its static analysis rule SA0026 flags it)."""
        if len(text) <= target.length:
            return text
        self.warn(line, col, f"string constant of {len(text)} characters cut to {target}")
        return text[: target.length]

    def integer_constant(
        self, value: int, target: Elementary, line: int, col: int, pattern: bool = False
    ) -> int | None:
        """An untyped integer constant as a value of the integer type `target`; None when it cannot be one.

        A constant that fits is itself; a NOT of constants (`pattern`) is its low bits. One that fits target's
        width only with the other signedness is its bit pattern, with a warning, as CODESYS converts it with its
        warning C0195 or C0196 (CODESYS help, "Attribute: warning disable": `test2 : UINT := -1` compiles with
        C0195): `INT := 16#FFFF` is -1, `WORD := -1` is 65535.
        """
        base = target.base
        if base.low <= value <= base.high:
            return value
        if target.subrange is not None or not (pattern or fits_width(value, base)):
            return None
        bits = reinterpret_bits(value, base)
        if not pattern:
            code, change = ("C0196", "unsigned to signed") if base.signed else ("C0195", "signed to unsigned")
            self.warn(
                line,
                col,
                f"constant {value} does not fit {base}: its bit pattern is taken, {bits} "
                f"(CODESYS warns {code}: implicit conversion from {change} type, possible change of sign)",
            )
        return bits

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    # ---- types ---------------------------------------------------------------------------------------------------

    def resolve_type(self, ref: m.TypeRef, scope: Scope | None = None) -> StType | None:
        """The type a declaration names; reports unknown types and bad bounds (returns None then)."""
        if isinstance(ref, m.NamedTypeRef):
            key = ref.name.upper()
            if key in ELEMENTARY:
                return ELEMENTARY[key]
            if key == "STRING":
                return StringType()
            found = self.types.get(key) or self.fb_types.get(key)
            if found is None:
                self.error(ref.line, ref.col, f"unknown type {ref.name!r}")
            return found
        if isinstance(ref, m.StringTypeRef):
            return StringType(ref.length if ref.length is not None else 80)
        if isinstance(ref, m.ArrayTypeRef):
            dims = []
            for low_expr, high_expr in ref.dims:
                low, high = self.const_int(low_expr, scope), self.const_int(high_expr, scope)
                if low is None or high is None:
                    return None
                if low > high:
                    self.error(low_expr.line, low_expr.col, f"array bounds {low}..{high} are empty")
                    return None
                dims.append((low, high))
            elem = self.resolve_type(ref.elem, scope)
            if elem is None or not dims:
                return None
            if isinstance(elem, ArrayType):  # ARRAY[..] OF ARRAY[..] is one array with more dimensions
                return ArrayType(tuple(dims) + elem.dims, elem.elem)
            return ArrayType(tuple(dims), elem)
        if isinstance(ref, m.SubrangeTypeRef):
            base = self.resolve_type(ref.base, scope)
            low, high = self.const_int(ref.low, scope), self.const_int(ref.high, scope)
            if not (isinstance(base, Elementary) and base.is_integral and base.subrange is None):
                self.error(ref.line, ref.col, f"a subrange needs an integer base type, not {base}")
                return base
            if low is None or high is None:
                return base
            if not base.low <= low <= high <= base.high:
                self.error(ref.low.line, ref.low.col, f"subrange {low}..{high} does not fit {base}")
                return base
            return Elementary(base.name, base.kind, base.bits, base.signed, (low, high))
        if isinstance(ref, m.EnumTypeRef):
            self.error(ref.line, ref.col, "declare enumerations in a TYPE block")
            return None
        if isinstance(ref, m.StructTypeRef):
            self.error(ref.line, ref.col, "declare structures in a TYPE block")
            return None
        return None

    # ---- constants -----------------------------------------------------------------------------------------------

    def const_value(self, expr: m.Expr, scope: Scope | None) -> tuple[Any, StType] | None:
        """Fold a constant expression (literals, CONSTANT variables, enum values, arithmetic); None if not constant."""
        if isinstance(expr, m.Literal):
            if expr.type_prefix and expr.type_prefix in ELEMENTARY:
                typed = ELEMENTARY[expr.type_prefix]
                if typed.kind == "real" and isinstance(expr.value, int | float) and not isinstance(expr.value, bool):
                    # REAL#7 is the real number 7.0, also inside arithmetic (`REAL#7 / 2` = 3.5)
                    number = float(expr.value)
                    return (f32(number) if typed.name == "REAL" else number), typed
                return expr.value, typed
            if expr.kind in ("int", "real") and isinstance(expr.value, int | float):
                return expr.value, LiteralType(expr.kind, expr.value)
            kinds = {"bool": ELEMENTARY["BOOL"], "time": ELEMENTARY["TIME"]}
            return expr.value, kinds.get(expr.kind, StringType())
        if isinstance(expr, m.Name):
            symbol = scope.lookup(expr.name) if scope else None
            if symbol is not None:
                return (symbol.value, symbol.type) if symbol.constant and symbol.value is not None else None
            enums = self.enum_values.get(expr.name.upper(), [])
            if len(enums) == 1:
                return enums[0].values[expr.name.upper()], enums[0]
            return None
        if isinstance(expr, m.Member) and isinstance(expr.obj, m.Name):
            enum = self.types.get(expr.obj.name.upper())
            if isinstance(enum, EnumType) and expr.member.upper() in enum.values:
                return enum.values[expr.member.upper()], enum
            return None
        if isinstance(expr, m.Unary) and expr.op in ("-", "+"):
            inner = self.const_value(expr.operand, scope)
            if inner is None or not isinstance(inner[0], int | float) or isinstance(inner[0], bool):
                return None
            signed = -inner[0] if expr.op == "-" else inner[0]
            return signed, (LiteralType(inner[1].kind, signed) if isinstance(inner[1], LiteralType) else inner[1])
        if isinstance(expr, m.Call) and isinstance(expr.func, m.Name) and expr.func.name.upper() not in self.functions:
            from shopfloor_st.stdfunc import OPERATOR_FUNCTIONS, operator_expression

            if expr.func.name.upper() not in OPERATOR_FUNCTIONS:
                return None
            tree = operator_expression(expr)  # `XOR(TRUE, FALSE)` folds as `TRUE XOR FALSE`
            return None if isinstance(tree, str) else self.const_value(tree, scope)
        if isinstance(expr, m.Unary) and expr.op == "NOT":
            inner = self.const_value(expr.operand, scope)
            return None if inner is None else _fold_not(*inner)
        if isinstance(expr, m.Binary) and expr.op in _BITWISE:
            left = self.const_value(expr.left, scope)
            right = self.const_value(expr.right, scope) if left is not None else None
            return None if left is None or right is None else self._fold_bitwise(expr, left, right)
        if isinstance(expr, m.Binary) and expr.op in ("+", "-", "*", "/", "MOD"):
            left = self.const_value(expr.left, scope)
            right = self.const_value(expr.right, scope) if left is not None else None
            if left is None or right is None or isinstance(left[0], bool | str) or isinstance(right[0], bool | str):
                return None
            a, b = left[0], right[0]
            is_int = isinstance(a, int) and isinstance(b, int)
            if expr.op in ("/", "MOD") and b == 0:
                return None
            if expr.op == "+":
                value = a + b
            elif expr.op == "-":
                value = a - b
            elif expr.op == "*":
                value = a * b
            elif expr.op == "/":
                value = (abs(a) // abs(b)) * (1 if (a < 0) == (b < 0) else -1) if is_int else a / b
            else:
                value = (abs(a) % abs(b)) * (-1 if a < 0 else 1) if is_int else None
            if value is None:
                return None
            typ = left[1] if not isinstance(left[1], LiteralType) else right[1]
            if isinstance(left[1], Elementary) and isinstance(right[1], Elementary):
                typ = common_type(left[1], right[1]) or typ
            if isinstance(typ, LiteralType):
                typ = LiteralType("int" if isinstance(value, int) else "real", value)
            elif isinstance(typ, Elementary) and typ.is_integral and isinstance(value, int):
                evaluated = eval_type(typ)  # as at run time: computed in at least 32 bits
                value = ((value - evaluated.low) & ((1 << evaluated.bits) - 1)) + evaluated.low
            elif isinstance(typ, Elementary) and typ.kind == "real" and isinstance(value, int | float):
                value = f32(float(value)) if typ.name == "REAL" else float(value)
            return value, typ
        return None

    def _fold_bitwise(
        self, expr: m.Binary, left: tuple[Any, StType], right: tuple[Any, StType]
    ) -> tuple[Any, StType] | None:
        """`AND`, `OR`, `XOR` of two constants: BOOL, or integers and bit strings (CODESYS "Operator: AND":
        `2#1001_0011 AND 2#1000_1010` is 2#1000_0010). An untyped constant beside a typed one takes its type, by
        its bit pattern if need be (see integer_constant)."""
        (a, a_type), (b, b_type) = left, right
        apply = _BITWISE[expr.op]
        if a_type == BOOL and b_type == BOOL:
            return bool(apply(bool(a), bool(b))), BOOL
        if not (_integer_constant(a, a_type) and _integer_constant(b, b_type)):
            return None
        if isinstance(a_type, LiteralType) and isinstance(b_type, LiteralType):
            value = apply(a, b)
            return value, LiteralType("int", value, pattern=value < 0 and (a_type.pattern or b_type.pattern))
        if isinstance(a_type, LiteralType) or isinstance(b_type, LiteralType):
            typed = b_type if isinstance(a_type, LiteralType) else a_type
            literal_value, literal = (a, a_type) if isinstance(a_type, LiteralType) else (b, b_type)
            assert isinstance(typed, Elementary) and isinstance(literal, LiteralType)
            converted = self.integer_constant(literal_value, typed, expr.line, expr.col, literal.pattern)
            if converted is None:
                return None
            a, b = (converted, b) if isinstance(a_type, LiteralType) else (a, converted)
            return apply(a, b), typed.base
        typ = common_type(a_type, b_type)
        if not (isinstance(typ, Elementary) and typ.is_integral):
            return None
        return apply(a, b), typ

    def const_int(self, expr: m.Expr, scope: Scope | None) -> int | None:
        folded = self.const_value(expr, scope)
        if folded is None or not isinstance(folded[0], int) or isinstance(folded[0], bool):
            self.error(expr.line, expr.col, "expected a constant integer expression")
            return None
        return folded[0]


def _integer_constant(value: Any, typ: StType) -> bool:
    """An integer or bit-string constant (typed or not), not a BOOL or a REAL."""
    if isinstance(value, bool) or not isinstance(value, int):
        return False
    return (isinstance(typ, LiteralType) and typ.kind == "int") or (isinstance(typ, Elementary) and typ.is_integral)


def _fold_not(value: Any, typ: StType) -> tuple[Any, StType] | None:
    """NOT of a constant: BOOL, the bits of a typed integer, or an untyped bit pattern (`NOT 0` is all ones)."""
    if typ == BOOL:
        return (not value), BOOL
    if not _integer_constant(value, typ):
        return None
    if isinstance(typ, LiteralType):
        return ~value, LiteralType("int", ~value, pattern=~value < 0)
    assert isinstance(typ, Elementary)
    return (~value if typ.signed else value ^ ((1 << typ.bits) - 1)), typ.base


def is_elementary(typ: StType) -> bool:
    return isinstance(typ, Elementary | StringType | EnumType)


def iec_type_of(typ: StType) -> str | None:
    """The elementary IEC type name ("INT", "REAL", "STRING"; enumerations are "INT"), None for others."""
    if isinstance(typ, Elementary):
        return typ.name
    if isinstance(typ, StringType):
        return "STRING"
    if isinstance(typ, EnumType):
        return "INT"
    return None


def struct_like(typ: StType) -> bool:
    return isinstance(typ, StructType | FbType)
