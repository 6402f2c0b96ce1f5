"""Every dashboard query returns data from a real Prometheus scraping the real metrics classes, and the instance
variables list the scraped PLC, bridge and operator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.waiting import wait_for
from tests.unit.observability.chart import dashboards, queries, variable_queries
from tests.unit.observability.live_site import PROMETHEUS, SCRAPE_SECONDS, TARGETS, LiveSite, live_site
from tests.unit.observability.promql import variable_selector, without_grafana_variables

pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason="prometheus not installed (Debian package prometheus)")

# Grafana's intervals for a 1 s scrape: $__rate_interval is at least four scrapes.
DURATIONS = {"__rate_interval": f"{4 * SCRAPE_SECONDS}s", "__interval": f"{SCRAPE_SECONDS}s", "__range": "1m"}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveSite]:
    with live_site(Path(tmp_path_factory.mktemp("prometheus"))) as running:
        yield running


def panel_queries() -> list[tuple[str, str]]:
    # Every custom variable as "All" (.*), the way a first visit shows the dashboard.
    return [
        (name, without_grafana_variables(expr, DURATIONS, other=".*"))
        for name, board in dashboards().items()
        for expr in queries(board)
    ]


def test_every_panel_query_returns_data(site: LiveSite) -> None:
    pending = dict.fromkeys(expr for _, expr in panel_queries())

    def all_answered() -> bool:
        for expr in list(pending):
            if site.has_data(expr):
                del pending[expr]
        return not pending

    try:
        wait_for(all_answered, timeout=60, interval=0.5, what="every dashboard query to return data")
    except AssertionError:
        pytest.fail("queries without data:\n" + "\n".join(pending))


def test_instance_variables_list_the_scraped_processes(site: LiveSite) -> None:
    expected = {labels.get("plc") or labels.get("bridge") or labels["pod"] for _, labels in TARGETS.values()}
    listed: set[str] = set()

    def found() -> bool:
        for board in dashboards().values():
            for query in variable_queries(board):
                selector, label = variable_selector(query)
                if label != "namespace":
                    listed.update(site.label_values(label, without_grafana_variables(selector, other=".*")))
        return listed >= expected

    wait_for(found, timeout=30, interval=0.5, what=f"variables to list {expected}")
