"""Reading the queries of dashboards and alert rules: metric names (loosely, by pattern) and selectors (by parsing).

Parsing uses promql-parser (Python bindings of GreptimeDB's Rust PromQL parser, MIT): it checks syntax, function
names and argument types the way Prometheus does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import promql_parser

# A metric name cannot follow a name character; label values ("shopfloor-vplc") never match the underscore form.
METRIC_NAME = re.compile(r"(?<![A-Za-z0-9_:])shopfloor_[A-Za-z0-9_:]*")
GRAFANA_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
GRAFANA_DURATIONS = {"__rate_interval": "1m", "__interval": "30s", "__range": "6h"}
MATCH_OPERATORS = {"MatchOp.Equal": "=", "MatchOp.NotEqual": "!=", "MatchOp.Re": "=~", "MatchOp.NotRe": "!~"}
LABEL_VALUES = re.compile(r"^label_values\((?:(?P<selector>.+),\s*)?(?P<label>\w+)\)$", re.S)


@dataclass(frozen=True)
class Selector:
    name: str
    matchers: tuple[tuple[str, str, str], ...]  # (label, operator, value)


def metric_names(text: str) -> set[str]:
    return set(METRIC_NAME.findall(text))


def without_grafana_variables(expr: str, durations: dict[str, str] | None = None, other: str = "x") -> str:
    """A Grafana query as Prometheus receives it: built-in intervals become durations, other variables `other`."""
    known = {**GRAFANA_DURATIONS, **(durations or {})}

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return known.get(name, other)

    return GRAFANA_VARIABLE.sub(value, expr)


def parse(expr: str) -> promql_parser.Expr:
    """Raises ValueError with the parser's message for an invalid query."""
    return promql_parser.parse(expr)


def selectors(expr: str) -> list[Selector]:
    found: list[Selector] = []

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            matchers = tuple(
                (m.name, MATCH_OPERATORS[str(m.op)], m.value) for m in node.matchers.matchers if m.name != "__name__"
            )
            found.append(Selector(node.name or "", matchers))

    promql_parser.walk(parse(expr), pre_visit=visit)
    return found


def grouping_labels(expr: str) -> list[tuple[set[str], list[str]]]:
    """For each `by (...)` aggregation: the metric names below it and the labels it keeps."""
    found: list[tuple[set[str], list[str]]] = []

    def visit(node: promql_parser.Expr) -> None:
        modifier = getattr(node, "modifier", None) if isinstance(node, promql_parser.AggregateExpr) else None
        if modifier is not None and modifier.type == promql_parser.AggModifierType.By:
            found.append((metric_names(node.prettify()), list(modifier.labels)))

    promql_parser.walk(parse(expr), pre_visit=visit)
    return found


def variable_selector(query: str) -> tuple[str, str]:
    """`label_values(selector, label)` -> (selector, label); the selector may be empty."""
    match = LABEL_VALUES.match(query.strip())
    if match is None:
        raise ValueError(f"not a label_values() query: {query!r}")
    return match.group("selector") or "", match.group("label")
