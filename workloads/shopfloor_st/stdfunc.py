"""Standard functions (IEC 61131-3 §2.5.1.5): conversions, numeric, selection, bit shifts, strings, comparisons."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from shopfloor_st import model as m
from shopfloor_st.exprgen import Value, literal_code, wrap_code
from shopfloor_st.st_types import (
    BOOL,
    DINT,
    ELEMENTARY,
    INT,
    LREAL,
    REAL,
    TIME,
    Elementary,
    EnumType,
    LiteralType,
    StringType,
    StType,
    common_type,
    implicitly_converts,
    reinterpret_bits,
    smallest_bit_string,
)

if TYPE_CHECKING:
    from shopfloor_st.exprgen import ExprGen

__all__ = ["OPERATOR_FUNCTIONS", "STANDARD_FUNCTIONS", "StandardCall", "operator_expression"]

_MATH = {
    "SQRT": "_math.sqrt",
    "LN": "_math.log",
    "LOG": "_math.log10",
    "EXP": "_math.exp",
    "SIN": "_math.sin",
    "COS": "_math.cos",
    "TAN": "_math.tan",
    "ASIN": "_math.asin",
    "ACOS": "_math.acos",
    "ATAN": "_math.atan",
}
_PARAMS: dict[str, tuple[str, ...]] = {
    "ABS": ("IN",),
    "TRUNC": ("IN",),
    "EXPT": ("IN1", "IN2"),
    "LIMIT": ("MN", "IN", "MX"),
    "SEL": ("G", "IN0", "IN1"),
    "SHL": ("IN", "N"),
    "SHR": ("IN", "N"),
    "ROL": ("IN", "N"),
    "ROR": ("IN", "N"),
    "LEN": ("IN",),
    "LEFT": ("IN", "L"),
    "RIGHT": ("IN", "L"),
    "MID": ("IN", "L", "P"),
    "FIND": ("IN1", "IN2"),
    "INSERT": ("IN1", "IN2", "P"),
    "DELETE": ("IN", "L", "P"),
    "REPLACE": ("IN1", "IN2", "L", "P"),
    "MOVE": ("IN",),
    **{name: ("IN",) for name in _MATH},
    "ATAN2": ("IN1", "IN2"),
    "IS_VALID": ("IN",),
    "IS_VALID_BCD": ("IN",),
    "NE": ("IN1", "IN2"),
}
_VARIADIC = {"MIN": 2, "MAX": 2, "CONCAT": 2, "MUX": 2, **{name: 2 for name in ("GT", "GE", "EQ", "LE", "LT")}}
_COMPARISONS = {"GT": ">", "GE": ">=", "EQ": "=", "LE": "<=", "LT": "<", "NE": "<>"}
# the function forms of the operators (IEC 61131-3 ed. 3, arithmetic and bitwise Boolean functions):
# name -> (operator, extensible); SUB, DIV, MOD take IN1 and IN2, NOT takes IN
OPERATOR_FUNCTIONS: dict[str, tuple[str, bool]] = {
    "ADD": ("+", True),
    "MUL": ("*", True),
    "AND": ("AND", True),
    "OR": ("OR", True),
    "XOR": ("XOR", True),
    "SUB": ("-", False),
    "DIV": ("/", False),
    "MOD": ("MOD", False),
    "NOT": ("NOT", False),
}
_SHIFTS = frozenset(("SHL", "SHR", "ROL", "ROR"))
# name -> (argument kinds: s = STRING, i = integer; runtime helper; result type)
_STRING_FUNCTIONS: dict[str, tuple[str, str, StType]] = {
    "LEN": ("s", "len", INT),
    "LEFT": ("si", "_left", StringType(255)),
    "RIGHT": ("si", "_right", StringType(255)),
    "MID": ("sii", "_mid", StringType(255)),
    "FIND": ("ss", "_find", INT),
    "INSERT": ("ssi", "_insert", StringType(255)),
    "DELETE": ("sii", "_delete", StringType(255)),
    "REPLACE": ("ssii", "_replace", StringType(255)),
}
# TRUNC_INT, TRUNC_DINT, ... and IEC 61131-3 ed. 3's REAL_TRUNC_INT, LREAL_TRUNC_DINT, ...
_TRUNC = re.compile(r"(?:(REAL|LREAL)_)?TRUNC_(SINT|INT|DINT|LINT|USINT|UINT|UDINT|ULINT|BYTE|WORD|DWORD|LWORD)")
# IEC 61131-3 arithmetic functions of TIME: name -> operator; MUL_TIME and DIV_TIME take a number as IN2
_TIME_FUNCTIONS = {"ADD_TIME": "+", "SUB_TIME": "-", "MUL_TIME": "*", "DIV_TIME": "/"}
# IEC 61131-3 ed. 3 BCD conversions: <B>_BCD_TO_<U> decodes a bit string, <U>_TO_BCD_<B> encodes an integer
_BIT_STRINGS = "BYTE|WORD|DWORD|LWORD"
_INTEGERS = "SINT|INT|DINT|LINT|USINT|UINT|UDINT|ULINT"
_FROM_BCD = re.compile(rf"({_BIT_STRINGS})_BCD_TO_({_INTEGERS})")
_TO_BCD = re.compile(rf"({_INTEGERS})_TO_BCD_({_BIT_STRINGS})")
# IEC 61131-3 ed. 3 endianness conversions -> whether they reverse the bytes (this runtime is little-endian)
_ENDIANNESS = {"TO_BIG_ENDIAN": True, "FROM_BIG_ENDIAN": True, "TO_LITTLE_ENDIAN": False, "FROM_LITTLE_ENDIAN": False}
STANDARD_FUNCTIONS = frozenset([*_PARAMS, *_VARIADIC, *OPERATOR_FUNCTIONS])
_CONVERTIBLE: dict[str, StType] = {**ELEMENTARY, "STRING": StringType()}


class StandardCall:
    def __init__(self, gen: ExprGen) -> None:
        self.gen = gen

    def call(self, node: m.Call) -> Value | None:
        assert isinstance(node.func, m.Name)
        name = node.func.name.upper()
        bcd = _FROM_BCD.fullmatch(name) or _TO_BCD.fullmatch(name)
        if bcd is not None:
            args = self.args(node, ("IN",))
            return Value("None", None) if args is None else self.bcd(node, name, args[0], bcd[1], bcd[2])
        if name in _ENDIANNESS:
            args = self.args(node, ("IN",))
            return Value("None", None) if args is None else self.endianness(node, name, args[0])
        if "_TO_" in name or name.startswith("TO_"):
            src_name, _, dst_name = name.rpartition("TO_")
            src_name = src_name.rstrip("_")
            if dst_name in _CONVERTIBLE and (not src_name or src_name in _CONVERTIBLE):
                args = self.args(node, ("IN",))
                return None if args is None else self.conversion(node, args[0], src_name, _CONVERTIBLE[dst_name])
            return None
        if name in OPERATOR_FUNCTIONS:
            return self.operator_function(node, name)
        trunc = _TRUNC.fullmatch(name)
        if trunc is not None:
            args = self.args(node, ("IN",))
            return Value("None", None) if args is None else self.typed_trunc(node, args[0], trunc[1], trunc[2])
        if name in _TIME_FUNCTIONS:
            args = self.args(node, ("IN1", "IN2"))
            return Value("None", None) if args is None else self.time_function(node, name, args)
        if name not in STANDARD_FUNCTIONS:
            return None
        args = self.args(node, _PARAMS.get(name), _VARIADIC.get(name, 0))
        if args is None:
            return Value("None", None)
        if any(a.type is None for a in args):
            return args[next(i for i, a in enumerate(args) if a.type is None)]
        if name in _COMPARISONS:
            return self._compare(node, args, name)
        if name in _SHIFTS:
            return self._shift(node, args, name)
        if name in _STRING_FUNCTIONS:
            return self._string_function(node, name, args)
        method = getattr(self, "f_" + name.lower(), None)
        if method is None:
            return self.f_math(node, name, args)
        return method(node, args)

    def args(self, node: m.Call, params: tuple[str, ...] | None, min_variadic: int = 0) -> list[Value] | None:
        """Arguments in parameter order; reports wrong counts and unknown parameter names."""
        name = node.func.name if isinstance(node.func, m.Name) else "?"
        if any(a.output for a in node.args):
            self.gen.ctx.error(node.line, node.col, f"{name} has no outputs")
            return None
        if params is None:  # variadic: positional, or IN1, IN2, ... (MUX: K, IN0, IN1, ...)
            if len(node.args) < min_variadic:
                self.gen.ctx.error(
                    node.line, node.col, f"{name} expects at least {min_variadic} arguments, got {len(node.args)}"
                )
                return None
            if all(a.name is None for a in node.args):
                return [self.gen.expr(a.value) for a in node.args]
            count = len(node.args)
            params = ("K", *(f"IN{i}" for i in range(count - 1))) if name.upper() == "MUX" else _inputs(count)
        if len(node.args) != len(params):
            self.gen.ctx.error(node.line, node.col, f"{name} expects {len(params)} argument(s), got {len(node.args)}")
            return None
        if all(a.name is None for a in node.args):
            return [self.gen.expr(a.value) for a in node.args]
        by_name = {a.name.upper(): a for a in node.args if a.name}
        unknown = [a for a in node.args if a.name and a.name.upper() not in params]
        if unknown or len(by_name) != len(params):
            bad = unknown[0] if unknown else node
            self.gen.ctx.error(bad.line, bad.col, f"{name} takes the parameters {', '.join(params)}")
            return None
        return [self.gen.expr(by_name[p].value) for p in params]

    # ---- operators written as functions ----------------------------------------------------------------------------

    def operator_function(self, node: m.Call, name: str) -> Value:
        """`ADD(a, b, c)` is `a + b + c`, `MOD(IN1 := a, IN2 := b)` is `a MOD b`, `NOT(x)` is `NOT x`."""
        tree = operator_expression(node)
        return self.gen.error(node, tree) if isinstance(tree, str) else self.gen.expr(tree)

    # ---- conversions ---------------------------------------------------------------------------------------------

    def conversion(self, node: m.Call, arg: Value, src_name: str, dst: StType) -> Value:
        src = arg.type
        if src is None:
            return arg
        if isinstance(src, LiteralType):
            src = ELEMENTARY["LREAL"] if src.kind == "real" else ELEMENTARY["LINT"]
        if isinstance(src, EnumType):
            src = INT
        code = self.gen.settle(arg)
        if src_name and str(src) != src_name and not (src_name == "STRING" and isinstance(src, StringType)):
            expected = _CONVERTIBLE[src_name]
            if not implicitly_converts(arg.type, expected):  # type: ignore[arg-type]
                return self.gen.error(node, f"{src_name}_TO_{dst}: expected {src_name}, got {arg.type}")
            code, src = self.gen.convert(arg, expected, node, "convert"), expected
            arg = Value(code, src)
        elif src_name and isinstance(src, Elementary) and src.is_integral and isinstance(arg.type, Elementary):
            # <S>_TO_<D> takes its input as an S: an expression computed wider is cut to S first
            code = self.gen.fit(arg, src.base)
            arg = Value(code, src)
        line, col = node.line, node.col
        if isinstance(dst, StringType):
            if isinstance(src, StringType):
                return Value(code, dst)
            assert isinstance(src, Elementary)
            text = {"bool": f"('TRUE' if {code} else 'FALSE')", "real": f"_r2s({code})", "time": f"_t2s({code})"}
            return Value(text.get(src.kind, f"str({code})"), dst)
        assert isinstance(dst, Elementary)
        if isinstance(src, StringType):
            parsed = {"bool": f"({code}.strip().upper() == 'TRUE')", "real": f"_s2r({code})", "time": f"_s2t({code})"}
            if dst.kind in parsed:
                value = Value(parsed[dst.kind], dst)
                return Value(f"_f32({value.code})", dst) if dst.name == "REAL" else value
            return Value(f"_s2i({code})", dst, raw=True)
        assert isinstance(src, Elementary)
        if dst.kind == "bool":
            return Value(f"({code} != 0)", BOOL)
        if dst.kind == "real":
            return Value(f"_f32({code})" if dst.name == "REAL" else f"float({code})", dst)
        if src.kind == "real":
            return Value(f"_r2i({code}, {dst.bits}, {dst.signed}, {line}, {col})", dst)
        if src.kind == "bool":
            return Value(f"int({code})", dst)
        if isinstance(arg.type, LiteralType):
            return Value(code, dst, raw=True)
        return Value(self.gen.fit(arg if isinstance(arg.type, Elementary) else Value(code, src), dst.base), dst)

    # ---- numeric -------------------------------------------------------------------------------------------------

    def f_abs(self, node: m.Call, args: list[Value]) -> Value:
        (arg,) = args
        if not self.gen.numeric(arg.type):
            return self.gen.error(node, f"ABS needs a number, not {arg.type}")
        integral = isinstance(arg.type, Elementary) and arg.type.is_integral
        return Value(f"abs({self.gen.settle(arg)})", arg.type, raw=integral, wide=arg.wide)

    def f_math(self, node: m.Call, name: str, args: list[Value]) -> Value:
        (arg,) = args
        if not self.gen.numeric(arg.type):
            return self.gen.error(node, f"{name} needs a number, not {arg.type}")
        code, typ = self.gen.to_real(arg, node)
        call = f"_fm({_MATH[name]}, {code})"
        return Value(f"_f32({call})" if typ.name == "REAL" else call, typ)

    def f_trunc(self, node: m.Call, args: list[Value]) -> Value:
        code, _ = self.gen.to_real(args[0], node)
        return Value(f"_trunc({code}, {node.line}, {node.col})", DINT)

    def typed_trunc(self, node: m.Call, arg: Value, src_name: str | None, dst_name: str) -> Value:
        """TRUNC_<T>(x): the integer part of a REAL/LREAL as a T (CODESYS "Operator: TRUNC_INT")."""
        dst = ELEMENTARY[dst_name]
        wanted = ELEMENTARY[src_name] if src_name else None
        if not (isinstance(arg.type, Elementary | LiteralType) and arg.type.kind in ("real", "int", "bits")):
            return self.gen.error(
                node,
                f"{node.func.name if isinstance(node.func, m.Name) else 'TRUNC'}: expected a number, got {arg.type}",
            )
        if wanted is not None and not implicitly_converts(arg.type, wanted):
            return self.gen.error(node, f"{src_name}_TRUNC_{dst_name}: expected {src_name}, got {arg.type}")
        code, _ = self.gen.to_real(arg, node) if wanted is None else (self.gen.convert(arg, wanted, node), wanted)
        return Value(f"_trunc_to({code}, {dst.bits}, {dst.signed}, {node.line}, {node.col})", dst)

    def time_function(self, node: m.Call, name: str, args: list[Value]) -> Value:
        """ADD_TIME(t1, t2), SUB_TIME(t1, t2), MUL_TIME(t, n), DIV_TIME(t, n): the TIME operators as functions."""
        from shopfloor_st.operators import time_arith

        first, second = args
        if first.type != TIME:
            return self.gen.error(node, f"{name}: IN1 must be TIME, not {first.type}")
        if name in ("ADD_TIME", "SUB_TIME") and second.type != TIME:
            return self.gen.error(node, f"{name}: IN2 must be TIME, not {second.type}")
        if name in ("MUL_TIME", "DIV_TIME") and not self.gen.numeric(second.type):
            return self.gen.error(node, f"{name}: IN2 must be a number, not {second.type}")
        return time_arith(self.gen, node, _TIME_FUNCTIONS[name], first, second)

    def f_atan2(self, node: m.Call, args: list[Value]) -> Value:
        """ATAN2(Y, X): the angle of the point (X, Y), in -pi..pi (IEC 61131-3 ed. 3)."""
        if not all(self.gen.numeric(arg.type) for arg in args):
            return self.gen.error(node, f"ATAN2 needs numbers, not {args[0].type} and {args[1].type}")
        typ = LREAL if LREAL in (args[0].type, args[1].type) else REAL
        y, x = (self.gen.convert(arg, typ, node, "convert") for arg in args)
        call = f"_math.atan2({y}, {x})"
        return Value(f"_f32({call})" if typ == REAL else call, typ)

    def f_is_valid(self, node: m.Call, args: list[Value]) -> Value:
        """IS_VALID(x): FALSE for a REAL or LREAL that is NaN or infinite (IEC 61131-3 ed. 3, validate functions)."""
        (arg,) = args
        if not (isinstance(arg.type, Elementary) and arg.type.kind == "real"):
            return self.gen.error(node, f"IS_VALID needs REAL or LREAL, not {arg.type}")
        return Value(f"_math.isfinite({arg.code})", BOOL)

    def f_is_valid_bcd(self, node: m.Call, args: list[Value]) -> Value:
        """IS_VALID_BCD(x): TRUE when every nibble of the bit string is a decimal digit."""
        (arg,) = args
        if not (isinstance(arg.type, Elementary) and arg.type.kind == "bits"):
            return self.gen.error(node, f"IS_VALID_BCD needs a bit string (BYTE, WORD, DWORD, LWORD), not {arg.type}")
        return Value(f"_valid_bcd({self.gen.settle(arg)})", BOOL)

    def bcd(self, node: m.Call, name: str, arg: Value, src_name: str, dst_name: str) -> Value:
        """WORD_BCD_TO_UINT(16#1234) = 1234, UINT_TO_BCD_WORD(1234) = 16#1234; a digit above 9, a negative value or
        one with too many digits faults."""
        src, dst = ELEMENTARY[src_name], ELEMENTARY[dst_name]
        if arg.type is not None and not implicitly_converts(arg.type, src):
            return self.gen.error(node, f"{name}: expected {src}, got {arg.type}")
        code, line, col = self.gen.convert(arg, src, node, "convert"), node.line, node.col
        if src.kind == "bits":
            return Value(wrap_code(f"_bcd2i({code}, {line}, {col})", dst), dst)
        return Value(f"_i2bcd({code}, {dst.bits}, {line}, {col})", dst)

    def endianness(self, node: m.Call, name: str, arg: Value) -> Value:
        """TO_BIG_ENDIAN(x) and FROM_BIG_ENDIAN(x) reverse the bytes of x's type; the LITTLE_ENDIAN forms are x."""
        typ = arg.type
        if not (isinstance(typ, Elementary) and typ.is_integral):
            return self.gen.error(node, f"{name} needs a typed integer or bit string, not {typ}")
        code = self.gen.fit(arg, typ.base)
        if not _ENDIANNESS[name] or typ.bits == 8:
            return Value(code, typ)
        return Value(f"_bswap({code}, {typ.bits // 8}, {typ.signed})", typ)

    def f_expt(self, node: m.Call, args: list[Value]) -> Value:
        from shopfloor_st.operators import binary

        return binary(self.gen, m.Binary(node.line, node.col, "**", node.args[0].value, node.args[1].value))

    def _common(self, node: m.Call, name: str, args: list[Value]) -> StType | None:
        typ: StType | None = args[0].type
        for arg in args[1:]:
            typ = common_type(typ, arg.type) if typ is not None and arg.type is not None else None
            if typ is None and not (isinstance(arg.type, StringType) and isinstance(args[0].type, StringType)):
                self.gen.ctx.error(
                    node.line, node.col, f"{name}: arguments of types {args[0].type} and {arg.type} do not mix"
                )
                return None
            typ = typ or args[0].type
        return typ

    def f_min(self, node: m.Call, args: list[Value], fn: str = "min") -> Value:
        typ = self._common(node, fn.upper(), args)
        if typ is None:
            return Value("None", None)
        codes = ", ".join(self.gen.convert(a, typ, node, "convert") for a in args)
        return Value(f"{fn}({codes})", typ)

    def f_max(self, node: m.Call, args: list[Value]) -> Value:
        return self.f_min(node, args, "max")

    def f_limit(self, node: m.Call, args: list[Value]) -> Value:
        typ = self._common(node, "LIMIT", args)
        if typ is None:
            return Value("None", None)
        codes = ", ".join(self.gen.convert(a, typ, node, "convert") for a in args)
        return Value(f"_limit({codes})", typ)

    def f_sel(self, node: m.Call, args: list[Value]) -> Value:
        g = self.gen.convert(args[0], BOOL, node, "convert")
        typ = self._common(node, "SEL", args[1:])
        if typ is None:
            return Value("None", None)
        a, b = (self.gen.convert(x, typ, node, "convert") for x in args[1:])
        return Value(f"({b} if {g} else {a})", typ)

    def f_mux(self, node: m.Call, args: list[Value]) -> Value:
        k = self.gen.settle(args[0])
        if not (isinstance(args[0].type, LiteralType | Elementary) and args[0].type.kind in ("int", "bits")):
            return self.gen.error(node, f"MUX selector must be an integer, not {args[0].type}")
        typ = self._common(node, "MUX", args[1:])
        if typ is None:
            return Value("None", None)
        codes = ", ".join(self.gen.convert(a, typ, node, "convert") for a in args[1:])
        return Value(f"_mux({k}, {node.line}, {node.col}, {codes})", typ)

    # ---- bit strings ---------------------------------------------------------------------------------------------

    def _shift(self, node: m.Call, args: list[Value], name: str) -> Value:
        value, count = args
        typ = value.type
        if isinstance(typ, LiteralType) and typ.kind == "int" and value.code == literal_code(typ.value):
            # CODESYS gives an untyped constant its smallest type; its static analysis rule SA0024 flags constants
            # like this one, whose result depends on that width (`ROL(1, n)` rotates a BYTE: write DWORD#1)
            constant = int(typ.value)
            typ = smallest_bit_string(constant)
            self.gen.ctx.warn(
                node.line,
                node.col,
                f"{name} works on the untyped constant {constant} as a {typ}, its smallest type; "
                f"write a typed literal ({typ}#..., DWORD#...) to choose the width",
            )
            value = Value(literal_code(reinterpret_bits(constant, typ)), typ)
        if not (isinstance(typ, Elementary) and typ.is_integral):
            return self.gen.error(node, f"{name} needs a bit string or integer, not {typ}")
        a, n = self.gen.settle(value), self.gen.settle(count)
        mask = (1 << typ.bits) - 1
        if name == "SHL":  # shifts and rotations work on the bits of IN's type
            code = f"(({a} << {n}) & {mask})"
        elif name == "SHR":
            code = f"(({a} & {mask}) >> {n})"
        else:
            helper = "_rol" if name == "ROL" else "_ror"
            code = f"{helper}({a} & {mask}, {n}, {typ.bits})"
        return Value(wrap_code(code, typ.base) if typ.signed else code, typ)

    # ---- strings -------------------------------------------------------------------------------------------------

    def _strings(self, node: m.Call, name: str, args: list[Value], kinds: str) -> list[str] | None:
        """Codes of the arguments; `kinds` has one letter per argument: s = STRING, i = integer."""
        codes = []
        for arg, kind in zip(args, kinds, strict=True):
            ok = (
                isinstance(arg.type, StringType)
                if kind == "s"
                else self.gen.numeric(arg.type)
                and not (isinstance(arg.type, Elementary | LiteralType) and arg.type.kind == "real")
            )
            if not ok:
                self.gen.ctx.error(
                    node.line, node.col, f"{name}: expected {'STRING' if kind == 's' else 'an integer'}, got {arg.type}"
                )
                return None
            codes.append(self.gen.settle(arg))
        return codes

    def _string_result(
        self, node: m.Call, name: str, args: list[Value], kinds: str, template: str, typ: StType
    ) -> Value:
        codes = self._strings(node, name, args, kinds)
        return Value(template.format(*codes), typ) if codes is not None else Value("None", None)

    def _string_function(self, node: m.Call, name: str, args: list[Value]) -> Value:
        kinds, helper, typ = _STRING_FUNCTIONS[name]
        template = f"{helper}({', '.join(f'{{{i}}}' for i in range(len(kinds)))})"
        return self._string_result(node, name, args, kinds, template, typ)

    def f_concat(self, node: m.Call, args: list[Value]) -> Value:
        return self._string_result(
            node,
            "CONCAT",
            args,
            "s" * len(args),
            "(" + " + ".join(f"{{{i}}}" for i in range(len(args))) + ")",
            StringType(255),
        )

    # ---- comparison functions and MOVE ---------------------------------------------------------------------------

    def _compare(self, node: m.Call, args: list[Value], name: str) -> Value:
        """GT(a, b, c) is (a > b) AND (b > c): the inputs are a decreasing sequence (IEC 61131-3 ed. 3, comparison
        functions); each input is evaluated once."""
        from shopfloor_st.operators import compare

        op = _COMPARISONS[name]
        if len(args) == 2:
            return compare(self.gen, node, op, args[0], args[1])
        parts = []
        left = args[0]
        for index, right in enumerate(args[1:], start=1):
            if index < len(args) - 1:  # a middle input: name it for the next comparison
                t = self.gen.temp()
                value = compare(
                    self.gen, node, op, left, Value(f"({t} := {right.code})", right.type, right.raw, right.wide)
                )
                left = Value(t, right.type, right.raw, right.wide)
            else:
                value = compare(self.gen, node, op, left, right)
            if value.type is None:
                return value
            parts.append(value.code)
        return Value(f"({' and '.join(parts)})", BOOL)

    def f_move(self, node: m.Call, args: list[Value]) -> Value:
        return args[0]


def operator_expression(node: m.Call) -> m.Expr | str:
    """The operator expression a function form of an operator stands for (`ADD(a, b, c)` is `a + b + c`,
    `MOD(IN1 := a, IN2 := b)` is `a MOD b`, `NOT(IN := x)` is `NOT x`), or what is wrong with the call."""
    assert isinstance(node.func, m.Name)
    name = node.func.name.upper()
    op, extensible = OPERATOR_FUNCTIONS[name]
    if any(a.output for a in node.args):
        return f"{name} has no outputs"
    count = len(node.args)
    if name == "NOT":
        params: tuple[str, ...] = ("IN",)
    elif extensible and count >= 2:
        params = _inputs(count)
    else:
        params = ("IN1", "IN2")
    if count != len(params):
        return f"{name} expects {'at least 2' if extensible else len(params)} argument(s), got {count}"
    exprs = [a.value for a in node.args]
    if any(a.name is not None for a in node.args):
        by_name = {a.name.upper(): a for a in node.args if a.name}
        if any(a.name is None for a in node.args) or set(by_name) != set(params):
            return f"{name} takes the parameters {', '.join(params)}"
        exprs = [by_name[p].value for p in params]
    if name == "NOT":
        return m.Unary(node.line, node.col, "NOT", exprs[0])
    tree = exprs[0]
    for operand in exprs[1:]:
        tree = m.Binary(node.line, node.col, op, tree, operand)
    return tree


def _inputs(count: int) -> tuple[str, ...]:
    return tuple(f"IN{i}" for i in range(1, count + 1))


def implicit_int(src: Elementary, dst: Elementary) -> bool:
    return src.is_integral and dst.is_integral and dst.low <= src.low and src.high <= dst.high
