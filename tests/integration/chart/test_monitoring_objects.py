"""The chart's PodMonitors and PrometheusRule against the Prometheus Operator's own released CRDs
(github.com/prometheus-operator/prometheus-operator, example/prometheus-operator-crd): applied server-side, so the
API server validates them with the CRDs' schemas, and labelled for kube-prometheus-stack's default selectors."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from shopfloor_localsite.build import PROMETHEUS_OPERATOR_CRDS, ensure_binaries, ensure_prometheus_operator_crds

CHART = Path(__file__).resolve().parents[3] / "charts" / "shopfloor"
MONITORING = ("PodMonitor", "PrometheusRule")
# kube-prometheus-stack's Prometheus selects monitors and rules labelled release=<its release name> by default.
RELEASE_LABEL = "kube-prometheus-stack"


def run(command: list[str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=120, check=False)


def kubectl(kubeconfig: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return run([str(ensure_binaries().kubectl), "--kubeconfig", str(kubeconfig), *args], stdin)


def rendered_monitoring(namespace: str, *values: str) -> str:
    sets = [
        "monitoring.podMonitor.enabled=true",
        "monitoring.prometheusRule.enabled=true",
        f"monitoring.podMonitor.labels.release={RELEASE_LABEL}",
        f"monitoring.prometheusRule.labels.release={RELEASE_LABEL}",
        *values,
    ]
    command = [str(ensure_binaries().helm), "template", "shopfloor", str(CHART), "--namespace", namespace]
    result = run([*command, *(arg for value in sets for arg in ("--set", value))])
    assert result.returncode == 0, result.stderr
    documents = [doc for doc in yaml.safe_load_all(result.stdout) if doc and doc["kind"] in MONITORING]
    return yaml.safe_dump_all(documents)


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
    manifests = rendered_monitoring(namespace)
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
    manifests = rendered_monitoring(namespace, "monitoring.podMonitor.interval=fifteen")
    result = kubectl(
        kubeconfig, "apply", "--server-side", "--dry-run=server", "-n", namespace, "-f", "-", stdin=manifests
    )
    assert result.returncode != 0
    assert 'spec.podMetricsEndpoints[0].interval: Invalid value: "fifteen"' in result.stderr, result.stderr
