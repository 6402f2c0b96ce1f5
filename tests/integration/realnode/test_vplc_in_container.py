"""A VirtualPLC in a real container on a real node: the pod the operator builds, run by a kubelet and containerd.

The site adds real-rt-1 (realnode.py) next to simulated nodes; the operator runs as in every site test. The PLC is
tank-1 of the production line, pinned to real-rt-1 under the real-time RuntimeClass, in a namespace that enforces
the `restricted` Pod Security level. Everything is observed from outside the pod: the API server, the plant's
tank-io device (which records who wrote what), and loopback forwards to the pod's ports (the pod's address exists
only inside the node's network namespace).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from pymodbus.client import ModbusTcpClient

from shopfloor_localsite.realnode import RealNode
from shopfloor_localsite.realnode_config import REALTIME_RUNTIME_HANDLER
from shopfloor_localsite.site.edgesite import EdgeSite
from tests.integration.realnode.conftest import site_with_a_real_node
from tests.support.waiting import wait_for

REPO = Path(__file__).resolve().parents[3]
NODE = "real-rt-1"
NAMESPACE = "cell-rt"
PLC = "tank-1"
HTTP_PORT = 8080
MODBUS_PORT = 5020

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def site() -> Iterator[EdgeSite]:
    with site_with_a_real_node() as edge:
        yield edge


def real_node(site: EdgeSite) -> RealNode:
    return site.plane.real_nodes[NODE]


def tank_on_the_real_node() -> dict[str, Any]:
    """The production line's tank-1, pinned to the real node under the real-time RuntimeClass (no OPC UA: its
    certificate Secret is not part of this test)."""
    manifest: dict[str, Any] = yaml.safe_load((REPO / "examples" / "production-line" / "tank-1.yaml").read_text())
    manifest["metadata"]["namespace"] = NAMESPACE
    manifest["spec"]["placement"] = {"realtime": "Required", "nodeName": NODE, "runtimeClassName": "shopfloor-realtime"}
    manifest["spec"]["io"]["opcua"] = {"enabled": False}
    manifest["spec"]["allowedClients"] = []
    return manifest


@pytest.fixture(scope="module")
def tank(site: EdgeSite) -> client.V1Pod:
    core = client.CoreV1Api(site.api)
    core.create_namespace(
        {
            "metadata": {
                "name": NAMESPACE,
                # The strictest level: a pod the operator builds that it rejects is a bug in the builders.
                "labels": {"pod-security.kubernetes.io/enforce": "restricted"},
            }
        }
    )
    site.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(tank_on_the_real_node()))
    custom = client.CustomObjectsApi(site.api)

    def running() -> bool:
        plc = custom.get_namespaced_custom_object("shopfloor.io", "v1alpha1", NAMESPACE, "virtualplcs", PLC)
        return plc.get("status", {}).get("phase") == "Running"

    wait_for(running, 300, 0.5, f"{PLC} Running on {NODE}")
    pods = core.list_namespaced_pod(NAMESPACE, label_selector=f"app.kubernetes.io/instance={PLC}").items
    assert len(pods) == 1
    return pods[0]


def scrape(site: EdgeSite, pod: client.V1Pod) -> str:
    import urllib.request

    port = real_node(site).forward(pod.status.pod_ip, HTTP_PORT)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def metric(text: str, name: str, labels: str = "") -> float | None:
    for line in text.splitlines():
        if line.startswith(f"{name}{labels} ") or (not labels and line.startswith(f"{name} ")):
            return float(line.split()[-1])
    return None


def test_the_pod_runs_in_a_real_container_guaranteed_under_restricted_pod_security(
    site: EdgeSite, tank: client.V1Pod
) -> None:
    assert tank.spec.node_name == NODE
    assert tank.status.qos_class == "Guaranteed"
    assert tank.spec.runtime_class_name == REALTIME_RUNTIME_HANDLER
    (status,) = tank.status.container_statuses
    assert status.container_id.startswith("containerd://") and status.ready
    assert status.image == "ghcr.io/shopfloor/shopfloor-vplc:0.1.0"
    security = tank.spec.containers[0].security_context
    assert security.read_only_root_filesystem and security.run_as_non_root
    assert tank.status.pod_ip.startswith("10.250.1.")


def test_scan_runs_sched_fifo_on_one_exclusive_cpu(site: EdgeSite, tank: client.V1Pod) -> None:
    text = scrape(site, tank)
    assert metric(text, "shopfloor_vplc_realtime_granted") == 1.0, text
    cpus = [line for line in text.splitlines() if line.startswith("shopfloor_vplc_scan_cpu{")]
    # Exactly one CPU, and not CPU 0 (the node's reservedSystemCPUs): the static CPU manager's exclusive core.
    assert cpus == ['shopfloor_vplc_scan_cpu{cpu="1"} 1.0'], cpus


def test_the_runtime_holds_its_lease_through_its_own_service_account(site: EdgeSite, tank: client.V1Pod) -> None:
    leases = client.CoordinationV1Api(site.api)

    def renew_time() -> Any:
        lease = leases.read_namespaced_lease(PLC, NAMESPACE)
        assert lease.spec.holder_identity == tank.metadata.name
        return lease.spec.renew_time

    first = renew_time()
    wait_for(lambda: renew_time() != first, 30, 0.2, "a Lease renewal by the runtime in the container")


def test_modbus_answers_from_the_container_and_the_field_io_runs(site: EdgeSite, tank: client.V1Pod) -> None:
    port = real_node(site).forward(tank.status.pod_ip, MODBUS_PORT)
    modbus = ModbusTcpClient("127.0.0.1", port=port, timeout=3)
    assert modbus.connect()
    try:
        response = modbus.read_discrete_inputs(0, count=4, device_id=1)
        assert not response.isError(), response
        # The PLC drives tank-io: its valve and pump outputs reach the device, written by this pod.
        writes = wait_for(lambda: site.device("tank-io").writes, 30, 0.2, "tank-io written by the PLC")
        assert writes
    finally:
        modbus.close()
    assert site.runner is not None
    writers = {site.runner.pod_addresses.get(w.peer_host) for w in site.device("tank-io").writes}
    assert writers == {f"{NAMESPACE}/{tank.metadata.name}"}


def test_deleting_the_pod_writes_the_safe_state_within_its_grace_period(site: EdgeSite, tank: client.V1Pod) -> None:
    device = site.device("tank-io")
    core = client.CoreV1Api(site.api)
    mark = len(device.writes)
    deleted = time.monotonic_ns()
    core.delete_namespaced_pod(tank.metadata.name, NAMESPACE)
    grace_ns = int(tank.spec.termination_grace_period_seconds * 1e9)

    def gone() -> bool:
        names = [p.metadata.name for p in core.list_namespaced_pod(NAMESPACE).items]
        return tank.metadata.name not in names

    wait_for(gone, tank.spec.termination_grace_period_seconds + 30, 0.2, "the old pod gone")
    assert site.runner is not None
    writer = f"{NAMESPACE}/{tank.metadata.name}"
    coils = [
        w
        for w in device.writes_since(mark)
        if w.table == "coils" and w.monotonic_ns >= deleted and site.runner.pod_addresses.get(w.peer_host) == writer
    ]
    assert coils, "no write from the terminating pod"
    final: dict[int, int] = {}
    for write in coils:
        for offset, value in enumerate(write.values):
            final[write.address + offset] = value
    # The safe state (Valve and Pump off) is the pod's last word to the device, inside the grace period.
    assert final.get(0) == 0 and final.get(1) == 0, coils
    assert coils[-1].monotonic_ns - deleted < grace_ns


def running_pod(site: EdgeSite, not_before: float) -> client.V1Pod | None:
    """tank-1's pod, Ready, and writing to tank-io since `not_before` (time.monotonic_ns)."""
    assert site.runner is not None
    core = client.CoreV1Api(site.api)
    for pod in core.list_namespaced_pod(NAMESPACE, label_selector=f"app.kubernetes.io/instance={PLC}").items:
        statuses = pod.status.container_statuses or []
        if pod.metadata.deletion_timestamp or not statuses or not statuses[0].ready:
            continue
        writer = f"{NAMESPACE}/{pod.metadata.name}"
        recent = [w for w in site.device("tank-io").writes if w.monotonic_ns >= not_before]
        if any(site.runner.pod_addresses.get(w.peer_host) == writer for w in recent):
            return pod
    return None


