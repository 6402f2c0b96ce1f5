"""docs/observability.md documents every metric the processes export and every alert the chart ships."""

from __future__ import annotations

import re

from tests.unit.observability.chart import ROOT, rules
from tests.unit.observability.exported import exported_series

DOCS = (ROOT / "docs" / "observability.md").read_text()


def documented_metrics() -> set[str]:
    """Metric names in the first column of the docs' tables."""
    return set(re.findall(r"^\| `(shopfloor_\w+)` \|", DOCS, re.M))


def test_every_exported_metric_is_documented() -> None:
    # One documented name per metric: counters under _total, histograms and gauges under the family name.
    names = {
        series.name if series.type == "counter" else series.family
        for series in exported_series().values()
        if not series.name.endswith("_created")
    }
    assert sorted(names - documented_metrics()) == []


def test_documented_metrics_exist() -> None:
    exported = exported_series()
    families = {series.family for series in exported.values()}
    assert sorted(documented_metrics() - exported.keys() - families) == []


def test_every_alert_is_in_the_table() -> None:
    listed = set(re.findall(r"^\| (Shopfloor\w+) \|", DOCS, re.M))
    assert listed == {rule["alert"] for rule in rules()}
