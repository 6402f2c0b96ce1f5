"""Reading a tree-sitter tree: positions in the user's file, node text, syntax errors."""

from __future__ import annotations

import bisect
import re

from tree_sitter import Node

__all__ = ["Locator", "TreeReader"]

_DECLARATIONS_WITH_INITIALISER = {"variable_declaration", "structure_field", "type_definition"}
_EXPRESSIONS = {
    "binary_expression",
    "unary_expression",
    "call_expression",
    "index_expression",
    "member_access_expression",
    "parenthesized_expression",
    "identifier",
    "integer_literal",
    "real_literal",
    "string_literal",
    "time_literal",
    "typed_literal",
    "boolean_literal",
}
_STATEMENTS_NEEDING_SEMICOLON = {"assignment_statement", "invocation_statement", "exit_statement", "return_statement"}


class Locator:
    """Byte offsets of the parsed text -> 1-based (line, column in characters) of the user's file."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.starts = [0, *(match.end() for match in re.finditer(b"\n", data))]
        self.ascii = data.isascii()  # then byte columns are character columns

    def locate(self, offset: int) -> tuple[int, int]:
        row = bisect.bisect_right(self.starts, offset) - 1
        start = self.starts[row]
        col = offset - start
        if col and not self.ascii and max(self.data[start:offset], default=0) >= 0x80:
            col = len(self.data[start:offset].decode("utf-8", errors="replace"))
        return row + 1, col + 1


class TreeReader:
    """One tree; `shift` maps byte offsets of `data` to offsets of the located file."""

    def __init__(self, data: bytes, locator: Locator, shift: int = 0) -> None:
        self.data = data
        self.locator = locator
        self.shift = shift
        self.errors: list[tuple[int, int, str]] = []

    # ---- helpers -------------------------------------------------------------------------------------------------

    def pos(self, node: Node) -> tuple[int, int]:
        return self.locator.locate(node.start_byte + self.shift)

    def text(self, node: Node) -> str:
        return self.data[node.start_byte : node.end_byte].decode("utf-8", errors="replace")

    def error(self, node: Node, message: str) -> None:
        line, col = self.pos(node)
        self.errors.append((line, col, message))

    def collect_syntax_errors(self, root: Node) -> None:
        stack = [root]  # iterative: deeply nested expressions must not exhaust Python's stack
        while stack:
            node = stack.pop()
            if node.is_missing:
                if node.type == ";" and _after_end_struct(self, node):
                    continue  # `END_STRUCT END_TYPE`: CODESYS writes no `;` there
                missing = f"syntax error: missing {node.type!r}"
                self.error(node, missing if not node.is_named else "syntax error: expected an expression")
                continue
            if node.type == "ERROR":
                snippet = self.text(node).split("\n", 1)[0][:30]
                self.error(node, f"syntax error: unexpected {snippet!r}")
                continue
            if node.type in _STATEMENTS_NEEDING_SEMICOLON and (node.child_count == 0 or node.children[-1].type != ";"):
                line, col = self.locator.locate(node.end_byte + self.shift)
                self.errors.append((line, col, "syntax error: expected ';'"))
            if node.type in _EXPRESSIONS and not node.has_error:
                continue  # nothing below an error-free expression can be a syntax error
            children = []
            for child in node.children:
                if child.type == ":=" and node.type in _DECLARATIONS_WITH_INITIALISER:
                    break  # initial values are parsed (and checked) by `initializers`
                children.append(child)
            stack.extend(reversed(children))

    def named(self, node: Node) -> list[Node]:
        return [c for c in node.named_children if c.type not in ("comment", "pragma")]


def _after_end_struct(reader: TreeReader, node: Node) -> bool:
    before = node.prev_sibling
    return before is not None and reader.text(before).rstrip().upper().endswith("END_STRUCT")
