"""The runtime in pod mode against the real API server: program from the runtime ConfigMap (watched), state on the
Lease, retained values in the retain ConfigMap."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
from kubernetes import client
from pymodbus.client import AsyncModbusTcpClient

from shopfloor_inpod.settings import PodSettings
from shopfloor_st import source_revision
from shopfloor_vplc.pod import RUNTIME_KEY, PodRuntime
from tests.integration.vplc.runtime_support import MODBUS_MAP, TANK
from tests.support.mosquitto import free_port
from tests.support.waiting import async_wait_for
from tests.unit.vplc.manifests import plc_manifest

# A hang fails this test with a traceback instead of stalling the suite (the first test also starts the
# control plane).
pytestmark = pytest.mark.timeout(180)


def lease_annotations(api: client.ApiClient, namespace: str) -> dict[str, str]:
    try:
        lease = client.CoordinationV1Api(api).read_namespaced_lease("mixer-1", namespace)
    except client.ApiException:
        return {}
    return dict(lease.metadata.annotations or {}) | {"holder": lease.spec.holder_identity or ""}


def runtime_configmap(source: str) -> dict[str, object]:
    manifest = plc_manifest(source, cycleTime="5ms", io={"modbus": {"port": 5020, "map": MODBUS_MAP}})
    return {"metadata": {"name": "mixer-1-runtime"}, "data": {RUNTIME_KEY: manifest}}


async def test_pod_runtime_follows_its_configmap_and_reports_on_its_lease(
    kube_api: client.ApiClient, kubeconfig: Path, namespace: str
) -> None:
    core = client.CoreV1Api(kube_api)
    # As the operator does: the Lease and the retain ConfigMap exist before the pod starts.
    client.CoordinationV1Api(kube_api).create_namespaced_lease(
        namespace, {"metadata": {"name": "mixer-1"}, "spec": {"leaseDurationSeconds": 30}}
    )
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "mixer-1-retain"}})
    core.create_namespaced_config_map(namespace, runtime_configmap(TANK))
    modbus_port = free_port()
    settings = PodSettings.from_env(
        {
            "SHOPFLOOR_NAME": "mixer-1",
            "SHOPFLOOR_NAMESPACE": namespace,
            "SHOPFLOOR_POD_NAME": "mixer-1-pod",
            "SHOPFLOOR_KUBECONFIG": str(kubeconfig),
            "SHOPFLOOR_BIND_HOST": "127.0.0.1",
            "SHOPFLOOR_PORT_MAP": f"5020={modbus_port},8080={free_port()}",
        }
    )
    pod = PodRuntime(settings, settings.api_client())
    stop = asyncio.Event()
    task = asyncio.create_task(pod.run(stop))
    try:

        async def annotated(key: str, value: str) -> dict[str, str] | None:
            found = await asyncio.to_thread(lease_annotations, kube_api, namespace)
            return found if found.get(key) == value else None

        first = source_revision(TANK)
        found = await async_wait_for(lambda: annotated("shopfloor.io/active-revision", first), timeout=20)
        assert isinstance(found, dict)
        assert found["shopfloor.io/state"] == "Running"
        assert found["holder"] == "mixer-1-pod"
        # Nothing asked (realtimePriority 0), so nothing refused.
        await async_wait_for(lambda: annotated("shopfloor.io/realtime", "granted"), timeout=20)

        modbus = AsyncModbusTcpClient("127.0.0.1", port=modbus_port, timeout=2, retries=0)
        assert await modbus.connect()
        assert not (await modbus.write_registers(4, [0, 77])).isError()  # Starts (RETAIN) := 77
        v2 = TANK.replace("Count := Count + 1;", "Count := Count + 3;")
        core.replace_namespaced_config_map("mixer-1-runtime", namespace, runtime_configmap(v2))
        await async_wait_for(lambda: annotated("shopfloor.io/active-revision", source_revision(v2)), timeout=20)
        registers = (await modbus.read_holding_registers(4, count=2)).registers
        assert registers == [0, 77]  # kept across the online change
        modbus.close()

        broken = TANK.replace("Count := Count + 1;", "Count := Count +;")
        core.replace_namespaced_config_map("mixer-1-runtime", namespace, runtime_configmap(broken))
        refused = await async_wait_for(lambda: annotated("shopfloor.io/refused-revision", source_revision(broken)))
        assert isinstance(refused, dict)
        assert (
            "expected" in refused["shopfloor.io/refused-reason"] or "syntax" in refused["shopfloor.io/refused-reason"]
        )
        assert refused["shopfloor.io/active-revision"] == source_revision(v2)
        assert pod.outcomes[-1].accepted is False
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 30)
    final = lease_annotations(kube_api, namespace)
    assert final["shopfloor.io/state"] == "Stopped"
    retain = core.read_namespaced_config_map("mixer-1-retain", namespace).data or {}
    assert '"Starts": 77' in retain["retain.json"]
