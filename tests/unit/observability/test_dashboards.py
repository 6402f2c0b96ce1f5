"""The Grafana dashboards are valid JSON, well formed for Grafana (schema 39), and their queries parse."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.unit.observability.chart import DASHBOARDS, dashboards, panels, queries, variable_queries
from tests.unit.observability.promql import parse, variable_selector, without_grafana_variables

EXPECTED = {"fleet.json": "Shopfloor / Fleet", "vplc.json": "Shopfloor / vPLC", "bridge.json": "Shopfloor / Bridge"}
INSTANCE_VARIABLES = {"fleet.json": "instance", "vplc.json": "plc", "bridge.json": "bridge"}


def by_name(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def test_the_three_dashboards_are_there() -> None:
    assert {path.name: by_name(path)["title"] for path in DASHBOARDS} == EXPECTED


def test_dashboard_uids_are_unique() -> None:
    uids = [board["uid"] for board in dashboards().values()]
    assert len(set(uids)) == len(uids)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_dashboard_is_grafana_json(path: Path) -> None:
    board = by_name(path)  # raises on invalid JSON
    assert board["schemaVersion"] == 39
    assert board["id"] is None, "a provisioned dashboard must not carry a database id"
    ids = [panel["id"] for panel in panels(board)]
    assert len(ids) == len(set(ids)), f"duplicate panel ids in {path.name}"
    assert all(isinstance(each, int) for each in ids)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_dashboard_variables(path: Path) -> None:
    variables = {variable["name"]: variable for variable in by_name(path)["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("namespace", INSTANCE_VARIABLES[path.name]):
        assert variables[name]["type"] == "query"
        assert variables[name]["datasource"]["uid"] == "${datasource}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_every_query_uses_the_datasource_variable(path: Path) -> None:
    for panel in panels(by_name(path)):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_panels_fit_the_grid_without_overlapping(path: Path) -> None:
    taken: dict[tuple[int, int], str] = {}
    for panel in panels(by_name(path)):
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in taken, f"{panel['title']!r} overlaps {taken[(x, y)]!r}"
                taken[(x, y)] = panel["title"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_queries_parse(path: Path) -> None:
    board = by_name(path)
    for expr in queries(board):
        try:
            parse(without_grafana_variables(expr))
        except ValueError as error:
            pytest.fail(f"{path.name}: {expr}\n{error}")
    for query in variable_queries(board):
        selector, _ = variable_selector(query)
        if selector:
            parse(without_grafana_variables(selector))


def test_rate_windows_follow_the_scrape_interval() -> None:
    """Short scans make dense histograms, so the window only has to hold enough scrapes: Grafana's $__rate_interval
    (at least four scrape intervals) everywhere except the rare-event panels that say why they use a long window."""
    for name, board in dashboards().items():
        for panel in panels(board):
            for target in panel.get("targets", []):
                expr = target["expr"]
                if "rate(" in expr and "$__rate_interval" not in expr:
                    assert "$__range" in expr or "window is long" in panel["description"], (name, panel["title"])
