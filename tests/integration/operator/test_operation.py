"""Operating the operator: metrics and health endpoints, surviving a kill mid-reconcile, one active replica."""

from __future__ import annotations

import urllib.request
from pathlib import Path

from kubernetes import client

from shopfloor_st import source_revision
from tests.support.waiting import wait_for

from .conftest import Cluster, OperatorFactory
from .manifests import GOOD_SOURCE, plc
from .operator_process import OperatorProcess


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def sample(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{key}="{value}"' for key, value in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{wanted}}} " if wanted else f"{name} "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_and_health(start_operator: OperatorFactory, cluster: Cluster) -> None:
    operator = start_operator()
    cluster.create("virtualplcs", plc("metered", updateStrategy={"verifyFor": "0s"}))
    pod = wait_for(lambda: next((p for p in cluster.live_pods("metered") if p.spec.node_name), None))
    assert isinstance(pod, client.V1Pod)
    cluster.play_runtime("metered", pod.metadata.name, source_revision(GOOD_SOURCE))
    wait_for(lambda: cluster.status("virtualplcs", "metered").get("phase") == "Running")
    url = f"http://127.0.0.1:{operator.settings.metrics_port}/metrics"

    def ready_counted() -> str | None:
        text = scrape(url)
        return text if sample(text, "shopfloor_objects", controller="virtualplc", phase="Running") == 1 else None

    text = wait_for(ready_counted, what="objects by phase")
    assert isinstance(text, str)
    assert sample(text, "shopfloor_reconcile_total", controller="virtualplc", result="success") >= 2
    assert sample(text, "shopfloor_reconcile_time_seconds_count", controller="virtualplc") >= 2
    assert sample(text, "shopfloor_time_to_ready_seconds_count", controller="virtualplc") == 1
    assert sample(text, "shopfloor_api_requests_total", resource="pods", verb="POST") == 1
    assert "shopfloor_pod_replacements_total" in text and "shopfloor_program_rollbacks_total" in text
    assert scrape(operator.settings.liveness_endpoint).strip().startswith("{")


def test_killed_mid_reconcile_resumes_and_converges(
    crds: None, cluster: Cluster, kubeconfig: Path, namespace: str, tmp_path: Path, processes: list[OperatorProcess]
) -> None:
    names = [f"plc-{index}" for index in range(8)]
    for name in names:
        cluster.create("virtualplcs", plc(name))
    first = OperatorProcess(kubeconfig, namespace, tmp_path / "operator.log", SHOPFLOOR_STANDALONE="true")
    processes.append(first)
    wait_for(lambda: len(cluster.core.list_namespaced_pod(namespace).items) >= 1, what="the first pods")
    first.kill()
    second = OperatorProcess(kubeconfig, namespace, tmp_path / "operator.log", SHOPFLOOR_STANDALONE="true")
    processes.append(second)

    def converged() -> bool:
        for name in names:
            status = cluster.status("virtualplcs", name)
            pods = [p for p in cluster.live_pods(name) if p.spec.node_name]
            if len(pods) != 1 or status.get("podName") != pods[0].metadata.name or status.get("phase") != "Starting":
                return False
        return True

    wait_for(converged, timeout=60, what="every PLC with exactly one pod and its status")
    every_pod = cluster.core.list_namespaced_pod(namespace).items
    assert len(every_pod) == len(names), [p.metadata.name for p in every_pod]


def test_two_replicas_only_one_acts(
    crds: None, cluster: Cluster, kubeconfig: Path, namespace: str, tmp_path: Path, processes: list[OperatorProcess]
) -> None:
    custom = client.CustomObjectsApi(cluster.api)
    custom.create_namespaced_custom_object(
        "kopf.dev",
        "v1",
        namespace,
        "kopfpeerings",
        {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": "shopfloor"}},
    )
    high = OperatorProcess(kubeconfig, namespace, tmp_path / "high.log", SHOPFLOOR_PRIORITY="100")
    processes.append(high)

    def priorities() -> list[int]:
        peering = custom.get_namespaced_custom_object("kopf.dev", "v1", namespace, "kopfpeerings", "shopfloor")
        return sorted(peer["priority"] for peer in (peering.get("status") or {}).values())

    # kopf elects at start-up: replicas starting in the same instant can both act until they see each other.
    wait_for(lambda: priorities() == [100], what="the first replica registered")
    low = OperatorProcess(kubeconfig, namespace, tmp_path / "low.log", SHOPFLOOR_PRIORITY="50")
    processes.append(low)
    wait_for(lambda: priorities() == [50, 100], what="both replicas registered as peers")
    cluster.create("virtualplcs", plc("shared"))
    wait_for(lambda: cluster.status("virtualplcs", "shared").get("phase") == "Starting", timeout=60)

    def reconciles(process: OperatorProcess) -> float:
        text = scrape(f"http://127.0.0.1:{process.metrics_port}/metrics")
        return sample(text, "shopfloor_reconcile_total", controller="virtualplc", result="success")

    wait_for(lambda: reconciles(high) >= 2, what="the active replica reconciled")
    assert reconciles(low) == 0, "the waiting replica acted"
    assert len(cluster.live_pods("shared")) == 1
    high.stop()  # a graceful stop leaves the peering at once: the other replica takes over
    wait_for(lambda: reconciles(low) > 0, what="the waiting replica took over")
    assert len(cluster.live_pods("shared")) == 1
