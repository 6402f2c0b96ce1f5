"""The alerts fire on the series that describe their failure, with the labels a human needs, and stay quiet on a
healthy site: evaluated by Prometheus' own rule engine (`promtool test rules`, Debian package `prometheus`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.observability.alert_scenarios import FIRING, HEALTHY, NOT_STARTED, PLC, SCRAPE, SLOW_CYCLE, Scenario
from tests.unit.observability.chart import ALL_ON, of_kind, render, rules

PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian package prometheus)")


def rule_file(tmp_path: Path, annotations: bool = True) -> Path:
    """The rendered rules as a Prometheus rule file; without annotations promtool compares labels only."""
    (rule,) = of_kind(render(*ALL_ON), "PrometheusRule")
    groups = rule["spec"]["groups"]
    if not annotations:
        groups = [
            {**group, "rules": [{k: v for k, v in each.items() if k != "annotations"} for each in group["rules"]]}
            for group in groups
        ]
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": groups}))
    return path


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, check=False, timeout=60)


def series(values: dict[str, str]) -> list[dict[str, str]]:
    return [{"series": name, "values": value} for name, value in values.items()]


def run_tests(
    tmp_path: Path, groups: list[dict[str, Any]], annotations: bool = False
) -> subprocess.CompletedProcess[str]:
    tests = tmp_path / "tests.yaml"
    tests.write_text(yaml.safe_dump({"rule_files": [str(rule_file(tmp_path, annotations))], "tests": groups}))
    return promtool("test", "rules", str(tests))


def test_promtool_accepts_the_rules(tmp_path: Path) -> None:
    result = promtool("check", "rules", str(rule_file(tmp_path)))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_firing_scenario() -> None:
    assert {scenario.alert for scenario in FIRING} == {rule["alert"] for rule in rules()}


@pytest.mark.parametrize("scenario", FIRING, ids=lambda scenario: scenario.alert)
def test_alert_fires(tmp_path: Path, scenario: Scenario) -> None:
    expected: list[dict[str, Any]] = [{"exp_labels": labels} for labels in scenario.fires]
    if scenario.summary:
        rule = next(rule for rule in rules() if rule["alert"] == scenario.alert)
        expected[0]["exp_annotations"] = {
            "summary": scenario.summary,
            "description": _with_scenario_labels(rule["annotations"]["description"]),
        }
    group = {
        "interval": SCRAPE,
        "input_series": series(scenario.series),
        "alert_rule_test": [{"eval_time": scenario.at, "alertname": scenario.alert, "exp_alerts": expected}],
    }
    result = run_tests(tmp_path, [group], annotations=bool(scenario.summary))
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_healthy_site_raises_no_alert(tmp_path: Path) -> None:
    checks = [
        {"eval_time": at, "alertname": rule["alert"], "exp_alerts": []}
        for rule in rules()
        for at in ("5m", "15m", "29m")
    ]
    result = run_tests(tmp_path, [{"interval": SCRAPE, "input_series": series(HEALTHY), "alert_rule_test": checks}])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("alert", "values", "at"),
    [("ShopfloorRealtimeNotGranted", NOT_STARTED, "4m"), ("ShopfloorWakeupLatenessHigh", SLOW_CYCLE, "17m")],
    ids=["realtime-before-the-first-scan", "lateness-within-a-long-cycle"],
)
def test_alert_stays_quiet(tmp_path: Path, alert: str, values: dict[str, str], at: str) -> None:
    group = {
        "interval": SCRAPE,
        "input_series": series(values),
        "alert_rule_test": [{"eval_time": at, "alertname": alert, "exp_alerts": []}],
    }
    result = run_tests(tmp_path, [group])
    assert result.returncode == 0, result.stdout + result.stderr


def _with_scenario_labels(template: str) -> str:
    """A description template as Prometheus renders it for the PLC of the scenarios."""
    for label, value in PLC.items():
        template = template.replace(f"{{{{ $labels.{label} }}}}", value)
    return template
