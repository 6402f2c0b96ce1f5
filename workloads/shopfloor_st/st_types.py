"""The ST type system: elementary types with their widths, strings, arrays, structures, enumerations, FB types.

Implicit conversions follow CODESYS: an integer or bit string converts without a function when the target holds
every value of the source (SINT -> INT, USINT -> UINT, BYTE -> WORD, UINT -> DINT ...), any integer converts to
REAL/LREAL, REAL to LREAL. Everything else (narrowing, signed <-> unsigned of the same width, REAL -> INT) needs a
conversion function such as DINT_TO_INT.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shopfloor_st.model import Pou

__all__ = [
    "ELEMENTARY",
    "ArrayType",
    "Elementary",
    "EnumType",
    "FbType",
    "LiteralType",
    "StType",
    "StringType",
    "StructType",
    "common_type",
    "eval_type",
    "fits_width",
    "implicitly_converts",
    "literal_int_type",
    "reinterpret_bits",
    "smallest_bit_string",
]


@dataclass(frozen=True)
class Elementary:
    name: str
    kind: str  # "bool" | "int" | "bits" | "real" | "time"
    bits: int = 0
    signed: bool = False
    subrange: tuple[int, int] | None = None  # INT(0..100): checked on assignment; arithmetic uses the base type

    @property
    def base(self) -> Elementary:
        return ELEMENTARY[self.name] if self.subrange else self

    @property
    def low(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def high(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def is_integral(self) -> bool:
        return self.kind in ("int", "bits")

    def __str__(self) -> str:
        return f"{self.name}({self.subrange[0]}..{self.subrange[1]})" if self.subrange else self.name


@dataclass(frozen=True)
class StringType:
    length: int = 80
    name: str = "STRING"

    def __str__(self) -> str:
        return "STRING" if self.length == 80 else f"STRING({self.length})"


@dataclass(frozen=True)
class ArrayType:
    dims: tuple[tuple[int, int], ...]
    elem: StType

    def __str__(self) -> str:
        bounds = ", ".join(f"{lo}..{hi}" for lo, hi in self.dims)
        return f"ARRAY[{bounds}] OF {self.elem}"

    def peel(self, count: int) -> StType:
        """The type after indexing `count` dimensions."""
        if count >= len(self.dims):
            return self.elem
        return ArrayType(self.dims[count:], self.elem)


@dataclass(eq=False)
class StructType:
    name: str
    fields: dict[str, Any] = field(default_factory=dict)  # upper-case name -> FieldInfo (see scope.py)

    def __str__(self) -> str:
        return self.name


@dataclass(eq=False)
class EnumType:
    name: str
    values: dict[str, int] = field(default_factory=dict)  # upper-case name -> value
    spelling: dict[str, str] = field(default_factory=dict)  # upper-case name -> declared spelling

    def name_of(self, value: int) -> str | int:
        for key, val in self.values.items():
            if val == value:
                return self.spelling[key]
        return value

    def __str__(self) -> str:
        return self.name


@dataclass(eq=False)
class FbType:
    """A function block type: user-defined (`pou` set) or standard (`standard` set to the class)."""

    name: str
    members: dict[str, Any] = field(default_factory=dict)  # upper-case name -> FieldInfo
    pou: Pou | None = None
    standard: type | None = None
    class_name: str = ""

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class LiteralType:
    """An untyped numeric constant (`5`, `1.5`) that takes the type its context needs, if the value fits.

    `pattern`: a NOT of untyped constants (`NOT 16#0F`), a bit pattern with as many leading ones as the context's
    type has bits, so it converts to any integer type by its low bits (CODESYS "Operator: NOT": `NOT 2#1001_0011`
    stored in a BYTE is 2#0110_1100).
    """

    kind: str  # "int" | "real"
    value: int | float
    pattern: bool = False

    def __str__(self) -> str:
        return "ANY_INT" if self.kind == "int" else "ANY_REAL"


StType = Elementary | StringType | ArrayType | StructType | EnumType | FbType | LiteralType


def _e(name: str, kind: str, bits: int = 0, signed: bool = False) -> tuple[str, Elementary]:
    return name, Elementary(name, kind, bits, signed)


ELEMENTARY: dict[str, Elementary] = dict(
    [
        _e("BOOL", "bool", 1),
        _e("SINT", "int", 8, True),
        _e("INT", "int", 16, True),
        _e("DINT", "int", 32, True),
        _e("LINT", "int", 64, True),
        _e("USINT", "int", 8),
        _e("UINT", "int", 16),
        _e("UDINT", "int", 32),
        _e("ULINT", "int", 64),
        _e("BYTE", "bits", 8),
        _e("WORD", "bits", 16),
        _e("DWORD", "bits", 32),
        _e("LWORD", "bits", 64),
        _e("REAL", "real", 32),
        _e("LREAL", "real", 64),
        _e("TIME", "time", 64, True),
    ]
)
BOOL, INT, DINT, LINT, REAL, LREAL, TIME = (
    ELEMENTARY[n] for n in ("BOOL", "INT", "DINT", "LINT", "REAL", "LREAL", "TIME")
)
SIGNED_BY_WIDTH = [ELEMENTARY[n] for n in ("SINT", "INT", "DINT", "LINT")]


def implicitly_converts(src: StType, dst: StType) -> bool:
    """May a value of `src` be assigned to `dst` without a conversion function?"""
    if src is dst or src == dst:
        return True
    src = src.base if isinstance(src, Elementary) else src
    dst = dst.base if isinstance(dst, Elementary) else dst
    if src == dst:
        return True
    if isinstance(src, LiteralType):
        if isinstance(dst, LiteralType):
            return src.kind == dst.kind or dst.kind == "real"
        if isinstance(dst, Elementary):
            if dst.kind == "real":
                return not src.pattern
            if src.pattern:
                return dst.is_integral and dst.subrange is None
            return src.kind == "int" and dst.is_integral and dst.low <= int(src.value) <= dst.high
        return False
    if isinstance(src, StringType) and isinstance(dst, StringType):
        return True
    if isinstance(src, ArrayType) and isinstance(dst, ArrayType):
        return src.dims == dst.dims and str(src.elem) == str(dst.elem)
    if not (isinstance(src, Elementary) and isinstance(dst, Elementary)):
        return False
    if src.is_integral and dst.is_integral:
        return dst.low <= src.low and src.high <= dst.high
    if src.is_integral and dst.kind == "real":
        return True
    return src.name == "REAL" and dst.name == "LREAL"


def eval_type(typ: Elementary) -> Elementary:
    """The type an integer operation on `typ` operands is computed in: at least 32 bits.

    CODESYS computes intermediate results in the target's native width, at least 32 bits ("Operators",
    overflow/underflow in the data type): `wVar + 1` with a WORD 65535 is 65536, not 0. Narrower operands are
    promoted to DINT; 32- and 64-bit operands keep their type. The value is cut to the target's width when it is
    assigned or passed to an input.
    """
    base = typ.base
    return DINT if base.bits < 32 else base


def literal_int_type(value: int) -> Elementary:
    """The smallest type holding an untyped integer constant (CODESYS "Typed literal": the smallest possible type)."""
    for typ in SIGNED_BY_WIDTH:
        if typ.low <= value <= typ.high:
            return typ
    return ELEMENTARY["ULINT"]


def reinterpret_bits(value: int, typ: Elementary) -> int:
    """The low `typ.bits` bits of `value` read as a `typ` (two's complement when signed): 16#FFFF as INT is -1."""
    masked = value & ((1 << typ.bits) - 1)
    return masked - (1 << typ.bits) if typ.signed and masked >> (typ.bits - 1) else masked


def fits_width(value: int, typ: Elementary) -> bool:
    """Does `value` fit `typ`'s bits as a signed or as an unsigned number (-32768..65535 for 16 bits)?"""
    return -(1 << (typ.bits - 1)) <= value < (1 << typ.bits)


def smallest_bit_string(value: int) -> Elementary:
    """The narrowest of BYTE, WORD, DWORD, LWORD whose width holds `value` (as a signed or an unsigned number)."""
    for name in ("BYTE", "WORD", "DWORD"):
        if fits_width(value, ELEMENTARY[name]):
            return ELEMENTARY[name]
    return ELEMENTARY["LWORD"]


def common_type(a: StType, b: StType) -> StType | None:
    """The type both operands of an arithmetic or comparison operator convert to, or None."""
    if isinstance(a, LiteralType) and isinstance(b, LiteralType):
        kind = "real" if "real" in (a.kind, b.kind) else "int"
        return LiteralType(kind, 0.0 if kind == "real" else 0)
    if isinstance(a, LiteralType):
        a, b = b, a
    if isinstance(b, LiteralType):
        if isinstance(a, Elementary) and a.kind in ("int", "bits") and b.kind == "real":
            return REAL
        if implicitly_converts(b, a):
            return a
        if isinstance(a, Elementary) and a.is_integral and b.kind == "int":
            return common_type(a, literal_int_type(int(b.value)))  # a constant outside `a`: its smallest type
        return None
    if implicitly_converts(a, b):
        return b
    if implicitly_converts(b, a):
        return a
    if isinstance(a, Elementary) and isinstance(b, Elementary) and a.is_integral and b.is_integral:
        width = max(a.bits, b.bits)
        wider = [t for t in SIGNED_BY_WIDTH if t.bits > width]
        return wider[0] if wider else LINT
    return None
