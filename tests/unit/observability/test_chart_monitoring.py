"""`helm template` renders the dashboards' ConfigMaps, the PrometheusRule and the PodMonitors only when asked, and the
PodMonitors select the pods the operator really builds."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from shopfloor_api import parse_manifest
from shopfloor_api.protocolbridge import ProtocolBridge
from shopfloor_api.virtualplc import VirtualPLC
from shopfloor_operator.builders.pod import pod
from shopfloor_operator.builders.workloads import bridge_workload, plc_workload
from shopfloor_operator.settings import OperatorSettings
from tests.unit.observability.chart import (
    ALL_ON,
    CHART,
    DASHBOARDS,
    MONITORING_KINDS,
    ROOT,
    helm,
    of_kind,
    render,
    rules,
    selects,
)
from tests.unit.observability.promql import selectors

META = {"namespace": "line-1", "uid": "uid-1", "generation": 1}


def monitoring_objects(documents: tuple[dict[str, Any], ...]) -> list[str]:
    return [
        f"{doc['kind']}/{doc['metadata']['name']}"
        for doc in documents
        if doc["kind"] in MONITORING_KINDS or "grafana_dashboard" in (doc["metadata"].get("labels") or {})
    ]


def dashboard_configmaps(documents: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    return [doc for doc in of_kind(documents, "ConfigMap") if "dashboard" in doc["metadata"]["name"]]


EXAMPLES = ROOT / "examples" / "production-line"


def workload_pods() -> dict[str, dict[str, Any]]:
    """The pods the operator builds for the shipped example VirtualPLC and ProtocolBridge."""
    settings = OperatorSettings()
    plc = parse_manifest(
        {**yaml.safe_load((EXAMPLES / "tank-1.yaml").read_text()), "metadata": {**META, "name": "tank-1"}}
    )
    bridge = parse_manifest(
        {**yaml.safe_load((EXAMPLES / "line-1-bridge.yaml").read_text()), "metadata": {**META, "name": "line-1-bridge"}}
    )
    assert isinstance(plc, VirtualPLC) and isinstance(bridge, ProtocolBridge)
    return {
        "vplc": pod(plc_workload(plc, settings), settings, 0),
        "bridge": pod(bridge_workload(bridge, settings), settings, 0),
    }


def port_names(pod_spec: dict[str, Any]) -> set[str]:
    return {port["name"] for container in pod_spec["containers"] for port in container.get("ports", [])}


def test_monitoring_is_off_by_default() -> None:
    assert monitoring_objects(render()) == []


def test_monitoring_disabled_explicitly_renders_nothing() -> None:
    off = tuple(setting.replace("=true", "=false") for setting in ALL_ON)
    assert monitoring_objects(render(*off)) == []


@pytest.mark.parametrize("setting", ALL_ON)
def test_each_switch_renders_only_its_objects(setting: str) -> None:
    kinds = sorted({name.split("/")[0] for name in monitoring_objects(render(setting))})
    expected = {
        "monitoring.dashboards.enabled=true": ["ConfigMap"],
        "monitoring.prometheusRule.enabled=true": ["PrometheusRule"],
        "monitoring.podMonitor.enabled=true": ["PodMonitor"],
    }[setting]
    assert kinds == expected


def test_chart_lints_with_monitoring_on() -> None:
    args = [arg for setting in ALL_ON for arg in ("--set", setting)]
    assert "0 chart(s) failed" in helm("lint", str(CHART), *args)


def test_one_configmap_per_dashboard_for_the_grafana_sidecar() -> None:
    maps = dashboard_configmaps(render(*ALL_ON))
    assert len(maps) == len(DASHBOARDS)
    rendered = {}
    for configmap in maps:
        assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert configmap["metadata"]["namespace"] == "shopfloor-system"
        ((key, text),) = configmap["data"].items()
        rendered[key] = json.loads(text)
    for path in DASHBOARDS:
        assert rendered[f"shopfloor-{path.name}"] == json.loads(path.read_text())


def test_dashboards_go_to_the_sidecar_namespace_with_its_label() -> None:
    maps = dashboard_configmaps(
        render(
            "monitoring.dashboards.enabled=true",
            "monitoring.dashboards.namespace=grafana",
            "monitoring.dashboards.labels.grafana_dashboard=null",
            "monitoring.dashboards.labels.dashboards=shopfloor",
            "monitoring.dashboards.annotations.grafana_folder=Shopfloor",
        )
    )
    assert {each["metadata"]["namespace"] for each in maps} == {"grafana"}
    for each in maps:
        assert each["metadata"]["labels"]["dashboards"] == "shopfloor"
        assert "grafana_dashboard" not in each["metadata"]["labels"]
        assert each["metadata"]["annotations"] == {"grafana_folder": "Shopfloor"}


def test_prometheus_rule_is_a_prometheus_operator_object() -> None:
    (rule,) = of_kind(render(*ALL_ON, "monitoring.prometheusRule.labels.release=kps"), "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["release"] == "kps"
    assert [group["name"] for group in rule["spec"]["groups"]] == [
        "shopfloor.vplc",
        "shopfloor.bridge",
        "shopfloor.operator",
    ]


def test_thresholds_come_from_values() -> None:
    (rule,) = of_kind(
        render(
            "monitoring.prometheusRule.enabled=true",
            "monitoring.prometheusRule.bridgeBufferMaxBytes=1000",
            "monitoring.prometheusRule.wakeupLatenessBudgetRatio=0.05",
        ),
        "PrometheusRule",
    )
    exprs = {each["alert"]: each["expr"] for group in rule["spec"]["groups"] for each in group["rules"]}
    assert exprs["ShopfloorBridgeBufferFilling"].endswith("> 800")
    assert "> 0.05 / sum by (namespace, plc)" in exprs["ShopfloorWakeupLatenessHigh"]


def test_runbook_url_only_when_configured() -> None:
    assert all("runbook_url" not in rule["annotations"] for rule in rules())
    (rule,) = of_kind(
        render("monitoring.prometheusRule.enabled=true", "monitoring.prometheusRule.runbookUrl=https://docs/obs.md"),
        "PrometheusRule",
    )
    for each in (each for group in rule["spec"]["groups"] for each in group["rules"]):
        assert each["annotations"]["runbook_url"] == f"https://docs/obs.md#{each['alert'].lower()}"


def test_operator_podmonitor_selects_the_operator_pod() -> None:
    documents = render(*ALL_ON)
    (deployment,) = of_kind(documents, "Deployment")
    template = deployment["spec"]["template"]
    monitors = {doc["metadata"]["name"]: doc for doc in of_kind(documents, "PodMonitor")}
    operator = monitors["shopfloor-operator"]["spec"]
    assert selects(operator["selector"], template["metadata"]["labels"])
    assert operator["namespaceSelector"] == {"matchNames": ["shopfloor-system"]}
    assert {each["port"] for each in operator["podMetricsEndpoints"]} <= port_names(template["spec"])
    assert template["metadata"]["labels"][operator["jobLabel"]] == "shopfloor-operator"
    workloads = monitors["shopfloor-workloads"]["spec"]
    assert not selects(workloads["selector"], template["metadata"]["labels"]), "the operator would be scraped twice"


def test_workload_podmonitor_selects_the_pods_the_operator_builds() -> None:
    (monitor,) = [
        doc for doc in of_kind(render(*ALL_ON), "PodMonitor") if doc["metadata"]["name"].endswith("workloads")
    ]
    spec = monitor["spec"]
    jobs = set()
    for component, built in workload_pods().items():
        labels = built["metadata"]["labels"]
        assert selects(spec["selector"], labels), component
        assert {each["port"] for each in spec["podMetricsEndpoints"]} <= port_names(built["spec"]), component
        jobs.add(labels[spec["jobLabel"]])
        # The relabeling that names the series after the object matches this pod's labels.
        relabel = next(
            each
            for each in spec["podMetricsEndpoints"][0]["relabelings"]
            if each["targetLabel"] == component.replace("vplc", "plc")
        )
        assert relabel["regex"].startswith(f"{labels['app.kubernetes.io/component']};")
    # The alerts that watch scrape health use the jobs these pods produce.
    used = {value for rule in rules() for value in _job_matchers(rule["expr"])}
    assert used <= jobs | {"shopfloor-operator"}
    assert used >= jobs


def test_workload_podmonitor_follows_watched_namespaces() -> None:
    (monitor,) = [
        doc
        for doc in of_kind(
            render("monitoring.podMonitor.enabled=true", "settings.namespaces={line-1,line-2}"), "PodMonitor"
        )
        if doc["metadata"]["name"].endswith("workloads")
    ]
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["line-1", "line-2"]}
    (default,) = [
        doc for doc in of_kind(render(*ALL_ON), "PodMonitor") if doc["metadata"]["name"].endswith("workloads")
    ]
    assert default["spec"]["namespaceSelector"] == {"any": True}


def _job_matchers(expr: str) -> set[str]:
    return {
        value
        for selector in selectors(expr)
        if selector.name == "up"
        for label, _, value in selector.matchers
        if label == "job"
    }
