"""Dashboards and alerts only use series the code exports, with labels it (or the chart's scrape config) sets."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from shopfloor_api.virtualplc import Phase
from shopfloor_bridge.tags import Quality
from shopfloor_operator.controller import CONTROLLERS
from shopfloor_vplc.image import PlcState
from tests.unit.observability.chart import ALL_ON, dashboards, of_kind, queries, render, rules, variable_queries
from tests.unit.observability.exported import METRICS_MODULES, exported_series, modules_with_series, series_of
from tests.unit.observability.promql import (
    grouping_labels,
    metric_names,
    selectors,
    variable_selector,
    without_grafana_variables,
)

# Labels Prometheus Operator adds to every PodMonitor target; the chart's relabelings add more (read from the chart).
SCRAPE_LABELS = {"namespace", "pod", "container", "endpoint", "job", "instance"}
# Label values the dashboards and alerts match on, from the enums the code uses.
KNOWN_VALUES = {
    "state": {each.value for each in PlcState},
    "phase": {each.value for each in Phase},
    "controller": set(CONTROLLERS.values()),
    "quality": {each.value for each in Quality},
}


def target_labels() -> set[str]:
    added = set()
    for monitor in of_kind(render(*ALL_ON), "PodMonitor"):
        for endpoint in monitor["spec"]["podMetricsEndpoints"]:
            added |= {each["targetLabel"] for each in endpoint.get("relabelings", []) if "targetLabel" in each}
    return SCRAPE_LABELS | added


def all_queries() -> list[tuple[str, str]]:
    """(where, PromQL as Prometheus receives it) for every dashboard query, variable query and alert."""
    found = []
    for name, board in dashboards().items():
        found += [(name, without_grafana_variables(expr)) for expr in queries(board)]
        for query in variable_queries(board):
            selector, _ = variable_selector(query)
            if selector:
                found.append((f"{name} variable", without_grafana_variables(selector)))
    found += [(rule["alert"], rule["expr"]) for rule in rules()]
    return found


def test_each_metrics_module_exports_series() -> None:
    assert modules_with_series() >= set(METRICS_MODULES)
    assert all(name.startswith("shopfloor_") for name in exported_series())


def test_series_names_follow_the_family_type() -> None:
    """Prometheus stores counters as _total, histograms as _bucket/_sum/_count and never under the bare name."""
    registry = CollectorRegistry()
    Counter("shopfloor_demo_events_total", "", ["kind"], registry=registry)
    Histogram("shopfloor_demo_duration_seconds", "", registry=registry)
    Gauge("shopfloor_demo_info", "", ["revision"], registry=registry)
    names = {each.name for each in series_of(registry, "demo", only_prefixed=True)}
    assert names == {
        "shopfloor_demo_events_total",
        "shopfloor_demo_events_created",
        "shopfloor_demo_duration_seconds_bucket",
        "shopfloor_demo_duration_seconds_sum",
        "shopfloor_demo_duration_seconds_count",
        "shopfloor_demo_duration_seconds_created",
        "shopfloor_demo_info",
    }


def test_pattern_finds_names_but_not_label_values() -> None:
    expr = 'rate(shopfloor_vplc_scans_total{job="shopfloor-vplc", plc=~"shopfloor"}[1m]) / up:shopfloor_x'
    assert metric_names(expr) == {"shopfloor_vplc_scans_total"}


@pytest.mark.parametrize("source", ["dashboards", "rules"])
def test_every_referenced_metric_is_exported(source: str) -> None:
    exported = exported_series()
    texts = (
        [expr for board in dashboards().values() for expr in queries(board) + variable_queries(board)]
        if source == "dashboards"
        else [rule["expr"] for rule in rules()]
    )
    referenced = set().union(*(metric_names(text) for text in texts))
    assert referenced, f"no shopfloor_ metric found in the {source}"
    missing = sorted(referenced - exported.keys())
    assert not missing, f"{source} use series no process exports: {missing}"


def test_label_matchers_name_labels_the_series_has() -> None:
    exported, extra = exported_series(), target_labels()
    problems = []
    for where, expr in all_queries():
        for selector in selectors(expr):
            series = exported.get(selector.name)
            if series is None or series.labels is None:
                continue
            for label, _, _ in selector.matchers:
                if label not in series.labels | extra:
                    problems.append(f"{where}: {selector.name} has no label {label!r}")
    assert not problems, "\n".join(problems)


def test_label_matchers_use_values_the_code_sets() -> None:
    problems = []
    for where, expr in all_queries():
        for selector in selectors(expr):
            for label, operator, value in selector.matchers:
                allowed = KNOWN_VALUES.get(label)
                if allowed is None or operator in ("!=", "!~"):
                    continue
                values = value.split("|") if operator == "=~" else [value]
                problems += [f"{where}: {label}={each!r} never set" for each in values if each not in allowed]
    assert not problems, "\n".join(problems)


def test_aggregations_keep_labels_that_exist() -> None:
    exported, extra = exported_series(), target_labels() | {"le"}
    problems = []
    for where, expr in all_queries():
        for names, labels in grouping_labels(expr):
            known: set[str] = set(extra)
            for name in names:
                series = exported.get(name)
                known |= set(series.labels or ()) if series else set()
            problems += [f"{where}: by ({label}) over {sorted(names)}" for label in labels if label not in known]
    assert not problems, "\n".join(problems)
