"""The operator against the real control plane: CRDs installed once, the operator run in-process per test."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from kubernetes import client

from shopfloor_operator.controller import Controller
from shopfloor_operator.main import run
from shopfloor_operator.settings import OperatorSettings
from tests.support.waiting import wait_for

from .played_runtime import PlayedRuntime

if TYPE_CHECKING:
    from .operator_process import OperatorProcess

CRDS = Path(__file__).resolve().parents[3] / "crds"
GROUP, VERSION = "shopfloor.io", "v1alpha1"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def crds(kube_api: client.ApiClient) -> None:
    extensions = client.ApiextensionsV1Api(kube_api)
    for path in sorted(CRDS.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            name = document["metadata"]["name"]
            try:
                extensions.create_custom_resource_definition(document)
            except client.ApiException as error:
                if error.status != 409:
                    raise
                current = extensions.read_custom_resource_definition(name)
                document["metadata"]["resourceVersion"] = current.metadata.resource_version
                extensions.replace_custom_resource_definition(name, document)

    def established() -> bool:
        ours = [c for c in extensions.list_custom_resource_definition().items if c.spec.group in (GROUP, "kopf.dev")]
        return all(
            any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or []) for crd in ours
        )

    wait_for(established, what="CRDs established")
    custom = client.CustomObjectsApi(kube_api)

    def servable() -> bool:
        # Right after a CRD is (re)written its storage reinitialises and lists answer 429 for a moment; an
        # operator starting then would back off its watch for many seconds.
        try:
            for plural in ("virtualplcs", "protocolbridges"):
                custom.list_cluster_custom_object(GROUP, VERSION, plural, limit=1)
        except client.ApiException as error:
            if error.status in (404, 429, 503):
                return False
            raise
        return True

    wait_for(servable, what="custom resources servable")


class RunningOperator:
    """The operator in a thread of this process, with its own event loop, until stopped."""

    def __init__(self, api: client.ApiClient, settings: OperatorSettings) -> None:
        self.settings = settings
        self.stop_flag = threading.Event()
        self.ready_flag = threading.Event()
        self.controller = Controller(api, settings)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._main, args=(api,), name="operator", daemon=True)

    def _main(self, api: client.ApiClient) -> None:
        try:
            asyncio.run(run(self.settings, api, self.stop_flag, self.ready_flag, self.controller))
        except BaseException as error:  # reported by the fixture
            self.error = error

    def start(self) -> RunningOperator:
        self.thread.start()
        wait_for(lambda: self.ready_flag.is_set() or self.error, what="operator ready")
        if self.error:
            raise self.error
        return self

    def stop(self) -> None:
        self.stop_flag.set()
        self.thread.join(timeout=30)


OperatorFactory = Callable[..., RunningOperator]


def delete_workloads(api: client.ApiClient, namespace: str) -> None:
    """While an operator still runs: kopf's finalizers need it, and a namespace deleted first keeps them."""
    custom = client.CustomObjectsApi(api)
    for plural in ("virtualplcs", "protocolbridges"):
        custom.delete_collection_namespaced_custom_object(GROUP, VERSION, namespace, plural)

    def gone() -> bool:
        return not any(
            custom.list_namespaced_custom_object(GROUP, VERSION, namespace, plural)["items"]
            for plural in ("virtualplcs", "protocolbridges")
        )

    wait_for(gone, what=f"VirtualPLCs and ProtocolBridges in {namespace} deleted")


@pytest.fixture
def start_operator(kube_api: client.ApiClient, crds: None, namespace: str) -> Iterator[OperatorFactory]:
    started: list[RunningOperator] = []

    def start(**overrides: Any) -> RunningOperator:
        settings = OperatorSettings(
            standalone=True,
            namespaces=[namespace],
            metrics_port=free_port(),
            liveness_endpoint=f"http://127.0.0.1:{free_port()}/healthz",
            witness_port=free_port(),
            **overrides,
        )
        operator = RunningOperator(kube_api, settings).start()
        started.append(operator)
        return operator

    yield start
    if started:
        delete_workloads(kube_api, namespace)
    for operator in started:
        operator.stop()


class Cluster:
    """Small helpers over the API for the tests (reads, waits, and playing the runtime's Lease)."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.api = api
        self.namespace = namespace
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.coordination = client.CoordinationV1Api(api)
        self.played: dict[str, PlayedRuntime] = {}

    def create(self, plural: str, manifest: dict[str, Any]) -> dict[str, Any]:
        return self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, plural, manifest)  # type: ignore[no-any-return]

    def get(self, plural: str, name: str) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, plural, name)  # type: ignore[no-any-return]

    def patch_spec(self, plural: str, name: str, spec: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, plural, name, {"spec": spec})

    def delete(self, plural: str, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, plural, name)

    def status(self, plural: str, name: str) -> dict[str, Any]:
        return self.get(plural, name).get("status") or {}

    def condition(self, plural: str, name: str, kind: str) -> dict[str, Any]:
        for condition in self.status(plural, name).get("conditions") or []:
            if condition["type"] == kind:
                return condition  # type: ignore[no-any-return]
        return {}

    def pods(self, instance: str) -> list[client.V1Pod]:
        selector = f"app.kubernetes.io/instance={instance}"
        return list(self.core.list_namespaced_pod(self.namespace, label_selector=selector).items)

    def live_pods(self, instance: str) -> list[client.V1Pod]:
        return [pod for pod in self.pods(instance) if pod.metadata.deletion_timestamp is None]

    def config_map(self, name: str) -> client.V1ConfigMap | None:
        try:
            return self.core.read_namespaced_config_map(name, self.namespace)
        except client.ApiException as error:
            if error.status == 404:
                return None
            raise

    def events(self, name: str) -> list[client.CoreV1Event]:
        selector = f"involvedObject.name={name}"
        return list(self.core.list_namespaced_event(self.namespace, field_selector=selector).items)

    def play_runtime(self, plc: str, pod: str, revision: str, state: str = "Running", fault: str = "") -> None:
        """Report through the PLC's Lease exactly as the runtime in the pod would: the runtime's own lock takes
        the Lease, renews it until the pod is deleted, then gives it up."""
        played = self.played.get(plc)
        if played is None or played.pod != pod:
            if played is not None:
                played.stop()
            played = self.played[plc] = PlayedRuntime(self.api, self.namespace, plc, pod)
        played.report(
            {
                "shopfloor.io/active-revision": revision,
                "shopfloor.io/state": state,
                "shopfloor.io/fault": fault,
            }
        )
        wait_for(lambda: played.lock.epoch > 0, timeout=15, what=f"{pod} holding the Lease of {plc}")


@pytest.fixture
def cluster(kube_api: client.ApiClient, namespace: str) -> Iterator[Cluster]:
    cluster = Cluster(kube_api, namespace)
    yield cluster
    for played in cluster.played.values():
        played.stop()


@pytest.fixture
def processes(kube_api: client.ApiClient, namespace: str) -> Iterator[list[OperatorProcess]]:
    """Operator processes a test starts; stopped after its workloads are deleted (kopf's finalizers need them)."""
    started: list[OperatorProcess] = []
    yield started
    if any(process.process.poll() is None for process in started):
        delete_workloads(kube_api, namespace)
    for process in started:
        process.stop()
