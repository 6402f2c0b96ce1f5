"""Parse Structured Text with the tree-sitter IEC 61131-3 grammar into the typed program model.

Known gaps of the grammar (tree-sitter-iec61131-3-st 0.1.2) and how they are handled here:
- nested comments, `STRING[n]`, enumeration literals `Color#Red`: rewritten before parsing (see `preprocess`);
- `**` binds looser than unary minus and associates to the right: the tree is re-balanced so that `-x**2` is
  `-(x**2)` and `2**3**2` is `(2**3)**2` (IEC: equal precedence evaluates left to right); `=`/`<>` share a level
  with `<`/`>` in the grammar, so `a = b < c` is re-balanced to `a = (b < c)` (see `parse_expr`);
- a missing `;` after a statement is accepted by the grammar: reported here as a syntax error;
- initial values (`[3(0), 7(1)]`, `[(a := 1), (a := 2)]`, `(x := 1, arr := [1, 2])`) are parsed by `initializers`,
  which hands the plain expressions inside back to the grammar.
"""

from __future__ import annotations

import re

import tree_sitter_iec61131_3_st as ts_st
from tree_sitter import Language, Node, Parser

from shopfloor_st import model as m
from shopfloor_st.initializers import parse_initializer
from shopfloor_st.literals import parse_integer
from shopfloor_st.parse_expr import ExpressionReader
from shopfloor_st.treereader import Locator

__all__ = ["ParseResult", "parse_expression_text", "parse_program"]

_LANGUAGE = Language(ts_st.language())
_PARSER = Parser(_LANGUAGE)
_STRING_RESULT = re.compile(r"STRING_(\d+)_+", re.IGNORECASE)

_SECTIONS = {
    "var_block": "VAR",
    "var_input": "VAR_INPUT",
    "var_output": "VAR_OUTPUT",
    "var_in_out": "VAR_IN_OUT",
    "var_temp": "VAR_TEMP",
    "var_global": "VAR_GLOBAL",
    "var_external": "VAR_EXTERNAL",
}


class ParseResult:
    def __init__(self, unit: m.SourceUnit, errors: list[tuple[int, int, str]]) -> None:
        self.unit = unit
        self.errors = errors


