"""Helpers that generated code calls: single-precision rounding, IEC division, faults, copies and conversions.

Everything here is on the scan's path, so each helper is a plain function with no per-call allocation beyond its
result.
"""

from __future__ import annotations

import copy
import math
import struct
from typing import Any

from shopfloor_st.errors import RuntimeFault

_F32 = struct.Struct("<f")
_pack, _unpack = _F32.pack, _F32.unpack


def f32(value: float) -> float:
    """Round to IEEE single precision, as a REAL holds it (overflow gives +/-inf like the FPU does)."""
    try:
        return _unpack(_pack(value))[0]
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def idiv(a: int, b: int, line: int, col: int) -> int:
    """Integer division truncating toward zero; division by zero faults the PLC."""
    if b == 0:
        raise RuntimeFault("division by zero", line, col)
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def imod(a: int, b: int, line: int, col: int) -> int:
    """MOD with the sign of the dividend (CODESYS); MOD 0 faults the PLC."""
    if b == 0:
        raise RuntimeFault("division by zero (MOD 0)", line, col)
    r = abs(a) % abs(b)
    return -r if a < 0 else r


def rdiv(a: float, b: float, line: int, col: int) -> float:
    if b == 0:
        raise RuntimeFault("division by zero", line, col)
    return a / b


def expt(a: float, b: float, line: int, col: int) -> float:
    try:
        result = math.pow(a, b)
    except (ValueError, ZeroDivisionError):
        raise RuntimeFault(f"EXPT({a}, {b}) is undefined", line, col) from None
    except OverflowError:
        return math.inf
    return result


def index_fault(index: int, low: int, high: int, line: int, col: int) -> int:
    raise RuntimeFault(f"array index {index} out of range {low}..{high}", line, col)


def subrange_fault(value: int, low: int, high: int, line: int, col: int) -> int:
    raise RuntimeFault(f"value {value} out of the subrange {low}..{high}", line, col)


def aborted(line: int, col: int) -> None:
    raise RuntimeFault("scan aborted (watchdog)", line, col)


def math_call(fn: Any, value: float) -> float:
    """A math function with IEEE results outside its domain (SQRT(-1) = NaN, LN(0) = -inf), as the FPU gives."""
    try:
        return fn(value)
    except ValueError:
        return -math.inf if value == 0 else math.nan
    except OverflowError:
        return math.inf


def deep_copy(value: Any) -> Any:
    """Value semantics for assigning arrays and structures."""
    return copy.deepcopy(value)


def make(cls: Any, **values: Any) -> Any:
    """An instance of a generated structure class with some members set (initialisers)."""
    obj = cls()
    for key, value in values.items():
        setattr(obj, key, value)
    return obj


def make_fb(cls: type, globals_: Any, **values: Any) -> Any:
    obj = cls(globals_)
    for key, value in values.items():
        setattr(obj, key, value)
    return obj


def wrap_signed(value: int, bits: int) -> int:
    half = 1 << (bits - 1)
    return ((value + half) & ((1 << bits) - 1)) - half


def real_to_int(value: float, bits: int, signed: bool, line: int, col: int) -> int:
    """REAL -> integer: round half away from zero (CODESYS), wrap at the width; NaN/inf fault."""
    if math.isnan(value) or math.isinf(value):
        raise RuntimeFault(f"cannot convert {value} to an integer", line, col)
    rounded = math.floor(abs(value) + 0.5) * (1 if value >= 0 else -1)
    return wrap_signed(rounded, bits) if signed else rounded & ((1 << bits) - 1)


def trunc_to_int(value: float, line: int, col: int) -> int:
    if math.isnan(value) or math.isinf(value):
        raise RuntimeFault(f"cannot convert {value} to an integer", line, col)
    return wrap_signed(int(value), 32)


def trunc_to(value: float, bits: int, signed: bool, line: int, col: int) -> int:
    """TRUNC_<T>: the integer part (toward zero), wrapped at T's width; NaN/inf fault."""
    if math.isnan(value) or math.isinf(value):
        raise RuntimeFault(f"cannot convert {value} to an integer", line, col)
    return wrap_signed(int(value), bits) if signed else int(value) & ((1 << bits) - 1)


def rol(value: int, count: int, bits: int) -> int:
    count %= bits
    mask = (1 << bits) - 1
    return ((value << count) | (value >> (bits - count))) & mask


def ror(value: int, count: int, bits: int) -> int:
    return rol(value, bits - (count % bits), bits)


