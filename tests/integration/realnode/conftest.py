"""Real-node fixtures: a site with real-rt-1 next to simulated nodes, or a skip that says why this machine cannot."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from shopfloor_localsite.realnode import RealNodeUnavailable
from shopfloor_localsite.site.edgesite import EdgeSite, SiteOptions


@contextmanager
def site_with_a_real_node(**options: object) -> Iterator[EdgeSite]:
    """A site with one real node, one simulated real-time node and one general one; options as SiteOptions'."""
    events: list[str] = []
    settings = {"realtime_nodes": 1, "general_nodes": 1, "real_nodes": 1, "broker": False, **options}
    edge = EdgeSite(SiteOptions(on_event=events.append, **settings))  # type: ignore[arg-type]
    try:
        edge.start()
    except RealNodeUnavailable as reason:
        pytest.skip(f"this machine cannot run a real node: {reason}")
    try:
        yield edge
    finally:
        if edge.operator is not None:
            print(f"--- operator\n{edge.operator.log_tail(40)}")
        print("--- site events\n" + "\n".join(events[-40:]))
        edge.stop()
