"""The chart's PodMonitors and PrometheusRule against the Prometheus Operator's own released CRDs
(github.com/prometheus-operator/prometheus-operator, example/prometheus-operator-crd): applied server-side, so the
API server validates them with the CRDs' schemas, and labelled for kube-prometheus-stack's default selectors."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from shopfloor_localsite.build import PROMETHEUS_OPERATOR_CRDS, ensure_binaries, ensure_prometheus_operator_crds
from tests.unit.observability.chart import ALL_ON, MONITORING_KINDS, render

# kube-prometheus-stack's Prometheus selects monitors and rules labelled release=<its release name> by default.
RELEASE_LABEL = "kube-prometheus-stack"


def kubectl(kubeconfig: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    command = [str(ensure_binaries().kubectl), "--kubeconfig", str(kubeconfig), *args]
    return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=120, check=False)


def monitoring_objects(namespace: str) -> list[dict[str, Any]]:
    settings = (
        *ALL_ON,
        *(f"monitoring.{kind}.labels.release={RELEASE_LABEL}" for kind in ("podMonitor", "prometheusRule")),
    )
    return [copy.deepcopy(doc) for doc in render(*settings, namespace=namespace) if doc["kind"] in MONITORING_KINDS]


@pytest.fixture(scope="module")
def prometheus_operator_crds(kubeconfig: Path) -> None:
    folder = ensure_prometheus_operator_crds()
    for name in PROMETHEUS_OPERATOR_CRDS:
        # Server-side: the CRDs are too large for client-side apply's last-applied annotation.
        result = kubectl(kubeconfig, "apply", "--server-side", "-f", str(folder / name))
        assert result.returncode == 0, result.stderr
    names = [
        f"crd/{name.removeprefix('monitoring.coreos.com_').removesuffix('.yaml')}.monitoring.coreos.com"
        for name in PROMETHEUS_OPERATOR_CRDS
    ]
    result = kubectl(kubeconfig, "wait", "--for=condition=Established", "--timeout=60s", *names)
    assert result.returncode == 0, result.stderr


def test_monitors_and_rules_are_accepted_and_selectable(
    kubeconfig: Path, namespace: str, prometheus_operator_crds: None
) -> None:
    manifests = yaml.safe_dump_all(monitoring_objects(namespace))
    result = kubectl(
        kubeconfig, "apply", "--server-side", "--field-manager=helm", "-n", namespace, "-f", "-", stdin=manifests
    )
    assert result.returncode == 0, result.stderr
    selected = kubectl(
        kubeconfig,
        "get",
        "podmonitors,prometheusrules",
        "-n",
        namespace,
        "-l",
        f"release={RELEASE_LABEL}",
        "-o",
        "name",
    )
    assert selected.returncode == 0, selected.stderr
    assert sorted(selected.stdout.split()) == [
        "podmonitor.monitoring.coreos.com/shopfloor-operator",
        "podmonitor.monitoring.coreos.com/shopfloor-workloads",
        "prometheusrule.monitoring.coreos.com/shopfloor-alerts",
    ]


def test_a_bad_value_is_refused_by_the_crds_schema(
    kubeconfig: Path, namespace: str, prometheus_operator_crds: None
) -> None:
    # values.schema.json refuses this value already; the CRD's own schema is the second line.
    objects = monitoring_objects(namespace)
    monitor = next(doc for doc in objects if doc["kind"] == "PodMonitor")
    monitor["spec"]["podMetricsEndpoints"][0]["interval"] = "fifteen"
    manifests = yaml.safe_dump_all(objects)
    result = kubectl(
        kubeconfig, "apply", "--server-side", "--dry-run=server", "-n", namespace, "-f", "-", stdin=manifests
    )
    assert result.returncode != 0
    assert 'spec.podMetricsEndpoints[0].interval: Invalid value: "fifteen"' in result.stderr, result.stderr
