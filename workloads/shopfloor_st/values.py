"""Values between Python and ST: checked coercion (for `set` and initial values), text parsing, JSON snapshots."""

from __future__ import annotations

import math
from typing import Any

from shopfloor_st.literals import parse_duration_ms, parse_integer
from shopfloor_st.st_types import ArrayType, Elementary, EnumType, FbType, LiteralType, StringType, StructType, StType

__all__ = ["coerce", "from_json", "parse_text", "to_json"]


def coerce(value: Any, typ: StType, name: str) -> Any:
    """`value` as the Python value of an ST variable of type `typ`; ValueError naming the variable otherwise."""
    if isinstance(typ, Elementary):
        if typ.kind == "bool":
            if isinstance(value, bool) or value in (0, 1):
                return bool(value)
            raise ValueError(f"{name}: BOOL needs TRUE/FALSE, got {value!r}")
        if typ.kind == "real":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name}: {typ} needs a number, got {value!r}")
            from shopfloor_st.runtime import f32

            return f32(float(value)) if typ.name == "REAL" else float(value)
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise ValueError(f"{name}: {typ} needs an integer, got {value!r}")
        if typ.kind == "time":
            return value
        low, high = typ.subrange or (typ.low, typ.high)
        if not low <= value <= high:
            raise ValueError(f"{name}: {value} is out of the range of {typ} ({low}..{high})")
        return value
    if isinstance(typ, StringType):
        if not isinstance(value, str):
            raise ValueError(f"{name}: {typ} needs a string, got {value!r}")
        return value[: typ.length]
    if isinstance(typ, EnumType):
        if isinstance(value, str) and value.upper() in typ.values:
            return typ.values[value.upper()]
        if isinstance(value, int) and not isinstance(value, bool) and value in typ.values.values():
            return value
        raise ValueError(f"{name}: {value!r} is not a value of {typ.name} ({', '.join(typ.spelling.values())})")
    if isinstance(typ, LiteralType):
        return value
    raise ValueError(f"{name}: {typ} is not an elementary type")


def parse_text(text: str, typ: StType, name: str) -> Any:
    """A value written as text (`--set NAME=VALUE`): TRUE/FALSE, integers in any base, reals, T#.../ms, strings."""
    raw = text.strip()
    try:
        if isinstance(typ, Elementary):
            if typ.kind == "bool":
                upper = raw.upper()
                if upper in ("TRUE", "1", "FALSE", "0"):
                    return upper in ("TRUE", "1")
                raise ValueError(f"{name}: BOOL needs TRUE or FALSE, got {text!r}")
            if typ.kind == "time":
                if "#" in raw or raw[-1:].isalpha():
                    return parse_duration_ms(raw)
                return coerce(parse_integer(raw), typ, name)
            if typ.kind == "real":
                number = float(raw.replace("_", ""))
                if math.isnan(number):
                    return coerce(number, typ, name)
                return coerce(number, typ, name)
            if "#" in raw and not raw.split("#", 1)[0].isdigit():
                raw = raw.split("#", 1)[1]
            return coerce(parse_integer(raw), typ, name)
        if isinstance(typ, StringType):
            if len(raw) >= 2 and raw[0] == raw[-1] == "'":
                from shopfloor_st.literals import parse_string

                return coerce(parse_string(raw), typ, name)
            return coerce(text, typ, name)
        if isinstance(typ, EnumType):
            return coerce(raw.split("#")[-1].split(".")[-1], typ, name)
    except ValueError as exc:
        message = str(exc)
        raise ValueError(
            message if message.startswith(f"{name}:") else f"{name}: cannot read {text!r} as {typ}"
        ) from None
    raise ValueError(f"{name}: {typ} cannot be set from text")


def to_json(value: Any, typ: StType) -> Any:
    """JSON-ready value: BOOL as bool, integers, REAL as float, TIME as ms, enums by name, arrays as lists,
    structures and function block instances as objects."""
    if isinstance(typ, Elementary):
        if typ.kind == "real":
            number = float(value)
            return number if math.isfinite(number) else str(number)
        return value
    if isinstance(typ, StringType):
        return value
    if isinstance(typ, EnumType):
        return typ.name_of(value)
    if isinstance(typ, ArrayType):
        return _array_json(value, typ, len(typ.dims))
    if isinstance(typ, StructType):
        return {f.name: to_json(getattr(value, f.attr), f.type) for f in typ.fields.values()}
    if isinstance(typ, FbType):
        return {
            f.name: to_json(getattr(value, f.attr), f.type) for f in typ.members.values() if f.section != "VAR_TEMP"
        }
    return value


def _array_json(value: list[Any], typ: ArrayType, depth: int) -> list[Any]:
    if depth == 1:
        return [to_json(v, typ.elem) for v in value]
    return [_array_json(v, typ, depth - 1) for v in value]


def from_json(data: Any, typ: StType, current: Any, name: str) -> Any:
    """The inverse of `to_json`, applied onto `current` (structures and FB instances are updated in place).

    Raises ValueError naming the variable when the data does not fit the type (a checkpoint from another revision).
    """
    if isinstance(typ, Elementary) and typ.kind == "real" and isinstance(data, str):
        return coerce(float(data), typ, name)
    if isinstance(typ, ArrayType):
        return _array_from_json(data, typ, current, name, len(typ.dims))
    if isinstance(typ, StructType | FbType):
        members = typ.fields if isinstance(typ, StructType) else typ.members
        if not isinstance(data, dict):
            raise ValueError(f"{name}: {typ} needs an object, got {data!r}")
        for key, value in data.items():
            member = members.get(key.upper())
            if member is None or member.section == "VAR_TEMP":
                raise ValueError(f"{name}: {typ} has no member {key!r}")
            inner = f"{name}.{member.name}"
            setattr(current, member.attr, from_json(value, member.type, getattr(current, member.attr), inner))
        return current
    return coerce(data, typ, name)


def _array_from_json(data: Any, typ: ArrayType, current: list[Any], name: str, depth: int) -> list[Any]:
    if not isinstance(data, list) or len(data) != len(current):
        raise ValueError(f"{name}: expected a list of {len(current)} values")
    if depth == 1:
        return [from_json(d, typ.elem, c, f"{name}[{i}]") for i, (d, c) in enumerate(zip(data, current, strict=True))]
    return [_array_from_json(d, typ, c, name, depth - 1) for d, c in zip(data, current, strict=True)]