def scans(site: EdgeSite, pod: client.V1Pod) -> float:
    """The pod's scan counter (0 while its metrics cannot be read)."""
    try:
        return metric(scrape(site, pod), "shopfloor_vplc_scans_total") or 0.0
    except OSError:
        return 0.0


def retained_fills(site: EdgeSite) -> int:
    data = client.CoreV1Api(site.api).read_namespaced_config_map(f"{PLC}-retain", NAMESPACE).data or {}
    return int(json.loads(data.get("retain.json", "{}")).get("values", {}).get("Fills", 0))


def test_a_power_loss_of_the_real_node_stops_every_write_and_the_plc_resumes_when_power_returns(
    site: EdgeSite,
) -> None:
    """Pinned to real-rt-1, tank-1 has nowhere else to go: while the node is dark nothing drives the tank, and once
    power is back the kubelet and the operator bring it up again there, with its retained state."""
    assert site.faults is not None and site.runner is not None
    wait_for(lambda: running_pod(site, time.monotonic_ns() - 2_000_000_000), 120, 0.2, "tank-1 driving tank-io")
    fills = retained_fills(site)
    device = site.device("tank-io")
    core = client.CoreV1Api(site.api)
    site.faults.power_off(NODE)
    cut = time.monotonic_ns()
    try:

        def node_not_ready() -> bool:
            conditions = core.read_node(NODE).status.conditions or []
            return any(c.type == "Ready" and c.status != "True" for c in conditions)

        wait_for(node_not_ready, 60, 0.5, f"{NODE} NotReady after its power loss")
        # A dead node writes nothing: no write at all reached the device since the cut (plus the one in flight).
        assert not [w for w in device.writes if w.monotonic_ns > cut + 100_000_000]
    finally:
        site.faults.power_on(NODE)
    back = time.monotonic_ns()
    pod = wait_for(lambda: running_pod(site, back), 180, 0.5, "tank-1 driving tank-io again on the real node")
    assert isinstance(pod, client.V1Pod) and pod.spec.node_name == NODE
    assert retained_fills(site) >= fills
    writers = {site.runner.pod_addresses.get(w.peer_host) for w in device.writes if w.monotonic_ns > back}
    assert writers == {f"{NAMESPACE}/{pod.metadata.name}"}, writers


