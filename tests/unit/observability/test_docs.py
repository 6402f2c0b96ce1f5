"""docs/observability.md documents every metric the processes export and every alert the chart ships."""

from __future__ import annotations

import re

from tests.unit.observability.chart import ROOT, dashboards, queries, rules
from tests.unit.observability.exported import exported_series
from tests.unit.observability.promql import metric_names

DOCS = (ROOT / "docs" / "observability.md").read_text()


def documented_metrics() -> set[str]:
    """Metric names in the first column of the docs' tables."""
    return set(re.findall(r"^\| `(shopfloor_\w+)` \|", DOCS, re.M))


def test_metrics_the_dashboards_and_alerts_use_are_documented() -> None:
    """Those an SRE meets; a metric nothing uses yet may wait for its row."""
    exported = exported_series()
    texts = [expr for board in dashboards().values() for expr in queries(board)] + [rule["expr"] for rule in rules()]
    used = {
        name if exported[name].type == "counter" else exported[name].family
        for text in texts
        for name in metric_names(text)
        if name in exported
    }
    assert sorted(used - documented_metrics()) == [], "add a row to the tables in docs/observability.md"


def test_documented_metrics_exist() -> None:
    exported = exported_series()
    families = {series.family for series in exported.values()}
    assert sorted(documented_metrics() - exported.keys() - families) == []


def test_every_alert_is_in_the_table() -> None:
    listed = set(re.findall(r"^\| (Shopfloor\w+) \|", DOCS, re.M))
    assert listed == {rule["alert"] for rule in rules()}
