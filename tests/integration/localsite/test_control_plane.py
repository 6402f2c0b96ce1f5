"""The local control plane is the real thing: scheduler, taints, garbage collection, CEL, optimistic concurrency."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from shopfloor_localsite.nodes import REALTIME_LABEL, REALTIME_TAINT_KEY
from tests.support.waiting import wait_for

REALTIME_NODES = {"edge-rt-1", "edge-rt-2"}


def pod(name: str, realtime: bool = False, select_realtime: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "main", "image": "shopfloor/vplc:test"}]}
    if realtime:
        spec["tolerations"] = [{"key": REALTIME_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}]
    if select_realtime:
        spec["nodeSelector"] = {REALTIME_LABEL: "true"}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def test_version_is_stamped(kube_api: client.ApiClient) -> None:
    info = client.VersionApi(kube_api).get_code()
    assert info.git_version.startswith("v1.")
    assert info.git_version != "v0.0.0-master"


def test_nodes_carry_edge_labels_and_realtime_taints(kube_api: client.ApiClient) -> None:
    nodes = {n.metadata.name: n for n in client.CoreV1Api(kube_api).list_node().items}
    assert set(nodes) >= REALTIME_NODES
    for name, node in nodes.items():
        assert "node-role.kubernetes.io/edge" in node.metadata.labels
        ready = [c for c in node.status.conditions if c.type == "Ready"]
        assert ready and ready[0].status == "True", name
        taint_keys = {t.key for t in node.spec.taints or []}
        if name in REALTIME_NODES:
            assert node.metadata.labels[REALTIME_LABEL] == "true"
            assert REALTIME_TAINT_KEY in taint_keys
            assert node.status.allocatable["cpu"] == "4"
        else:
            assert REALTIME_TAINT_KEY not in taint_keys


def test_realtime_pod_is_scheduled_onto_a_realtime_node_and_runs(kube_api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(kube_api)
    core.create_namespaced_pod(namespace, pod("rt", realtime=True, select_realtime=True))

    def running() -> Any:
        current = core.read_namespaced_pod("rt", namespace)
        return current if current.status.phase == "Running" else None

    current = wait_for(running, timeout=60, what="pod rt Running")
    assert current.spec.node_name in REALTIME_NODES
    assert current.status.pod_ip.startswith("127.")


def test_pod_without_toleration_never_lands_on_a_realtime_node(kube_api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(kube_api)
    for i in range(6):
        core.create_namespaced_pod(namespace, pod(f"plain-{i}"))
    # Selecting the real-time label without tolerating the taint leaves no feasible node at all.
    core.create_namespaced_pod(namespace, pod("wants-rt", select_realtime=True))

    def all_plain_scheduled() -> bool:
        pods = core.list_namespaced_pod(namespace, label_selector="").items
        return all(p.spec.node_name for p in pods if p.metadata.name.startswith("plain-"))

    wait_for(all_plain_scheduled, timeout=60, what="plain pods scheduled")
    pods = {p.metadata.name: p for p in core.list_namespaced_pod(namespace).items}
    assert not {p.spec.node_name for n, p in pods.items() if n.startswith("plain-")} & REALTIME_NODES

    def unschedulable() -> bool:
        current = core.read_namespaced_pod("wants-rt", namespace)
        conditions = current.status.conditions or []
        return any(c.type == "PodScheduled" and c.reason == "Unschedulable" for c in conditions)

    wait_for(unschedulable, timeout=60, what="wants-rt marked Unschedulable")
    current = core.read_namespaced_pod("wants-rt", namespace)
    assert current.spec.node_name is None
    message = next(c.message for c in current.status.conditions if c.type == "PodScheduled")
    assert "untolerated taint" in message


def test_deleting_an_owner_garbage_collects_its_dependents(kube_api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(kube_api)
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}, "data": {}})
    reference = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "dependent", "ownerReferences": [reference]}, "data": {}}
    )
    core.delete_namespaced_config_map("owner", namespace)

    def dependent_gone() -> bool:
        try:
            core.read_namespaced_config_map("dependent", namespace)
        except ApiException as error:
            return error.status == 404
        return False

    wait_for(dependent_gone, timeout=60, what="garbage collection of the dependent")


@pytest.fixture
def cel_crd(kube_api: client.ApiClient) -> Any:
    group = f"t{uuid.uuid4().hex[:8]}.shopfloor.io"
    extensions = client.ApiextensionsV1Api(kube_api)
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {"cycleTime": {"type": "string"}, "watchdog": {"type": "string"}},
                "x-kubernetes-validations": [
                    {
                        "rule": "duration(self.watchdog) >= duration(self.cycleTime)",
                        "message": "watchdog must be at least cycleTime",
                    }
                ],
            }
        },
    }
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": schema}}],
        },
    }
    extensions.create_custom_resource_definition(crd)

    def established() -> bool:
        current = extensions.read_custom_resource_definition(f"widgets.{group}")
        return any(c.type == "Established" and c.status == "True" for c in current.status.conditions or [])

    wait_for(established, what="CRD established")
    yield group
    extensions.delete_custom_resource_definition(f"widgets.{group}")


def test_cel_rule_rejects_a_bad_object_with_its_message(
    kube_api: client.ApiClient, namespace: str, cel_crd: str
) -> None:
    objects = client.CustomObjectsApi(kube_api)

    def widget(name: str, watchdog: str) -> dict[str, Any]:
        return {
            "apiVersion": f"{cel_crd}/v1",
            "kind": "Widget",
            "metadata": {"name": name},
            "spec": {"cycleTime": "10ms", "watchdog": watchdog},
        }

    def create(body: dict[str, Any]) -> Any:
        return objects.create_namespaced_custom_object(cel_crd, "v1", namespace, "widgets", body)

    # The CRD may take a moment to be served after Established.
    wait_for(lambda: _created(create, widget("good", "50ms")), what="a valid Widget accepted")
    with pytest.raises(ApiException) as rejected:
        create(widget("bad", "5ms"))
    assert rejected.value.status == 422
    assert "watchdog must be at least cycleTime" in json.loads(rejected.value.body)["message"]


def _created(create: Any, body: dict[str, Any]) -> bool:
    try:
        create(body)
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def test_update_with_a_stale_resource_version_conflicts(kube_api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(kube_api)
    created = core.create_namespaced_config_map(namespace, {"metadata": {"name": "cm"}, "data": {"a": "1"}})
    stale = created.metadata.resource_version
    core.replace_namespaced_config_map(
        "cm", namespace, {"metadata": {"name": "cm", "resourceVersion": stale}, "data": {"a": "2"}}
    )
    with pytest.raises(ApiException) as conflict:
        core.replace_namespaced_config_map(
            "cm", namespace, {"metadata": {"name": "cm", "resourceVersion": stale}, "data": {"a": "3"}}
        )
    assert conflict.value.status == 409
    assert core.read_namespaced_config_map("cm", namespace).data == {"a": "2"}


def test_a_node_whose_heartbeat_stops_goes_not_ready_and_recovers(edge_site: Any, kube_api: client.ApiClient) -> None:
    core = client.CoreV1Api(kube_api)
    name = f"edge-hb-{uuid.uuid4().hex[:6]}"
    edge_site.add_node(name, realtime=False)

    def ready_status() -> str:
        node = core.read_node(name)
        return next((c.status for c in node.status.conditions or [] if c.type == "Ready"), "missing")

    try:
        wait_for(lambda: ready_status() == "True", timeout=30, what=f"{name} Ready")
        edge_site.set_node_ready(name, False)
        wait_for(lambda: ready_status() == "Unknown", timeout=60, what=f"{name} NotReady after its heartbeat stopped")
        # The node lifecycle controller taints the node in its own pass, just after it marks the condition.
        wait_for(
            lambda: "node.kubernetes.io/unreachable" in {t.key for t in core.read_node(name).spec.taints or []},
            timeout=30,
            what=f"{name} tainted unreachable",
        )
        edge_site.set_node_ready(name, True)
        wait_for(lambda: ready_status() == "True", timeout=60, what=f"{name} Ready again")
    finally:
        edge_site.remove_node(name)