class Converter(ExpressionReader):
    """Declarations, types and statements (expressions: `ExpressionReader`)."""

    # ---- top level -----------------------------------------------------------------------------------------------

    def unit(self, root: Node) -> m.SourceUnit:
        unit = m.SourceUnit()
        for child in self.named(root):
            kind = child.type
            if kind == "type_declaration":
                unit.types.extend(self.type_decls(child))
            elif kind in ("global_var_declaration_block", "configuration_declaration"):
                for block in child.named_children:
                    if block.type == "var_global":
                        unit.globals.extend(self.var_block(block))
            elif kind in ("program_declaration", "function_declaration", "function_block_declaration"):
                unit.pous.append(self.pou(child))
            elif kind != "ERROR":
                self.error(child, f"{kind.replace('_', ' ')} is not supported")
        return unit

    def type_decls(self, node: Node) -> list[m.TypeDecl]:
        out = []
        for tdef in node.named_children:
            if tdef.type != "type_definition":
                continue
            name_node, definition = tdef.child_by_field_name("name"), tdef.child_by_field_name("definition")
            if name_node is None or definition is None:
                continue
            line, col = self.pos(name_node)
            out.append(m.TypeDecl(line, col, self.text(name_node), self.type_ref(definition), self.init_after(tdef)))
        return out

    def pou(self, node: Node) -> m.Pou:
        kind = {"program_declaration": "PROGRAM", "function_declaration": "FUNCTION"}.get(node.type, "FUNCTION_BLOCK")
        name_node = node.child_by_field_name("name")
        ret = node.child_by_field_name("return_type")
        line, col = self.pos(node)
        result = self.type_ref(ret) if ret else None
        if isinstance(result, m.NamedTypeRef) and (spelled := _STRING_RESULT.fullmatch(result.name)):
            result = m.StringTypeRef(result.line, result.col, int(spelled.group(1)))  # see preprocess
        pou = m.Pou(line, col, kind, self.text(name_node) if name_node else "?", result)
        for child in self.named(node):
            if child.type in _SECTIONS or child.type == "var_block":
                pou.decls.extend(self.var_block(child))
            elif child.type in ("method_declaration", "property_declaration"):
                self.error(child, f"{child.type.split('_')[0].upper()} is not supported")
        pou.body = [s for c in node.children_by_field_name("body") if (s := self.statement(c)) is not None]
        return pou

    def var_block(self, node: Node) -> list[m.VarDecl]:
        section = _SECTIONS.get(node.type, "VAR")
        qualifiers = {
            self.text(q).upper() for c in node.named_children if c.type == "var_qualifier_list" for q in c.children
        }
        out = []
        for decl in node.named_children:
            if decl.type != "variable_declaration":
                continue
            type_node = decl.child_by_field_name("type")
            if type_node is None:
                self.error(decl, "declaration without a type")
                continue
            init = self.init_after(decl)
            for name_node in decl.children_by_field_name("names"):
                if name_node.type != "identifier":
                    continue
                line, col = self.pos(name_node)
                var = m.VarDecl(line, col, self.text(name_node), self.type_ref(type_node), init, section)
                var.retain = "RETAIN" in qualifiers or "PERSISTENT" in qualifiers
                var.constant = "CONSTANT" in qualifiers
                out.append(var)
        return out

    def init_after(self, decl: Node) -> m.Init | None:
        """The initial value after `:=` in a declaration, parsed from its text (see module docstring)."""
        children = decl.children
        for child in children:
            if child.type == ":=":
                end = children[-1].start_byte if children[-1].type == ";" else children[-1].end_byte
                return parse_initializer(self, child.end_byte, end)
        return None

    # ---- types ---------------------------------------------------------------------------------------------------

    def type_ref(self, node: Node) -> m.TypeRef:
        line, col = self.pos(node)
        kind = node.type
        if kind in ("elementary_type", "identifier", "qualified_identifier", "generic_type"):
            return m.NamedTypeRef(line, col, self.text(node))
        if kind == "string_type":
            length = node.child_by_field_name("length")
            if length is None or length.is_missing or not self.text(length).isdigit():
                return m.StringTypeRef(line, col, None)
            return m.StringTypeRef(line, col, parse_integer(self.text(length)))
        if kind == "array_type":
            dims = []
            for rng in node.children_by_field_name("range"):
                lower, upper = rng.child_by_field_name("lower"), rng.child_by_field_name("upper")
                if lower is None or upper is None:
                    self.error(rng, "array bounds must be written low..high")
                    continue
                dims.append((self.expr(lower), self.expr(upper)))
            elem = node.child_by_field_name("element_type")
            return m.ArrayTypeRef(line, col, dims, self.type_ref(elem) if elem else m.NamedTypeRef(line, col, "?"))
        if kind == "subrange_type":
            base, lower, upper = (
                node.named_children[0],
                node.child_by_field_name("lower"),
                node.child_by_field_name("upper"),
            )
            if lower is not None and upper is not None:
                return m.SubrangeTypeRef(line, col, self.type_ref(base), self.expr(lower), self.expr(upper))
            return self.type_ref(base)
        if kind == "enumerated_type_inline":
            values = []
            for enum in node.named_children:
                if enum.type == "enumerator":
                    name_node, value = enum.child_by_field_name("name"), enum.child_by_field_name("value")
                    eline, ecol = self.pos(enum)
                    values.append(
                        (self.text(name_node) if name_node else "?", self.expr(value) if value else None, eline, ecol)
                    )
            return m.EnumTypeRef(line, col, values)
        if kind == "structure_type_inline":
            fields = []
            for fnode in node.named_children:
                if fnode.type != "structure_field":
                    continue
                name_node, type_node = fnode.child_by_field_name("name"), fnode.child_by_field_name("type")
                if name_node is None or type_node is None:
                    continue
                fline, fcol = self.pos(name_node)
                default = fnode.child_by_field_name("default")
                init = self.init_after(fnode) if default is not None else None
                fields.append(m.VarDecl(fline, fcol, self.text(name_node), self.type_ref(type_node), init))
            return m.StructTypeRef(line, col, fields)
        self.error(node, f"type {self.text(node)!r} is not supported")
        return m.NamedTypeRef(line, col, "?")

    # ---- statements ----------------------------------------------------------------------------------------------

    def body(self, node: Node, field: str = "body") -> list[m.Stmt]:
        return [s for c in node.children_by_field_name(field) if (s := self.statement(c)) is not None]

    def statement(self, node: Node) -> m.Stmt | None:
        line, col = self.pos(node)
        kind = node.type
        if kind in ("empty_statement", "comment", "pragma", "ERROR", ";"):
            return None
        if kind == "assignment_statement":
            left, right = node.child_by_field_name("left"), node.child_by_field_name("right")
            if left is None or right is None:
                return None
            return m.Assign(line, col, self.expr(left), self.expr(right))
        if kind == "invocation_statement":
            call = self.expr(self.named(node)[0])
            if isinstance(call, m.Call):
                return m.CallStmt(line, col, call)
            self.error(node, "this expression is not a statement")
            return None
        if kind == "if_statement":
            cond = node.child_by_field_name("condition")
            branches = [(self.expr(cond) if cond else self.missing(node), self.body(node, "consequence"))]
            orelse: list[m.Stmt] = []
            for clause in node.named_children:
                if clause.type == "elsif_clause":
                    ccond = clause.child_by_field_name("condition")
                    branches.append((self.expr(ccond) if ccond else self.missing(clause), self.body(clause)))
                elif clause.type == "else_clause":
                    orelse = self.body(clause)
            return m.If(line, col, branches, orelse)
        if kind == "case_statement":
            subject = node.child_by_field_name("subject")
            clauses, orelse = [], []
            for clause in node.named_children:
                if clause.type == "case_clause":
                    labels = [self.case_label(v) for v in clause.named_children if v.type == "case_value"]
                    clauses.append((labels, self.body(clause)))
                elif clause.type == "else_clause":
                    orelse = self.body(clause)
            return m.Case(line, col, self.expr(subject) if subject else self.missing(node), clauses, orelse)
        if kind == "for_statement":
            control = node.child_by_field_name("control")
            start, end, step = (node.child_by_field_name(f) for f in ("start", "end", "step"))
            if control is None or start is None or end is None:
                return None
            cline, ccol = self.pos(control)
            var = m.Name(cline, ccol, self.text(control))
            return m.For(
                line, col, var, self.expr(start), self.expr(end), self.expr(step) if step else None, self.body(node)
            )
        if kind == "while_statement":
            cond = node.child_by_field_name("condition")
            return m.While(line, col, self.expr(cond) if cond else self.missing(node), self.body(node))
        if kind == "repeat_statement":
            cond = node.child_by_field_name("condition")
            return m.Repeat(line, col, self.body(node), self.expr(cond) if cond else self.missing(node))
        if kind == "exit_statement":
            return m.Exit(line, col)
        if kind == "continue_statement":
            return m.Continue(line, col)
        if kind == "return_statement":
            return m.Return(line, col)
        self.error(node, f"{kind.replace('_', ' ')} is not supported")
        return None

    def case_label(self, node: Node) -> m.CaseLabel:
        line, col = self.pos(node)
        inner = self.named(node)[0]
        if inner.type == "subrange":
            lower, upper = inner.child_by_field_name("lower"), inner.child_by_field_name("upper")
            if lower is not None and upper is not None:
                return m.CaseLabel(line, col, self.expr(lower), self.expr(upper))
        return m.CaseLabel(line, col, self.expr(inner))

    def missing(self, node: Node) -> m.Expr:
        line, col = self.pos(node)
        return m.Literal(line, col, "bool", False)


