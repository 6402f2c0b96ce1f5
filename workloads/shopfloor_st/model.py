"""Typed program model: what the parser makes of the tree-sitter tree, with 1-based line/column on every node."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Node:
    line: int
    col: int


# ---- expressions -------------------------------------------------------------------------------------------------


@dataclass
class Expr(Node):
    pass


@dataclass
class Name(Expr):
    name: str


@dataclass
class Member(Expr):
    obj: Expr
    member: str


@dataclass
class Index(Expr):
    obj: Expr
    indices: list[Expr]


@dataclass
class Literal(Expr):
    kind: str  # "int" | "real" | "bool" | "time" | "string"
    value: int | float | bool | str
    type_prefix: str | None = None  # INT#5 -> "INT"


@dataclass
class Unary(Expr):
    op: str  # "-" | "+" | "NOT"
    operand: Expr


@dataclass
class Binary(Expr):
    op: str  # upper-case operator text: "+", "MOD", "AND", "&", "<>", "**", ...
    left: Expr
    right: Expr


@dataclass
class Arg(Node):
    name: str | None  # None for a positional argument
    value: Expr
    output: bool = False  # `name => variable`


@dataclass
class Call(Expr):
    func: Expr
    args: list[Arg]


# ---- statements --------------------------------------------------------------------------------------------------


@dataclass
class Stmt(Node):
    pass


@dataclass
class Assign(Stmt):
    target: Expr
    value: Expr


@dataclass
class CallStmt(Stmt):
    call: Call


@dataclass
class If(Stmt):
    branches: list[tuple[Expr, list[Stmt]]]
    orelse: list[Stmt]


@dataclass
class CaseLabel(Node):
    low: Expr
    high: Expr | None = None  # a range `low..high`


@dataclass
class Case(Stmt):
    subject: Expr
    clauses: list[tuple[list[CaseLabel], list[Stmt]]]
    orelse: list[Stmt]


@dataclass
class For(Stmt):
    var: Name
    start: Expr
    end: Expr
    step: Expr | None
    body: list[Stmt]


@dataclass
class While(Stmt):
    cond: Expr
    body: list[Stmt]


@dataclass
class Repeat(Stmt):
    body: list[Stmt]
    cond: Expr


@dataclass
class Exit(Stmt):
    pass


@dataclass
class Continue(Stmt):
    pass


@dataclass
class Return(Stmt):
    pass


# ---- types, initialisers, declarations ---------------------------------------------------------------------------


@dataclass
class TypeRef(Node):
    pass


@dataclass
class NamedTypeRef(TypeRef):
    name: str


@dataclass
class StringTypeRef(TypeRef):
    length: int | None = None


@dataclass
class ArrayTypeRef(TypeRef):
    dims: list[tuple[Expr, Expr]]
    elem: TypeRef


@dataclass
class SubrangeTypeRef(TypeRef):
    base: TypeRef
    low: Expr
    high: Expr


@dataclass
class EnumTypeRef(TypeRef):
    values: list[tuple[str, Expr | None, int, int]]  # name, explicit value, line, col
    base: str | None = None


@dataclass
class StructTypeRef(TypeRef):
    fields: list[VarDecl]


@dataclass
class Init(Node):
    pass


@dataclass
class ExprInit(Init):
    expr: Expr


@dataclass
class ArrayInit(Init):
    items: list[tuple[int, Init | None]]  # repetition count, value (None: default)


@dataclass
class StructInit(Init):
    fields: list[tuple[str, Init, int, int]]  # field name, value, line, col


@dataclass
class VarDecl(Node):
    name: str
    type_ref: TypeRef
    init: Init | None = None
    section: str = "VAR"
    retain: bool = False
    constant: bool = False


@dataclass
class TypeDecl(Node):
    name: str
    type_ref: TypeRef
    init: Init | None = None


@dataclass
class Pou(Node):
    kind: str  # "PROGRAM" | "FUNCTION" | "FUNCTION_BLOCK"
    name: str
    return_type: TypeRef | None
    decls: list[VarDecl] = field(default_factory=list)
    body: list[Stmt] = field(default_factory=list)


@dataclass
class SourceUnit:
    types: list[TypeDecl] = field(default_factory=list)
    globals: list[VarDecl] = field(default_factory=list)
    pous: list[Pou] = field(default_factory=list)
