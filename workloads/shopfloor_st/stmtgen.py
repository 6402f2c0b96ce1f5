"""Statements to Python lines, each line carrying the ST position it came from (for runtime faults)."""

from __future__ import annotations

from dataclasses import dataclass

from shopfloor_st import model as m
from shopfloor_st.calls import assignment, check_target, fb_call_lines
from shopfloor_st.exprgen import ExprGen, Value
from shopfloor_st.st_types import BOOL, Elementary, EnumType, FbType

__all__ = ["Line", "StmtGen"]


@dataclass
class Line:
    indent: int
    text: str
    line: int = 0
    col: int = 0


@dataclass
class _Loop:
    kind: str
    increment: list[str]  # lines a CONTINUE runs first (FOR: the step; REPEAT: the exit test)


class StmtGen:
    def __init__(self, gen: ExprGen, return_code: str = "") -> None:
        self.gen = gen
        self.lines: list[Line] = []
        self.loops: list[_Loop] = []
        self.return_code = return_code  # what RETURN returns in a FUNCTION

    def emit(self, indent: int, text: str, node: m.Node | None) -> None:
        self.lines.append(Line(indent, text, node.line if node else 0, node.col if node else 0))

    def flush_pre(self, indent: int, node: m.Node) -> None:
        for text in self.gen.pre:
            self.emit(indent, text, node)
        self.gen.pre = []

    def block(self, stmts: list[m.Stmt], indent: int, node: m.Node | None = None) -> None:
        before = len(self.lines)
        for stmt in stmts:
            getattr(self, "s_" + type(stmt).__name__.lower())(stmt, indent)
        if len(self.lines) == before:
            self.emit(indent, "pass", node)

    def condition(self, expr: m.Expr, what: str) -> str:
        value = self.gen.expr(expr)
        if value.type is not None and value.type != BOOL:
            self.gen.error(expr, f"{what} must be BOOL, not {value.type}")
        return value.code

    # ---- statements ----------------------------------------------------------------------------------------------

    def s_assign(self, stmt: m.Assign, indent: int) -> None:
        target = self.gen.expr(stmt.target)
        value = self.gen.expr(stmt.value)
        if not check_target(self.gen, stmt.target, target):
            self.gen.pre = []
            return
        text = assignment(self.gen, target, value, stmt.value)
        self.flush_pre(indent, stmt)
        self.emit(indent, text, stmt)

    def s_callstmt(self, stmt: m.CallStmt, indent: int) -> None:
        func = stmt.call.func
        symbol = self.gen.scope.lookup(func.name) if isinstance(func, m.Name) else None
        if not isinstance(func, m.Name) or (symbol is not None and isinstance(symbol.type, FbType)):
            lines = fb_call_lines(self.gen, stmt.call)
        else:
            value = self.gen.expr(stmt.call)
            lines = [value.code] if value.type is not None else []
        self.flush_pre(indent, stmt)
        for text in lines:
            self.emit(indent, text, stmt)

    def s_if(self, stmt: m.If, indent: int) -> None:
        depth = indent
        for i, (cond, body) in enumerate(stmt.branches):
            code = self.condition(cond, "IF condition")
            if i and self.gen.pre:
                self.emit(depth, "else:", cond)
                depth += 1
                self.flush_pre(depth, cond)
                self.emit(depth, f"if {code}:", cond)
            elif i:
                self.emit(depth, f"elif {code}:", cond)
            else:
                self.flush_pre(depth, cond)
                self.emit(depth, f"if {code}:", cond)
            self.block(body, depth + 1, cond)
        if stmt.orelse:
            self.emit(depth, "else:", stmt)
            self.block(stmt.orelse, depth + 1, stmt)

    def s_case(self, stmt: m.Case, indent: int) -> None:
        subject = self.gen.expr(stmt.subject)
        typ = subject.type
        if typ is not None and not (isinstance(typ, EnumType) or (isinstance(typ, Elementary) and typ.is_integral)):
            self.gen.error(stmt.subject, f"CASE needs an integer or enumeration, not {typ}")
        var = self.gen.temp("_c")
        self.flush_pre(indent, stmt)
        self.emit(indent, f"{var} = {self.gen.settle(subject)}", stmt)
        keyword = "if"
        for labels, body in stmt.clauses:
            tests = [self.case_test(var, label, typ) for label in labels]
            self.emit(indent, f"{keyword} {' or '.join(tests) or 'False'}:", labels[0] if labels else stmt)
            self.block(body, indent + 1, stmt)
            keyword = "elif"
        if stmt.orelse:
            if keyword == "if":
                self.block(stmt.orelse, indent, stmt)
                return
            self.emit(indent, "else:", stmt)
            self.block(stmt.orelse, indent + 1, stmt)

    def case_test(self, var: str, label: m.CaseLabel, typ: object) -> str:
        values = []
        for expr in (label.low, label.high):
            if expr is None:
                continue
            folded = self.gen.ctx.const_value(expr, self.gen.scope)
            if folded is None or not isinstance(folded[0], int):
                self.gen.error(expr, "CASE labels must be constant integers or enumeration values")
                return "False"
            if (isinstance(typ, EnumType) and folded[1] is not typ) or (
                isinstance(folded[1], EnumType) and folded[1] is not typ and typ is not None
            ):
                self.gen.error(expr, f"{folded[1]} label in a CASE on {typ}")
            values.append(int(folded[0]))
        if len(values) == 2:
            return f"{values[0]} <= {var} <= {values[1]}"
        return f"{var} == {values[0]}" if values else "False"

    def s_for(self, stmt: m.For, indent: int) -> None:
        control = self.gen.expr(stmt.var)
        typ = control.type
        if typ is not None and not (isinstance(typ, Elementary) and typ.is_integral):
            self.gen.error(stmt.var, f"FOR variable must be an integer, not {typ}")
            return
        if not check_target(self.gen, stmt.var, control):
            return
        start, end = self.gen.expr(stmt.start), self.gen.expr(stmt.end)
        self.emit(indent, assignment(self.gen, control, start, stmt.start), stmt)
        end_var = self.gen.temp("_end")
        self.emit(indent, f"{end_var} = {self.gen.convert(end, typ, stmt.end, 'convert')}", stmt)  # type: ignore[arg-type]
        step_value = 1
        step_code = "1"
        if stmt.step is not None:
            folded = self.gen.ctx.const_value(stmt.step, self.gen.scope)
            if folded is not None and isinstance(folded[0], int):
                step_value, step_code = folded[0], str(folded[0])
                if step_value == 0:
                    self.gen.error(stmt.step, "FOR step must not be 0")
            else:
                step_code = self.gen.temp("_step")
                step_value = 0
                step = self.gen.expr(stmt.step)
                self.emit(indent, f"{step_code} = {self.gen.convert(step, typ, stmt.step, 'convert')}", stmt)  # type: ignore[arg-type]
        if step_value > 0:
            test = f"{control.code} <= {end_var}"
        elif step_value < 0:
            test = f"{control.code} >= {end_var}"
        else:
            test = f"({control.code} <= {end_var} if {step_code} > 0 else {control.code} >= {end_var})"
        increment = assignment(self.gen, control, Value(f"({control.code} + {step_code})", typ, raw=True), stmt)
        self.emit(indent, f"while {test}:", stmt)
        self.abort_check(indent + 1, stmt)
        self.loops.append(_Loop("FOR", [increment]))
        self.block(stmt.body, indent + 1, stmt)
        self.loops.pop()
        self.emit(indent + 1, increment, stmt)

    def s_while(self, stmt: m.While, indent: int) -> None:
        code = self.condition(stmt.cond, "WHILE condition")
        if self.gen.pre:
            self.emit(indent, "while True:", stmt)
            self.flush_pre(indent + 1, stmt)
            self.emit(indent + 1, f"if not {code}:", stmt)
            self.emit(indent + 2, "break", stmt)
        else:
            self.emit(indent, f"while {code}:", stmt)
        self.abort_check(indent + 1, stmt)
        self.loops.append(_Loop("WHILE", []))
        self.block(stmt.body, indent + 1, stmt)
        self.loops.pop()

    def s_repeat(self, stmt: m.Repeat, indent: int) -> None:
        self.emit(indent, "while True:", stmt)
        self.abort_check(indent + 1, stmt)
        code = self.condition(stmt.cond, "UNTIL condition")
        pre, self.gen.pre = self.gen.pre, []
        self.loops.append(_Loop("REPEAT", [*pre, f"if {code}:", "    break"]))
        self.block(stmt.body, indent + 1, stmt)
        self.loops.pop()
        for text in pre:
            self.emit(indent + 1, text, stmt.cond)
        self.emit(indent + 1, f"if {code}:", stmt.cond)
        self.emit(indent + 2, "break", stmt.cond)

    def abort_check(self, indent: int, stmt: m.Stmt) -> None:
        """Every loop iteration looks at the instance's abort flag, so a watchdog can stop an endless loop."""
        self.emit(indent, f"if _g._abort: _aborted({stmt.line}, {stmt.col})", stmt)

    def s_exit(self, stmt: m.Exit, indent: int) -> None:
        if not self.loops:
            self.gen.error(stmt, "EXIT outside a loop")
        self.emit(indent, "break", stmt)

    def s_continue(self, stmt: m.Continue, indent: int) -> None:
        if not self.loops:
            self.gen.error(stmt, "CONTINUE outside a loop")
            return
        for text in self.loops[-1].increment:
            self.emit(indent, text, stmt)
        self.emit(indent, "continue", stmt)

    def s_return(self, stmt: m.Return, indent: int) -> None:
        self.emit(indent, f"return {self.return_code}".rstrip(), stmt)
