"""Integration fixtures: one real control plane per test session, a fresh namespace per test.

Set SHOPFLOOR_TEST_KUBECONFIG to run the same suite against an existing cluster (kind, k3s) instead; tests
that need to stop a node's heartbeat are skipped there.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from shopfloor_localsite.controlplane import LocalControlPlane
from shopfloor_localsite.nodes import SimulatedNode, default_nodes
from tests.support.waiting import wait_for


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.integration)


@dataclass
class EdgeSite:
    """The simulated edge nodes of the test cluster."""

    plane: LocalControlPlane | None
    nodes: list[str]

    def _require_local(self) -> LocalControlPlane:
        if self.plane is None:
            pytest.skip("needs the local control plane (SHOPFLOOR_TEST_KUBECONFIG points at an existing cluster)")
        return self.plane

    def add_node(self, name: str, realtime: bool, cpus: int = 4) -> None:
        index = 200 + len(self.nodes) % 50
        self._require_local().add_node(SimulatedNode(name=name, realtime=realtime, cpus=cpus, address_index=index))
        self.nodes.append(name)

    def remove_node(self, name: str) -> None:
        self._require_local().remove_node(name)
        if name in self.nodes:
            self.nodes.remove(name)

    def set_node_ready(self, name: str, ready: bool) -> None:
        self._require_local().set_node_heartbeat(name, ready)


@pytest.fixture(scope="session")
def control_plane() -> Iterator[LocalControlPlane | None]:
    if os.environ.get("SHOPFLOOR_TEST_KUBECONFIG"):
        yield None
        return
    plane = LocalControlPlane()
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def kubeconfig(control_plane: LocalControlPlane | None) -> Path:
    if control_plane is None:
        return Path(os.environ["SHOPFLOOR_TEST_KUBECONFIG"])
    return control_plane.kubeconfig


@pytest.fixture(scope="session")
def kube_api(kubeconfig: Path) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(str(kubeconfig))
    try:
        yield api
    finally:
        api.close()


@pytest.fixture(scope="session")
def edge_site(control_plane: LocalControlPlane | None) -> EdgeSite:
    names = [node.name for node in (control_plane.options.nodes if control_plane else default_nodes())]
    return EdgeSite(plane=control_plane, nodes=names)


@pytest.fixture
def namespace(kube_api: client.ApiClient) -> Iterator[str]:
    """A fresh namespace whose default ServiceAccount exists (pods can be created at once)."""
    core = client.CoreV1Api(kube_api)
    name = f"t-{uuid.uuid4().hex[:10]}"
    core.create_namespace({"metadata": {"name": name, "labels": {"shopfloor.io/test": "true"}}})

    def default_service_account() -> bool:
        try:
            core.read_namespaced_service_account("default", name)
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return True

    wait_for(default_service_account, what=f"ServiceAccount default in {name}")
    try:
        yield name
    finally:
        try:
            core.delete_namespace(name)
        except ApiException as error:
            if error.status != 404:
                raise
