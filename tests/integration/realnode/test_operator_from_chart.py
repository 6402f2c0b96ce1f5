"""The operator installed by its Helm chart runs in a real container on real-rt-1 and manages PLCs through its
in-cluster ServiceAccount: what a user's first `helm install` does on a real cluster.

The site runs without its own operator; the image is the one `make images` built, imported into the node's
containerd (pullPolicy Never: nothing is pulled). The PLC it manages runs on a simulated node.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client

from shopfloor_localsite.site.edgesite import CHART, OPERATOR_NAMESPACE, EdgeSite
from tests.integration.realnode.conftest import site_with_a_real_node
from tests.support.waiting import wait_for

NODE = "real-rt-1"
NAMESPACE = "cell-chart"

pytestmark = pytest.mark.timeout(900)

PLC: dict[str, Any] = {
    "apiVersion": "shopfloor.io/v1alpha1",
    "kind": "VirtualPLC",
    "metadata": {"name": "counter", "namespace": NAMESPACE},
    "spec": {
        "program": {
            "entrypoint": "Main",
            "source": "PROGRAM Main\nVAR\n  Count : INT;\nEND_VAR\nCount := Count + 1;\nEND_PROGRAM\n",
        },
        "cycleTime": "100ms",
        "resources": {"cpus": 0.1, "memory": "128Mi"},
        "io": {"modbus": {"enabled": True, "map": [{"variable": "Count", "table": "holdingRegisters", "address": 0}]}},
    },
}


@pytest.fixture(scope="module")
def site() -> Iterator[EdgeSite]:
    with site_with_a_real_node(plant=False, operator=False) as edge:
        yield edge


@pytest.fixture(scope="module")
def operator_pod(site: EdgeSite) -> client.V1Pod:
    values = {
        "image": {"pullPolicy": "Never"},
        "nodeSelector": {"kubernetes.io/hostname": NODE},
        "tolerations": [{"key": "shopfloor.io/realtime", "operator": "Exists", "effect": "NoSchedule"}],
        "settings": {"imagePullPolicy": "Never"},
        "crds": {"install": False},  # the site applied them from crds/
    }
    site.helm(
        "install",
        "shopfloor",
        str(CHART),
        "--namespace",
        OPERATOR_NAMESPACE,
        "--create-namespace",
        "--values",
        "-",
        stdin=yaml.safe_dump(values),
    )
    core = client.CoreV1Api(site.api)

    def ready() -> client.V1Pod | None:
        for pod in core.list_namespaced_pod(OPERATOR_NAMESPACE).items:
            statuses = pod.status.container_statuses or []
            if statuses and all(s.ready for s in statuses):
                return pod
        return None

    pod = wait_for(ready, 240, 0.5, "the chart's operator pod Ready")
    assert isinstance(pod, client.V1Pod)
    return pod


def test_the_chart_runs_the_operator_in_a_real_container_on_the_real_node(operator_pod: client.V1Pod) -> None:
    assert operator_pod.spec.node_name == NODE
    (status,) = operator_pod.status.container_statuses
    assert status.container_id.startswith("containerd://")
    assert status.image == "ghcr.io/shopfloor/shopfloor-operator:0.1.0"
    assert status.restart_count == 0
    assert operator_pod.spec.service_account_name == "shopfloor-operator"


def test_the_operator_in_the_container_reconciles_a_plc_through_its_service_account(
    site: EdgeSite, operator_pod: client.V1Pod
) -> None:
    client.CoreV1Api(site.api).create_namespace({"metadata": {"name": NAMESPACE}})
    site.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(PLC))
    custom = client.CustomObjectsApi(site.api)

    def running() -> bool:
        plc = custom.get_namespaced_custom_object("shopfloor.io", "v1alpha1", NAMESPACE, "virtualplcs", "counter")
        return plc.get("status", {}).get("phase") == "Running"

    wait_for(running, 240, 0.5, "counter Running, reconciled by the operator in its container")
    # Who wrote the PLC's children: the operator's ServiceAccount, not the test's admin.
    config_map = client.CoreV1Api(site.api).read_namespaced_config_map("counter-runtime", NAMESPACE)
    managers = {entry.manager for entry in config_map.metadata.managed_fields or []}
    assert managers and "kubectl" not in " ".join(managers), managers
