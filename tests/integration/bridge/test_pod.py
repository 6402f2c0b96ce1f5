"""The bridge in pod mode against the real API server: manifest from its ConfigMap, state on its Lease, names
resolved through the site's endpoint map."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from shopfloor_bridge.pod import MANIFEST_KEY, run_pod
from tests.integration.bridge.devices import HOLDING, ModbusDevice
from tests.integration.bridge.manifests import bridge_manifest
from tests.integration.bridge.probe import Probe, eventually
from tests.integration.bridge.test_modbus_to_mqtt import last_values
from tests.support.mosquitto import Mosquitto, free_port


def lease_annotations(api: client.ApiClient, namespace: str) -> dict[str, str]:
    try:
        lease = client.CoordinationV1Api(api).read_namespaced_lease("line-1-bridge", namespace)
    except client.ApiException:
        return {}
    return dict(lease.metadata.annotations or {}) | {"holder": lease.spec.holder_identity or ""}


async def test_pod_mode_runs_its_configmap_and_reports_on_its_lease(
    kube_api: client.ApiClient,
    kubeconfig: Path,
    namespace: str,
    broker: Mosquitto,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    device = await ModbusDevice().start()
    await device.set(HOLDING, 0, [5])
    endpoint_map = tmp_path / "endpoints"
    endpoint_map.write_text(f"tank-1.line-1:502=127.0.0.1:{device.port}\nbroker.plant:1883=127.0.0.1:{broker.port}\n")
    document = bridge_manifest(
        [
            {
                "name": "tank",
                "modbus": {
                    "endpoint": {"host": "tank-1.line-1.svc", "port": 502},  # as the operator writes a plcRef
                    "pollInterval": "20ms",
                    "tags": [{"name": "Level", "table": "holdingRegisters", "address": 0, "type": "UINT"}],
                },
            }
        ],
        mqtt={"url": "mqtt://broker.plant:1883", "sparkplug": {"groupId": "plant-a", "edgeNodeId": "line-1"}},
    )
    document["metadata"]["namespace"] = namespace
    core = client.CoreV1Api(kube_api)
    client.CoordinationV1Api(kube_api).create_namespaced_lease(
        namespace, {"metadata": {"name": "line-1-bridge"}, "spec": {"leaseDurationSeconds": 30}}
    )
    core.create_namespaced_config_map(
        namespace,
        {"metadata": {"name": "line-1-bridge-runtime"}, "data": {MANIFEST_KEY: yaml.safe_dump(document)}},
    )
    for key, value in {
        "SHOPFLOOR_NAME": "line-1-bridge",
        "SHOPFLOOR_NAMESPACE": namespace,
        "SHOPFLOOR_POD_NAME": "line-1-bridge-pod",
        "SHOPFLOOR_KUBECONFIG": str(kubeconfig),
        "SHOPFLOOR_BIND_HOST": "127.0.0.1",
        "SHOPFLOOR_HTTP_PORT": str(free_port()),
        "SHOPFLOOR_ENDPOINT_MAP_FILE": str(endpoint_map),
        "SHOPFLOOR_BRIDGE_STATE_DIR": str(tmp_path / "state"),
    }.items():
        monkeypatch.setenv(key, value)
    probe = Probe(broker, ("spBv1.0/#",)).start()
    stop = asyncio.Event()
    task = asyncio.create_task(run_pod(stop))
    try:
        # Both the device and the broker were reached through the endpoint map.
        await eventually(lambda: last_values(probe).get("tank/Level") == 5, timeout=20, what="the device's value")
        found = await eventually(
            lambda: (a := lease_annotations(kube_api, namespace)).get("shopfloor.io/state") == "Running" and a,
            timeout=20,
        )
        assert found["holder"] == "line-1-bridge-pod"
        assert len(found["shopfloor.io/active-revision"]) == 64
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 30)
        probe.stop()
        await device.stop()
    assert lease_annotations(kube_api, namespace)["shopfloor.io/state"] == "Stopped"
