"""Source rewrites that keep every character at its place, for what the tree-sitter grammar does not parse.

The grammar (tree-sitter-iec61131-3-st 0.1.2) stumbles on nested comments, `STRING[80]` and enumeration literals
written `Color#Red`. Each rewrite keeps the text length and the line breaks, so positions in the tree are positions
in the user's file:
- comments (`(* *)`, nested; `/* */`; `//`) and pragmas (`{...}`) become spaces;
- `STRING[n]` becomes `STRING(n)`;
- a FUNCTION's result type `STRING(n)` (or `STRING[n]`) becomes the name `STRING_n_`, read back as `STRING(n)`;
- an enumeration's base type (`TYPE E : BYTE (a := 1, b := 2)`, CODESYS's `(a := 1, b := 2) BYTE`) is blanked;
- `T#1_000ms` becomes `T#1000ms` and a blank after it (the grammar has no underscores in durations);
- `NOT(IN := x)` becomes `NOT(      x)` (the grammar reads NOT only as the operator);
- `Type#Name` (an enumeration value, not a typed literal such as `INT#5` or `T#1s`) becomes `Type.Name`.
"""

import re

__all__ = ["TYPED_LITERAL_PREFIXES", "preprocess"]

TYPED_LITERAL_PREFIXES = frozenset(
    [
        "BOOL",
        "SINT",
        "INT",
        "DINT",
        "LINT",
        "USINT",
        "UINT",
        "UDINT",
        "ULINT",
        "BYTE",
        "WORD",
        "DWORD",
        "LWORD",
        "REAL",
        "LREAL",
        "TIME",
        "T",
        "LTIME",
        "DATE",
        "D",
        "TIME_OF_DAY",
        "TOD",
        "DATE_AND_TIME",
        "DT",
        "STRING",
        "WSTRING",
    ]
)

_STRING_BRACKET = re.compile(r"\b(W?STRING)(\s*)\[(\s*\d+\s*)\]", re.IGNORECASE)
# a FUNCTION's result type STRING(n): the grammar takes only a type name there, so it is spelled as the name
# `STRING_n_` (same length), which the parser reads back as STRING(n)
_STRING_RESULT = re.compile(r"(\bFUNCTION\s+\w+\s*:\s*)(STRING)(\s*\(\s*(\d+)\s*\))", re.IGNORECASE)
# an enumeration's integer base type, before (IEC 61131-3 ed. 3) or after (CODESYS) the list of values: blanked
_INT_TYPES = "SINT|INT|DINT|LINT|USINT|UINT|UDINT|ULINT|BYTE|WORD|DWORD|LWORD"
_ENUM_BASE_BEFORE = re.compile(rf"(\bTYPE\s+\w+\s*:\s*)({_INT_TYPES})(?=\s*\(\s*[A-Za-z_])", re.IGNORECASE)
_ENUM_BASE_AFTER = re.compile(rf"(\)\s*)\b({_INT_TYPES})\b(?=\s*(?::=|;))", re.IGNORECASE)
_DURATION = re.compile(r"(?<![\w#])(?:LTIME|TIME|T)#[-+]?\d[\w.]*", re.IGNORECASE)
_NOT_FORMAL = re.compile(r"\b(NOT\s*\(\s*)(IN\s*:=)", re.IGNORECASE)
_ENUM_LITERAL = re.compile(r"(?<![\w#])([A-Za-z_]\w*)#(?=[A-Za-z_])")


def _blank(text: str) -> str:
    return "".join("\n" if ch == "\n" else " " for ch in text)


def _segments(source: str) -> list[tuple[bool, str]]:
    """(is_string_literal, text) pieces of the source, with comments and pragmas already blanked."""
    out: list[tuple[bool, str]] = []
    i, n = 0, len(source)
    while i < n:
        ch = source[i]
        if ch in "'\"":
            j = i + 1
            while j < n and source[j] != ch and source[j] != "\n":
                j += 2 if source[j] == "$" else 1
            out.append((True, source[i : j + 1]))
            i = j + 1
        elif source.startswith("(*", i) or source.startswith("/*", i):
            opener, closer = source[i : i + 2], "*)" if ch == "(" else "*/"
            depth, j = 1, i + 2
            while j < n and depth:
                if source.startswith(opener, j):
                    depth, j = depth + 1, j + 2
                elif source.startswith(closer, j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append((False, _blank(source[i:j])))
            i = j
        elif source.startswith("//", i):
            j = source.find("\n", i)
            j = n if j < 0 else j
            out.append((False, _blank(source[i:j])))
            i = j
        elif ch == "{":
            j = source.find("}", i)
            j = n if j < 0 else j + 1
            out.append((False, _blank(source[i:j])))
            i = j
        else:
            j = i + 1
            while j < n and source[j] not in "'\"(/{":
                j += 1
            out.append((False, source[i:j]))
            i = j
    return out


def _enum_literal(match: re.Match[str]) -> str:
    prefix = match.group(1)
    return match.group(0) if prefix.upper() in TYPED_LITERAL_PREFIXES else prefix + "."


def _string_result(match: re.Match[str]) -> str:
    spelled = f"{match.group(2)}_{match.group(4)}"
    return match.group(1) + spelled + "_" * (len(match.group(2)) + len(match.group(3)) - len(spelled))


def _duration(match: re.Match[str]) -> str:
    text = match.group(0)
    return text.replace("_", "") + " " * text.count("_") if "_" in text else text


def preprocess(source: str) -> str:
    """The source with the rewrites above applied; same length, same line breaks."""
    pieces: list[str] = []
    code: list[str] = []
    for is_string, text in [*_segments(source), (True, "")]:
        if not is_string:
            code.append(text)
            continue
        joined = "".join(code)
        joined = _STRING_BRACKET.sub(lambda m: f"{m.group(1)}{m.group(2)}({m.group(3)})", joined)
        joined = _STRING_RESULT.sub(_string_result, joined)
        joined = _DURATION.sub(_duration, joined)
        for pattern in (_ENUM_BASE_BEFORE, _ENUM_BASE_AFTER):
            joined = pattern.sub(lambda m: m.group(1) + " " * len(m.group(2)), joined)
        joined = _NOT_FORMAL.sub(lambda m: m.group(1) + " " * len(m.group(2)), joined)
        pieces.append(_ENUM_LITERAL.sub(_enum_literal, joined))
        pieces.append(text)
        code = []
    return "".join(pieces)
