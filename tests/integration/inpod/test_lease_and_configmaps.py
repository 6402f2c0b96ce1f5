"""The in-pod helpers against the real API server: the ConfigMap watcher, the ConfigMap store, settings.
The Lease lock has its own module (test_lease_lock.py)."""

from __future__ import annotations

import pytest
from kubernetes import client

from shopfloor_inpod.configmap import ConfigMapStore, ConfigMapWatcher
from shopfloor_inpod.settings import PodSettings, SettingsError
from tests.support.waiting import async_wait_for

# A hang fails this test with a traceback instead of stalling the suite (the first test also starts the
# control plane).
pytestmark = pytest.mark.timeout(180)


async def test_watcher_delivers_the_configmap_and_each_change(kube_api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(kube_api)
    received: list[dict[str, str]] = []

    async def on_data(data: dict[str, str]) -> None:
        received.append(data)

    watcher = ConfigMapWatcher(kube_api, namespace, "mixer-1-runtime", on_data)
    watcher.start()
    try:
        # Created at once: whether the watch is up yet or not, the watcher's first list or its watch delivers it.
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
