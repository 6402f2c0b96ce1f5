"""Every alert is complete (for, severity, summary, description with a runbook that exists) and its query parses."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.unit.observability.chart import ROOT, rules
from tests.unit.observability.promql import parse

SEVERITIES = {"critical", "warning", "info"}
DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
RUNBOOK = re.compile(r"Runbook: docs/observability\.md#([a-z0-9-]+)$")
DOCS = ROOT / "docs" / "observability.md"

# What the alerts must cover (the metric each one reads says how).
REQUIRED = {
    "ShopfloorPLCFaulted",
    "ShopfloorPLCNotReporting",
    "ShopfloorPLCsNotReady",
    "ShopfloorScanOverruns",
    "ShopfloorWakeupLatenessHigh",
    "ShopfloorRealtimeNotGranted",
    "ShopfloorProgramRolledBack",
    "ShopfloorPLCReplaced",
    "ShopfloorBridgeBufferFilling",
    "ShopfloorBridgeDroppingMessages",
    "ShopfloorFieldDeviceDown",
    "ShopfloorBridgePollFailures",
    "ShopfloorReconcileErrors",
}


def github_anchors(markdown: str) -> set[str]:
    """Heading anchors as GitHub makes them: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", markdown, re.M)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_alert_names_are_unique_and_cover_the_failure_modes() -> None:
    names = [rule["alert"] for rule in rules()]
    assert len(names) == len(set(names))
    assert set(names) >= REQUIRED


@pytest.mark.parametrize("rule", rules(), ids=lambda rule: rule["alert"])
def test_alert_is_complete(rule: dict[str, Any]) -> None:
    assert set(rule) <= {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
    assert DURATION.match(str(rule["for"])), rule["for"]
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert annotations["summary"].strip()
    match = RUNBOOK.search(annotations["description"])
    assert match, "the description ends with its runbook section"
    assert match.group(1) == rule["alert"].lower()


@pytest.mark.parametrize("rule", rules(), ids=lambda rule: rule["alert"])
def test_alert_expression_parses(rule: dict[str, Any]) -> None:
    try:
        parse(rule["expr"])
    except ValueError as error:
        pytest.fail(f"{rule['alert']}: {error}\n{rule['expr']}")


def test_every_alert_has_a_runbook_section() -> None:
    anchors = github_anchors(DOCS.read_text())
    missing = [rule["alert"] for rule in rules() if rule["alert"].lower() not in anchors]
    assert not missing, f"docs/observability.md has no section for {missing}"


def test_alert_templates_survive_helm() -> None:
    """Helm must leave Prometheus' own {{ $labels.x }} templates in place, not render them."""
    summaries = " ".join(rule["annotations"]["summary"] for rule in rules())
    assert "{{ $labels.plc }}" in summaries
    assert "{{ $labels.bridge }}" in summaries