def parse_program(text: str) -> ParseResult:
    """Parse preprocessed source text; syntax errors come back as (line, col, message), in source order."""
    data = text.encode("utf-8")
    tree = _PARSER.parse(data)
    converter = Converter(data, Locator(data))
    converter.collect_syntax_errors(tree.root_node)
    unit = converter.unit(tree.root_node)
    return ParseResult(unit, sorted(set(converter.errors)))


def parse_expression_text(parent: Converter, start: int, end: int) -> m.Expr:
    """Parse the bytes [start, end) of the parent's text as one expression, keeping the parent's positions."""
    prefix = b"PROGRAM _ _:="
    data = prefix + parent.data[start:end] + b";END_PROGRAM"
    tree = _PARSER.parse(data)
    sub = Converter(data, parent.locator, parent.shift + start - len(prefix))
    sub.collect_syntax_errors(tree.root_node)
    program = tree.root_node.named_children[0] if tree.root_node.named_children else None
    assignment = next((c for c in program.children_by_field_name("body")), None) if program else None
    right = assignment.child_by_field_name("right") if assignment is not None else None
    if right is None or sub.errors:
        line, col = parent.locator.locate(start + parent.shift)
        parent.errors.extend(sub.errors or [(line, col, "syntax error: expected an expression")])
        return m.Literal(line, col, "bool", False)
    result = sub.expr(right)
    parent.errors.extend(sub.errors)
    return result
