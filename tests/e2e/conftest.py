"""End-to-end fixtures: the whole simulated edge site with the example production line applied."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shopfloor_localsite.site.edgesite import EdgeSite, SiteOptions
from shopfloor_localsite.site.line import LINE, apply_production_line, wait_line_running
from shopfloor_localsite.site.probes import SiteProbe
from shopfloor_localsite.site.sparkplug_watch import SparkplugWatch


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def site() -> Iterator[EdgeSite]:
    events: list[str] = []
    edge = EdgeSite(SiteOptions(on_event=events.append))
    edge.start()
    try:
        yield edge
    finally:
        if edge.runner is not None:
            for key, tail in edge.runner.log_tails(15).items():
                print(f"--- {key}\n{tail}")
        if edge.operator is not None:
            print(f"--- operator\n{edge.operator.log_tail(40)}")
        print("--- site events\n" + "\n".join(events[-40:]))
        edge.stop()


@pytest.fixture(scope="session")
def probe(site: EdgeSite) -> SiteProbe:
    return SiteProbe(site)


@pytest.fixture(scope="session")
def sparkplug(site: EdgeSite) -> Iterator[SparkplugWatch]:
    assert site.broker is not None
    with SparkplugWatch(site.broker.port, "plant-a") as watch:
        yield watch


@pytest.fixture(scope="session")
def line(site: EdgeSite, probe: SiteProbe, sparkplug: SparkplugWatch) -> str:
    """The production line applied and both PLCs Running (subscribed to Sparkplug before the bridge starts)."""
    apply_production_line(site, probe)
    wait_line_running(probe)
    return LINE