def test_a_real_node_cut_off_from_the_api_server_fences_its_plc_and_one_pod_drives_after_the_heal(
    site: EdgeSite,
) -> None:
    """The uplink of real-rt-1 is cut (API server and witness out of reach, tank-io still reachable on the plant
    floor): the runtime cannot renew its Lease, fences itself and stops driving the tank. The operator hands the
    expired Lease to a replacement, which can only run on this node: after the heal exactly one pod drives."""
    assert site.faults is not None and site.runner is not None
    pod = wait_for(lambda: running_pod(site, time.monotonic_ns() - 2_000_000_000), 120, 0.2, "tank-1 driving tank-io")
    assert isinstance(pod, client.V1Pod)
    device = site.device("tank-io")

    def fenced() -> float | None:
        try:
            return metric(scrape(site, pod), "shopfloor_vplc_fenced")
        except OSError:
            return None

    site.faults.partition(NODE)
    try:
        wait_for(lambda: fenced() == 1.0, 60, 0.2, "the runtime fenced behind the cut uplink")
        fenced_at = time.monotonic_ns()
        # Fenced means not driving: the device sees no write from it while its program keeps scanning (200 scans
        # at 10 ms), its inputs still polled.
        scanned = scans(site, pod)
        wait_for(lambda: scans(site, pod) >= scanned + 200, 30, 0.2, "200 scans while fenced")
        assert not [w for w in device.writes if w.monotonic_ns > fenced_at + 100_000_000]
    finally:
        site.faults.heal(NODE)
    healed = time.monotonic_ns()
    driving = wait_for(lambda: running_pod(site, healed), 180, 0.5, "one tank-1 pod driving tank-io after the heal")
    assert isinstance(driving, client.V1Pod) and driving.spec.node_name == NODE
    driven_from = scans(site, driving)
    wait_for(lambda: scans(site, driving) >= driven_from + 300, 30, 0.2, "300 scans of the pod driving after the heal")
    writers = {site.runner.pod_addresses.get(w.peer_host) for w in device.writes if w.monotonic_ns > healed}
    assert writers == {f"{NAMESPACE}/{driving.metadata.name}"}, writers
