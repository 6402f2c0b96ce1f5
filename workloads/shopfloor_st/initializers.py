"""Initial values of declarations: `[1, 2, 3]`, `[3(0), 7(1)]`, `(Level := 1.5, Arr := [1, 2])`, nested freely.

The tree-sitter grammar parses only some of these shapes, so the bracket structure is read here and each plain
expression inside is parsed by the grammar (`parse_expression_text`), keeping positions in the user's file.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from shopfloor_st import model as m

if TYPE_CHECKING:
    from shopfloor_st.parse import Converter

__all__ = ["parse_initializer"]

_FIELD = re.compile(rb"\s*([A-Za-z_]\w*)\s*:=")
_REPEAT = re.compile(rb"\s*(\d+)\s*\(")


class _Reader:
    def __init__(self, conv: Converter, start: int, end: int) -> None:
        self.conv, self.data, self.pos, self.end = conv, conv.data, start, end

    def where(self, offset: int | None = None) -> tuple[int, int]:
        return self.conv.locator.locate((self.pos if offset is None else offset) + self.conv.shift)

    def skip_space(self) -> None:
        while self.pos < self.end and self.data[self.pos : self.pos + 1].isspace():
            self.pos += 1

    def peek(self) -> bytes:
        self.skip_space()
        return self.data[self.pos : min(self.pos + 1, self.end)]

    def expect(self, token: bytes) -> bool:
        if self.peek() == token:
            self.pos += 1
            return True
        line, col = self.where()
        found = self.data[self.pos : self.pos + 10].decode("utf-8", errors="replace") or "end of declaration"
        self.conv.errors.append((line, col, f"syntax error: expected {token.decode()!r}, found {found!r}"))
        self.pos = self.end
        return False

    def value(self) -> m.Init:
        self.skip_space()
        line, col = self.where()
        head = self.peek()
        if head == b"[":
            return self.array(line, col)
        if head == b"(" and _FIELD.match(self.data, self.pos + 1, self.end):
            return self.struct(line, col)
        return m.ExprInit(line, col, self.expression())

    def array(self, line: int, col: int) -> m.Init:
        self.pos += 1
        items: list[tuple[int, m.Init | None]] = []
        while self.pos < self.end and self.peek() != b"]":
            repeat = _REPEAT.match(self.data, self.pos, self.end)
            if repeat:
                self.pos = repeat.end()
                inner = None if self.peek() == b")" else self.value()
                self.expect(b")")
                items.append((int(repeat.group(1)), inner))
            else:
                items.append((1, self.value()))
            if self.peek() != b",":
                break
            self.pos += 1
        self.expect(b"]")
        return m.ArrayInit(line, col, items)

    def struct(self, line: int, col: int) -> m.Init:
        self.pos += 1
        fields: list[tuple[str, m.Init, int, int]] = []
        while self.pos < self.end:
            match = _FIELD.match(self.data, self.pos, self.end)
            if not match:
                break
            fline, fcol = self.where(match.start(1))
            self.pos = match.end()
            fields.append((match.group(1).decode(), self.value(), fline, fcol))
            if self.peek() != b",":
                break
            self.pos += 1
        self.expect(b")")
        return m.StructInit(line, col, fields)

    def expression(self) -> m.Expr:
        from shopfloor_st.parse import parse_expression_text

        start, depth, quote = self.pos, 0, 0
        while self.pos < self.end:
            ch = self.data[self.pos]
            if quote:
                if ch == quote:
                    quote = 0
                elif ch == ord("$"):
                    self.pos += 1
            elif ch in b"'\"":
                quote = ch
            elif ch in b"([":
                depth += 1
            elif ch in b")]":
                if depth == 0:
                    break
                depth -= 1
            elif ch == ord(",") and depth == 0:
                break
            self.pos += 1
        return parse_expression_text(self.conv, start, self.pos)


def parse_initializer(conv: Converter, start: int, end: int) -> m.Init:
    reader = _Reader(conv, start, end)
    init = reader.value()
    if reader.peek():
        line, col = reader.where()
        conv.errors.append((line, col, "syntax error: unexpected text after the initial value"))
    return init
