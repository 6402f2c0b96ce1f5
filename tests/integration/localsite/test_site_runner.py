"""The site runner attaches a real process to each workload pod kwok runs, and detaches it when the pod or its
node goes away."""

from __future__ import annotations

import base64
import json
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from shopfloor_inpod.endpoints import resolve
from shopfloor_localsite.controlplane import LocalControlPlane
from shopfloor_localsite.site.runner import SiteRunner
from tests.support.site_pods import site_workload_pod
from tests.support.waiting import wait_for


@pytest.fixture
def runner(control_plane: LocalControlPlane | None, kube_api: client.ApiClient, tmp_path: Path) -> Iterator[SiteRunner]:
    if control_plane is None:
        pytest.skip("the site runner attaches processes to kwok pods of the local control plane")
    kubeconfig = yaml.safe_load(control_plane.kubeconfig.read_text())
    cluster = kubeconfig["clusters"][0]["cluster"]
    site = SiteRunner(
        api=kube_api, server=cluster["server"], ca_data=cluster["certificate-authority-data"], workdir=tmp_path
    )
    site.start()
    yield site
    site.stop()


def workload_pod(name: str, node: str) -> dict[str, Any]:
    return site_workload_pod(
        name,
        node,
        [sys.executable, "-m", "tests.support.echo_workload"],
        [
            {"name": "PLAIN", "value": "x"},
            {"name": "MY_POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "MY_NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "SECRET_VALUE", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
        ],
    )


def ask(site: SiteRunner, key: str) -> dict[str, Any] | None:
    workload = site.attached.get(key)
    if workload is None:
        return None
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{workload.host_ports['http']}/", timeout=2) as response:
            return dict(json.loads(response.read()))
    except OSError:
        return None


def test_a_workload_pod_gets_a_real_process_with_its_own_identity(
    runner: SiteRunner, kube_api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube_api)
    core.create_namespaced_secret(
        namespace, {"metadata": {"name": "creds"}, "data": {"password": base64.b64encode(b"s3cret").decode()}}
    )
    core.create_namespaced_pod(namespace, workload_pod("plc-a", "edge-1"))
    answer = wait_for(lambda: ask(runner, f"{namespace}/plc-a"), timeout=60, what="the workload answering")
    assert isinstance(answer, dict)
    env = answer["env"]
    assert (env["PLAIN"], env["MY_POD"], env["MY_NODE"], env["SECRET_VALUE"]) == ("x", "plc-a", "edge-1", "s3cret")
    assert answer["identity"] == f"system:serviceaccount:{namespace}:default"

    # A Service selecting the pod is reachable by its name through the site's endpoint map.
    core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": "plc-a", "labels": {"app.kubernetes.io/part-of": "shopfloor"}},
            "spec": {
                "selector": {"app.kubernetes.io/instance": "plc-a"},
                "ports": [{"name": "api", "port": 502, "targetPort": "http"}],
            },
        },
    )
    host_port = runner.attached[f"{namespace}/plc-a"].host_ports["http"]
    wait_for(
        lambda: resolve(f"plc-a.{namespace}.svc", 502, str(runner.endpoint_map_file)) == ("127.0.0.1", host_port),
        timeout=30,
        what="the Service in the endpoint map",
    )

    core.delete_namespaced_pod("plc-a", namespace, grace_period_seconds=0)
    wait_for(lambda: f"{namespace}/plc-a" not in runner.attached, timeout=30, what="the workload detached")


def test_a_node_that_goes_down_takes_its_workloads_with_it(
    runner: SiteRunner, kube_api: client.ApiClient, namespace: str, edge_site: Any
) -> None:
    core = client.CoreV1Api(kube_api)
    core.create_namespaced_secret(namespace, {"metadata": {"name": "creds"}, "stringData": {"password": "p"}})
    node = f"edge-site-{namespace[-6:]}"
    edge_site.add_node(node, realtime=False)
    try:
        core.create_namespaced_pod(namespace, workload_pod("plc-b", node))
        wait_for(lambda: ask(runner, f"{namespace}/plc-b"), timeout=60, what="the workload answering")
        process = runner.attached[f"{namespace}/plc-b"].process
        edge_site.set_node_ready(node, False)
        wait_for(lambda: not process.running(), timeout=30, what="the workload stopped with its node")
        assert f"{namespace}/plc-b" not in runner.attached
    finally:
        edge_site.remove_node(node)


def test_central_endpoints_are_reached_through_each_nodes_uplink(runner: SiteRunner) -> None:
    """Added after the start (the operator starts after the runner) or replaced: every node's map follows."""
    runner.uplink("edge-1")
    runner.set_central_endpoint("witness.central", 8092, ("127.0.0.1", 40001))
    port = runner.uplink("edge-1").port("witness.central:8092")
    node_map = str(runner.node_endpoint_map_file("edge-1"))
    assert resolve("witness.central", 8092, node_map) == ("127.0.0.1", port)
    assert resolve("witness.central", 8092, str(runner.endpoint_map_file)) == ("127.0.0.1", 40001)
    runner.set_central_endpoint("witness.central", 8092, ("127.0.0.1", 40002))
    assert runner.uplink("edge-1").port("witness.central:8092") == port, "the node's port stays"
    assert runner.uplink("edge-1").targets()["witness.central:8092"][0] == ("127.0.0.1", 40002)
    # A node whose uplink starts later gets the entry too.
    later = runner.uplink("edge-2").port("witness.central:8092")
    assert resolve("witness.central", 8092, str(runner.node_endpoint_map_file("edge-2"))) == ("127.0.0.1", later)