def bcd_to_int(value: int, line: int, col: int) -> int:
    """`WORD_BCD_TO_UINT` and the other BCD decodings: each nibble is a decimal digit; one above 9 faults."""
    if not is_valid_bcd(value):
        raise RuntimeFault(f"16#{value:X} is not a BCD value (a digit above 9)", line, col)
    return int(f"{value:x}")


def int_to_bcd(value: int, bits: int, line: int, col: int) -> int:
    """`UINT_TO_BCD_WORD` and the other BCD encodings: one decimal digit per nibble; a value that does not fit (or
    is negative) faults."""
    if not 0 <= value < 10 ** (bits // 4):
        raise RuntimeFault(f"{value} does not fit {bits // 4} BCD digits", line, col)
    return int(str(value), 16)


def is_valid_bcd(value: int) -> bool:
    return all(int(digit, 16) <= 9 for digit in f"{value:x}")


def swap_bytes(value: int, width: int, signed: bool) -> int:
    """The value with its `width` bytes in the opposite order (TO_BIG_ENDIAN on this little-endian runtime)."""
    return int.from_bytes(value.to_bytes(width, "little", signed=signed), "big", signed=signed)


def find(haystack: str, needle: str) -> int:
    """FIND: 1-based position of the first match, 0 when absent."""
    return haystack.find(needle) + 1 if needle else 0


def mid(text: str, length: int, position: int) -> str:
    """MID(IN, L, P): L characters from the 1-based position P."""
    if position < 1 or length < 0:
        return ""
    return text[position - 1 : position - 1 + length]


def left(text: str, length: int) -> str:
    return text[: max(length, 0)]


def right(text: str, length: int) -> str:
    return text[-length:] if length > 0 else ""


def insert(text: str, inserted: str, position: int) -> str:
    """INSERT(IN1, IN2, P): IN2 after the first P characters of IN1."""
    at = max(position, 0)
    return text[:at] + inserted + text[at:]


def delete(text: str, length: int, position: int) -> str:
    """DELETE(IN, L, P): remove L characters from the 1-based position P."""
    at = max(position - 1, 0)
    return text[:at] + text[at + max(length, 0) :]


def replace(text: str, replacement: str, length: int, position: int) -> str:
    """REPLACE(IN1, IN2, L, P): L characters from the 1-based position P replaced by IN2."""
    at = max(position - 1, 0)
    return text[:at] + replacement + text[at + max(length, 0) :]


def string_to_int(text: str) -> int:
    from shopfloor_st.literals import parse_integer

    try:
        return parse_integer(text.strip())
    except ValueError:
        return 0


def string_to_real(text: str) -> float:
    try:
        return float(text.strip().replace("_", ""))
    except ValueError:
        return 0.0


def real_to_string(value: float) -> str:
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def string_to_time(text: str) -> int:
    from shopfloor_st.literals import parse_duration_ms

    try:
        return parse_duration_ms(text.strip())
    except ValueError:
        return 0


def time_to_string(value: int) -> str:
    from shopfloor_st.literals import format_duration

    return format_duration(value)


def mux(index: int, line: int, col: int, *values: Any) -> Any:
    if not 0 <= index < len(values):
        raise RuntimeFault(f"MUX selector {index} out of range 0..{len(values) - 1}", line, col)
    return values[index]


def limit(low: Any, value: Any, high: Any) -> Any:
    return low if value < low else high if value > high else value


HELPERS: dict[str, Any] = {
    "_f32": f32,
    "_idiv": idiv,
    "_imod": imod,
    "_rdiv": rdiv,
    "_expt": expt,
    "_oob": index_fault,
    "_aborted": aborted,
    "_range": subrange_fault,
    "_copy": deep_copy,
    "_make": make,
    "_make_fb": make_fb,
    "_r2i": real_to_int,
    "_trunc": trunc_to_int,
    "_trunc_to": trunc_to,
    "_rol": rol,
    "_bcd2i": bcd_to_int,
    "_i2bcd": int_to_bcd,
    "_valid_bcd": is_valid_bcd,
    "_bswap": swap_bytes,
    "_ror": ror,
    "_find": find,
    "_mid": mid,
    "_left": left,
    "_right": right,
    "_insert": insert,
    "_delete": delete,
    "_replace": replace,
    "_s2i": string_to_int,
    "_s2r": string_to_real,
    "_r2s": real_to_string,
    "_s2t": string_to_time,
    "_t2s": time_to_string,
    "_mux": mux,
    "_limit": limit,
    "_math": math,
    "_fm": math_call,
}
