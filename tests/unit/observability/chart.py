"""The chart rendered by the real helm binary (built by the repository's localsite tooling)."""

from __future__ import annotations

import json
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from shopfloor_localsite.build import ensure_binaries

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "charts" / "shopfloor"
DASHBOARDS = sorted((CHART / "dashboards").glob("*.json"))
MONITORING_KINDS = ("PodMonitor", "PrometheusRule")

ALL_ON = (
    "monitoring.dashboards.enabled=true",
    "monitoring.prometheusRule.enabled=true",
    "monitoring.podMonitor.enabled=true",
)


def helm(*args: str) -> str:
    result = subprocess.run([str(ensure_binaries().helm), *args], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


@cache
def render(*settings: str, namespace: str = "shopfloor-system") -> tuple[dict[str, Any], ...]:
    args = ["template", "shopfloor", str(CHART), "--namespace", namespace]
    for setting in settings:
        args += ["--set", setting]
    return tuple(doc for doc in yaml.safe_load_all(helm(*args)) if doc)


def of_kind(documents: tuple[dict[str, Any], ...], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in documents if doc["kind"] == kind]


def rules() -> list[dict[str, Any]]:
    """Every alerting rule of the rendered PrometheusRule (monitoring enabled, default thresholds)."""
    (rule,) = of_kind(render(*ALL_ON), "PrometheusRule")
    return [each for group in rule["spec"]["groups"] for each in group["rules"]]


def dashboards() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text()) for path in DASHBOARDS}


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """All panels, rows' nested panels included."""
    found = []
    for panel in dashboard.get("panels", []):
        found.append(panel)
        found += panel.get("panels", [])
    return found


def queries(dashboard: dict[str, Any]) -> list[str]:
    """The PromQL of every panel target (Grafana variables left in)."""
    return [target["expr"] for panel in panels(dashboard) for target in panel.get("targets", []) if "expr" in target]


def variable_queries(dashboard: dict[str, Any]) -> list[str]:
    found = []
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            found.append(query["query"] if isinstance(query, dict) else query)
    return found


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels, matchExpressions) against a set of labels."""
    if any(labels.get(key) != value for key, value in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not ok:
            return False
    return True
