"""Literal text to values: integers in any base, reals, durations and strings with `$` escapes."""

import re

__all__ = ["format_duration", "parse_duration_ms", "parse_integer", "parse_real", "parse_string"]

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|ns|d|h|m|s)", re.IGNORECASE)
_UNIT_MS = {"d": 86_400_000.0, "h": 3_600_000.0, "m": 60_000.0, "s": 1000.0, "ms": 1.0, "us": 1e-3, "ns": 1e-6}
_ESCAPES = {"$": "$", "'": "'", '"': '"', "L": "\n", "N": "\n", "P": "\f", "R": "\r", "T": "\t"}


def parse_integer(text: str) -> int:
    """`1_000`, `-5`, `16#FF`, `2#1010`, `8#17`; raises ValueError."""
    text = text.replace("_", "")
    sign = -1 if text.startswith("-") else 1
    text = text.lstrip("+-")
    if "#" in text:
        base, digits = text.split("#", 1)
        return sign * int(digits, int(base))
    return sign * int(text, 10)


def parse_real(text: str) -> float:
    return float(text.replace("_", ""))


def parse_duration_ms(text: str) -> int:
    """`T#1s500ms`, `TIME#-5ms`, `t#1.5S`, `1h_30m` -> whole milliseconds (fractions of a millisecond drop)."""
    body = text.split("#", 1)[1] if "#" in text else text
    body = body.replace("_", "").strip()
    sign = -1 if body.startswith("-") else 1
    body = body.lstrip("+-")
    total, pos = 0.0, 0
    for match in _DURATION_PART.finditer(body):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_MS[match.group(2).lower()]
        pos = match.end()
    if pos != len(body) or not body:
        raise ValueError(f"not a duration: {text!r}")
    return sign * int(total + 1e-9)


def format_duration(ms: int) -> str:
    """Milliseconds as an ST duration literal, e.g. `T#1m2s500ms`."""
    if ms == 0:
        return "T#0ms"
    sign, ms = ("-" if ms < 0 else ""), abs(ms)
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, ms = divmod(ms, size)
        if count:
            parts.append(f"{count}{unit}")
    return f"T#{sign}{''.join(parts)}"


def parse_string(text: str) -> str:
    """A quoted ST string literal (`'it$'s$N'`) to its value; raises ValueError on a bad `$` escape."""
    body = text[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "$":
            out.append(ch)
            i += 1
            continue
        nxt = body[i + 1 : i + 2]
        if nxt.upper() in _ESCAPES:
            out.append(_ESCAPES[nxt.upper()])
            i += 2
        elif re.fullmatch(r"[0-9A-Fa-f]{2}", body[i + 1 : i + 3]):
            out.append(chr(int(body[i + 1 : i + 3], 16)))
            i += 3
        else:
            raise ValueError(f"invalid escape ${nxt} in string literal")
    return "".join(out)
