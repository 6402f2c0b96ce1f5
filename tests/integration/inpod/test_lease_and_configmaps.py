"""The in-pod reporters against the real API server: Lease renewals, the ConfigMap watcher, the ConfigMap store."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest
from kubernetes import client, config

from shopfloor_inpod.configmap import ConfigMapStore, ConfigMapWatcher
from shopfloor_inpod.lease import LeaseReporter
from shopfloor_inpod.settings import PodSettings, SettingsError
from tests.support.mosquitto import free_port
from tests.support.waiting import async_wait_for

# A hang fails this test with a traceback instead of stalling the suite (the first test also starts the
# control plane).
pytestmark = pytest.mark.timeout(180)


def read_lease(api: client.ApiClient, namespace: str, name: str) -> client.V1Lease | None:
    try:
        return client.CoordinationV1Api(api).read_namespaced_lease(name, namespace)
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise


async def test_lease_is_created_renewed_and_updated_at_once(kube_api: client.ApiClient, namespace: str) -> None:
    reporter = LeaseReporter(kube_api, namespace, "mixer-1", "mixer-1-abc", renew_interval_s=0.5)
    reporter.update({"shopfloor.io/state": "Loading", "shopfloor.io/active-revision": ""})
    task = asyncio.create_task(reporter.run())
    try:

        async def lease_with(state: str) -> client.V1Lease | None:
            lease = await asyncio.to_thread(read_lease, kube_api, namespace, "mixer-1")
            if lease is not None and (lease.metadata.annotations or {}).get("shopfloor.io/state") == state:
                return lease
            return None

        lease = await async_wait_for(lambda: lease_with("Loading"), timeout=10, what="Lease in state Loading")
        assert isinstance(lease, client.V1Lease)
        assert lease.spec.holder_identity == "mixer-1-abc"
        first_renewal = lease.spec.renew_time
        await async_wait_for(lambda: _renewed_after(kube_api, namespace, first_renewal), timeout=10, what="renewal")
        reporter.renew_interval_s = 3600  # from now on only a change can cause a renewal
        await asyncio.sleep(0)
        reporter.update({"shopfloor.io/state": "Faulted", "shopfloor.io/fault": "watchdog"})
        faulted = await async_wait_for(lambda: lease_with("Faulted"), timeout=5, what="Lease in state Faulted")
        assert isinstance(faulted, client.V1Lease)
        assert faulted.metadata.annotations["shopfloor.io/fault"] == "watchdog"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _renewed_after(api: client.ApiClient, namespace: str, previous: object) -> bool:
    lease = await asyncio.to_thread(read_lease, api, namespace, "mixer-1")
    return lease is not None and lease.spec.renew_time != previous


def unreachable_api(tmp_path: Path) -> client.ApiClient:
    """A kubeconfig whose server is a loopback port nobody listens on: the API is 'lost'."""
    path = tmp_path / "kubeconfig"
    path.write_text(
        f"""apiVersion: v1
kind: Config
clusters: [{{name: gone, cluster: {{server: "https://127.0.0.1:{free_port()}", insecure-skip-tls-verify: true}}}}]
users: [{{name: u, user: {{token: t}}}}]
contexts: [{{name: c, context: {{cluster: gone, user: u}}}}]
current-context: c
"""
    )
    return config.new_client_from_config(str(path))


def test_a_lost_api_is_reported_as_a_failed_renewal_not_an_error(tmp_path: Path) -> None:
    reporter = LeaseReporter(unreachable_api(tmp_path), "ns", "mixer-1", "pod", request_timeout_s=1)
    reporter.update({"shopfloor.io/state": "Running"})
    started = time.monotonic()
    assert reporter.renew_once() is False
    assert reporter.failures == 1
    assert time.monotonic() - started < 10


async def test_watcher_delivers_the_configmap_and_each_change(kube_api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(kube_api)
    received: list[dict[str, str]] = []

    async def on_data(data: dict[str, str]) -> None:
        received.append(data)

    watcher = ConfigMapWatcher(kube_api, namespace, "mixer-1-runtime", on_data)
    watcher.start()
    try:
        await asyncio.sleep(0.2)
        core.create_namespaced_config_map(namespace, {"metadata": {"name": "mixer-1-runtime"}, "data": {"k": "1"}})
        core.create_namespaced_config_map(namespace, {"metadata": {"name": "other"}, "data": {"k": "x"}})
        await async_wait_for(_true_when(lambda: {"k": "1"} in received), timeout=10, what="first version")
        core.patch_namespaced_config_map("mixer-1-runtime", namespace, {"data": {"k": "2"}})
        await async_wait_for(_true_when(lambda: {"k": "2"} in received), timeout=10, what="second version")
        assert {"k": "x"} not in received
    finally:
        watcher.stop()


def _true_when(predicate: object) -> object:
    async def check() -> bool:
        return bool(predicate())  # type: ignore[operator]

    return check


def test_configmap_store_creates_then_patches(kube_api: client.ApiClient, namespace: str) -> None:
    store = ConfigMapStore(kube_api, namespace, "mixer-1-retain", "retain.json")
    assert store.read() is None
    store.write('{"values": {"Count": 1}}')
    store.write('{"values": {"Count": 2}}')
    assert store.read() == '{"values": {"Count": 2}}'


def test_settings_name_the_missing_variable() -> None:
    with pytest.raises(SettingsError, match="SHOPFLOOR_NAME"):
        PodSettings.from_env({"SHOPFLOOR_NAMESPACE": "line-1"})
    settings = PodSettings.from_env({"SHOPFLOOR_NAME": "mixer-1", "SHOPFLOOR_NAMESPACE": "line-1", "HOSTNAME": "p"})
    assert (settings.name, settings.namespace, settings.pod_name) == ("mixer-1", "line-1", "p")
    assert settings.kubeconfig is None
