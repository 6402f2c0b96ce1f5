"""Expressions from the tree, with the grammar's precedence slips corrected (see `parse`)."""

from __future__ import annotations

from collections.abc import Callable

from tree_sitter import Node

from shopfloor_st import model as m
from shopfloor_st.literals import parse_duration_ms, parse_integer, parse_real, parse_string
from shopfloor_st.treereader import TreeReader

__all__ = ["MAX_EXPRESSION_DEPTH", "ExpressionReader"]

_ORDERING = {"<", ">", "<=", ">="}
# The generated Python nests about two parentheses per level; CPython's parser stops at 200.
MAX_EXPRESSION_DEPTH = 60


class ExpressionReader(TreeReader):
    # ---- expressions ---------------------------------------------------------------------------------------------

    depth = 0
    too_deep = False

    def expr(self, node: Node) -> m.Expr:
        line, col = self.pos(node)
        handler = self._expr_handlers.get(node.type)
        if handler is None:
            if node.type != "ERROR" and not node.is_missing:
                self.error(node, f"{node.type.replace('_', ' ')} is not supported")
            return m.Literal(line, col, "bool", False)
        if self.depth >= MAX_EXPRESSION_DEPTH:
            if not self.too_deep:  # once per expression
                self.error(node, f"expression nested more than {MAX_EXPRESSION_DEPTH} levels deep; split it up")
            self.too_deep = True
            return m.Literal(line, col, "bool", False)
        nests = node.type != "parenthesized_expression"  # parentheses vanish in the generated code
        self.depth += nests
        try:
            return handler(self, node, line, col)
        except ValueError as exc:
            self.error(node, str(exc))
            return m.Literal(line, col, "bool", False)
        finally:
            self.depth -= nests
            if not self.depth:
                self.too_deep = False

    def _identifier(self, node: Node, line: int, col: int) -> m.Expr:
        return m.Name(line, col, self.text(node))

    def _integer(self, node: Node, line: int, col: int) -> m.Expr:
        return m.Literal(line, col, "int", parse_integer(self.text(node)))

    def _real(self, node: Node, line: int, col: int) -> m.Expr:
        return m.Literal(line, col, "real", parse_real(self.text(node)))

    def _boolean(self, node: Node, line: int, col: int) -> m.Expr:
        return m.Literal(line, col, "bool", self.text(node).upper() == "TRUE")

    def _time(self, node: Node, line: int, col: int) -> m.Expr:
        return m.Literal(line, col, "time", parse_duration_ms(self.text(node)))

    def _string(self, node: Node, line: int, col: int) -> m.Expr:
        return m.Literal(line, col, "string", parse_string(self.text(node)))

    def _typed(self, node: Node, line: int, col: int) -> m.Expr:
        type_node, value_node = node.child_by_field_name("type"), node.child_by_field_name("value")
        if type_node is None or value_node is None:
            raise ValueError("malformed typed literal")
        inner = self.expr(value_node)
        if isinstance(inner, m.Literal):
            inner.type_prefix = self.text(type_node).upper()
            inner.line, inner.col = line, col
            return inner
        return m.Member(line, col, m.Name(line, col, self.text(type_node)), self.text(value_node))

    def _paren(self, node: Node, line: int, col: int) -> m.Expr:
        return self.expr(self.named(node)[0])

    def _unary(self, node: Node, line: int, col: int) -> m.Expr:
        op, operand = node.child_by_field_name("operator"), node.child_by_field_name("operand")
        if op is None or operand is None:
            raise ValueError("malformed expression")
        return m.Unary(line, col, self.text(op).upper(), self.expr(operand))

    def _binary(self, node: Node, line: int, col: int) -> m.Expr:
        left, op, right = (node.child_by_field_name(f) for f in ("left", "operator", "right"))
        if left is None or op is None or right is None:
            raise ValueError("malformed expression")
        operator = self.text(op).upper()
        if operator == "**":
            return self._power(left, right, line, col)
        if operator in _ORDERING and left.type == "binary_expression":
            # The grammar puts = and <> on the level of < and >; IEC binds the orderings tighter: a = b < c
            # is a = (b < c).
            inner_op = left.child_by_field_name("operator")
            inner_left, inner_right = left.child_by_field_name("left"), left.child_by_field_name("right")
            if inner_op is not None and inner_left is not None and inner_right is not None:
                equality = self.text(inner_op)
                if equality in ("=", "<>"):
                    rline, rcol = self.pos(inner_right)
                    ordering = m.Binary(rline, rcol, operator, self.expr(inner_right), self.expr(right))
                    return m.Binary(line, col, equality, self.expr(inner_left), ordering)
        return m.Binary(line, col, operator, self.expr(left), self.expr(right))

    def _power(self, left: Node, right: Node, line: int, col: int) -> m.Expr:
        # The grammar gives `-x ** 2` as `(-x) ** 2` and `a ** b ** c` as `a ** (b ** c)`; IEC wants the opposite.
        if right.type == "binary_expression" and self.text(right.child_by_field_name("operator") or right) == "**":
            inner_left, inner_right = right.child_by_field_name("left"), right.child_by_field_name("right")
            if inner_left is not None and inner_right is not None:
                base = self._power(left, inner_left, line, col)
                return m.Binary(line, col, "**", base, self.expr(inner_right))
        if left.type == "unary_expression":
            op, operand = left.child_by_field_name("operator"), left.child_by_field_name("operand")
            if op is not None and operand is not None:
                oline, ocol = self.pos(operand)
                return m.Unary(line, col, self.text(op).upper(), self._power(operand, right, oline, ocol))
        return m.Binary(line, col, "**", self.expr(left), self.expr(right))

    def _member(self, node: Node, line: int, col: int) -> m.Expr:
        obj, member = node.child_by_field_name("object"), node.child_by_field_name("member")
        if obj is None or member is None:
            raise ValueError("malformed member access")
        return m.Member(line, col, self.expr(obj), self.text(member))

    def _index(self, node: Node, line: int, col: int) -> m.Expr:
        obj = node.child_by_field_name("object")
        if obj is None:
            raise ValueError("malformed index")
        return m.Index(
            line, col, self.expr(obj), [self.expr(i) for i in node.children_by_field_name("index") if i.is_named]
        )

    def _call(self, node: Node, line: int, col: int) -> m.Expr:
        func, args_node = node.child_by_field_name("function"), node.child_by_field_name("arguments")
        if func is None:
            raise ValueError("malformed call")
        args = []
        for arg in self.named(args_node) if args_node else []:
            aline, acol = self.pos(arg)
            if arg.type == "named_argument":
                name, value = arg.child_by_field_name("name"), arg.child_by_field_name("value")
                if name is None or value is None:
                    continue
                output = any(c.type == "=>" for c in arg.children)
                args.append(m.Arg(aline, acol, self.text(name), self.expr(value), output))
            else:
                args.append(m.Arg(aline, acol, None, self.expr(arg)))
        return m.Call(line, col, self.expr(func), args)

    _expr_handlers: dict[str, Callable[[ExpressionReader, Node, int, int], m.Expr]] = {
        "identifier": _identifier,
        "integer_literal": _integer,
        "real_literal": _real,
        "boolean_literal": _boolean,
        "time_literal": _time,
        "string_literal": _string,
        "typed_literal": _typed,
        "parenthesized_expression": _paren,
        "unary_expression": _unary,
        "binary_expression": _binary,
        "member_access_expression": _member,
        "index_expression": _index,
        "call_expression": _call,
    }
