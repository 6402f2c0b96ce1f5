"""The failures the site can cause, against the real control plane: a partitioned node keeps running but cannot
reach the central zone, a node that loses power takes its processes with it, the API server stops and comes back.

Each test uses a node of its own, so the faults never touch the nodes other tests schedule onto."""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import socketserver
import sys
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import urllib3
import yaml
from kubernetes import client

from shopfloor_localsite.controlplane import LocalControlPlane
from shopfloor_localsite.plant.device import RemoteIODevice
from shopfloor_localsite.plant.physics import Tank
from shopfloor_localsite.plant.plant import TANK_POINTS
from shopfloor_localsite.site.edgesite import SiteFaults
from shopfloor_localsite.site.runner import SiteRunner
from tests.support.site_pods import site_workload_pod
from tests.support.waiting import wait_for

WORKLOAD = Path(__file__).with_name("fault_workload.py")
WITNESS = ("witness.central", 8092)
FIELD_DEVICE = ("field-io.plant", 502)


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(4096):
            self.request.sendall(data)


@pytest.fixture
def central_peer() -> Iterator[int]:
    """A stand-in for a central service (the witness): echoes what it gets."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


@pytest.fixture
def field_device() -> Iterator[RemoteIODevice]:
    """A plant device on its own event loop, as on the site."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    device = RemoteIODevice("field-io", Tank(), TANK_POINTS)
    asyncio.run_coroutine_threadsafe(device.start(), loop).result(10)
    yield device
    asyncio.run_coroutine_threadsafe(device.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


@pytest.fixture
def node(edge_site: Any) -> Iterator[str]:
    name = f"edge-f-{uuid.uuid4().hex[:6]}"
    edge_site.add_node(name, realtime=False)
    yield name
    edge_site.remove_node(name)


@dataclass
class Site:
    runner: SiteRunner
    faults: SiteFaults
    core: client.CoreV1Api
    plane: LocalControlPlane


@pytest.fixture
def site(
    node: str,
    control_plane: LocalControlPlane | None,
    kube_api: client.ApiClient,
    tmp_path: Path,
    central_peer: int,
    field_device: RemoteIODevice,
) -> Iterator[Site]:
    if control_plane is None:
        pytest.skip("faults need the local control plane")
    cluster = yaml.safe_load(control_plane.kubeconfig.read_text())["clusters"][0]["cluster"]
    runner = SiteRunner(
        api=kube_api,
        server=cluster["server"],
        ca_data=cluster["certificate-authority-data"],
        workdir=tmp_path,
        static_endpoints={FIELD_DEVICE: (field_device.host, field_device.port)},
        central_endpoints={WITNESS: ("127.0.0.1", central_peer)},
    )
    runner.start()
    faults = SiteFaults(control_plane, runner)
    try:
        yield Site(runner, faults, client.CoreV1Api(kube_api), control_plane)
    finally:
        faults.restore()
        runner.stop()


def workload_pod(name: str, node: str) -> dict[str, Any]:
    return site_workload_pod(
        name,
        node,
        [sys.executable, str(WORKLOAD)],
        [{"name": "MY_POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
    )


def ask(runner: SiteRunner, key: str, path: str, timeout: float = 5) -> dict[str, Any] | None:
    workload = runner.attached.get(key)
    if workload is None:
        return None
    try:
        url = f"http://127.0.0.1:{workload.host_ports['http']}{path}"
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return dict(json.loads(response.read()))
    except OSError:
        return None


def ready_status(core: client.CoreV1Api, node: str) -> str:
    conditions = core.read_node(node).status.conditions or []
    return next((c.status for c in conditions if c.type == "Ready"), "missing")


def wait_passes(runner: SiteRunner, count: int = 3) -> None:
    """Let the runner make `count` full passes (so it has seen whatever just changed)."""
    target = runner.passes + count
    wait_for(lambda: runner.passes >= target, timeout=30, what=f"{count} site runner passes")


def token_claims(kubeconfig: Path) -> dict[str, Any]:
    token = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["token"]
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def test_a_partitioned_node_keeps_its_processes_and_catches_up_when_healed(
    site: Site, node: str, namespace: str, field_device: RemoteIODevice
) -> None:
    runner, core = site.runner, site.core
    for name in ("kept", "deleted"):
        core.create_namespaced_pod(namespace, workload_pod(name, node))
    kept, deleted = f"{namespace}/kept", f"{namespace}/deleted"
    states = {key: wait_for(lambda k=key: ask(runner, k, "/state"), timeout=60, what=key) for key in (kept, deleted)}
    processes = {key: runner.attached[key].process for key in (kept, deleted)}

    # Connected: the API server and the witness through the node's uplink, the field device directly.
    uplink = runner.uplink(node)
    api = ask(runner, kept, "/api")
    assert api is not None and api["ok"], api
    assert api["server"] == runner.node_api_server(node) == f"https://127.0.0.1:{uplink.port('kube-apiserver')}"
    central = ask(runner, kept, f"/central?name={WITNESS[0]}&port={WITNESS[1]}")
    assert central is not None and central == {"ok": True, "via": ["127.0.0.1", uplink.port(f"{WITNESS[0]}:8092")]}
    claims = token_claims(runner.workdir / namespace / "kept" / "kubeconfig")
    assert claims["kubernetes.io"]["pod"]["name"] == "kept", "the token is bound to its pod"

    site.faults.partition(node)
    assert (ask(runner, kept, "/api") or {}).get("ok") is False, "the API server is out of reach"
    assert (ask(runner, kept, f"/central?name={WITNESS[0]}&port={WITNESS[1]}") or {}).get("ok") is False
    mark = len(field_device.writes)
    assert (ask(runner, kept, f"/write?name={FIELD_DEVICE[0]}&port={FIELD_DEVICE[1]}") or {}).get("ok")
    write = field_device.writes_since(mark)[0]
    assert write.peer_host == states[kept]["pod_ip"], "the device sees the writer's pod address"
    assert (write.table, write.address, write.values) == ("coils", 0, (1,))

    wait_for(lambda: ready_status(core, node) == "Unknown", timeout=60, what=f"{node} NotReady")
    core.delete_namespaced_pod("deleted", namespace, grace_period_seconds=0)  # the operator force-deletes
    wait_passes(runner)
    for key in (kept, deleted):
        assert processes[key].running() and key in runner.attached, f"{key}: a partitioned kubelet stops nothing"
        assert (ask(runner, key, "/state") or {}).get("pid") == states[key]["pid"]

    site.faults.heal(node)
    wait_for(lambda: not processes[deleted].running(), timeout=30, what="the deleted pod's process stopped")
    assert processes[deleted].process is not None
    assert processes[deleted].process.returncode == -signal.SIGTERM, "stopped as a kubelet stops a deleted pod"
    wait_for(lambda: ready_status(core, node) == "True", timeout=60, what=f"{node} Ready again")
    wait_passes(runner)
    assert processes[kept].running() and (ask(runner, kept, "/state") or {}).get("pid") == states[kept]["pid"]
    assert (ask(runner, kept, "/api") or {}).get("ok"), "the API server is reachable again"


def test_a_node_that_loses_power_kills_its_processes_and_runs_them_again_on_power_on(
    site: Site, node: str, namespace: str
) -> None:
    runner, core = site.runner, site.core
    core.create_namespaced_pod(namespace, workload_pod("plc", node))
    key = f"{namespace}/plc"
    before = wait_for(lambda: ask(runner, key, "/state"), timeout=60, what="the workload answering")
    process = runner.attached[key].process

    site.faults.power_off(node)
    assert not process.running() and key not in runner.attached
    assert process.process is not None and process.process.returncode == -signal.SIGKILL, "no shutdown code runs"
    wait_for(lambda: ready_status(core, node) == "Unknown", timeout=60, what=f"{node} NotReady")
    wait_passes(runner)
    assert key not in runner.attached, "nothing runs on a node without power"

    site.faults.power_on(node)
    wait_for(lambda: ready_status(core, node) == "True", timeout=60, what=f"{node} Ready again")
    after = wait_for(lambda: ask(runner, key, "/state"), timeout=60, what="the workload running again")
    assert isinstance(after, dict) and isinstance(before, dict) and after["pid"] != before["pid"]


def test_the_api_server_stops_and_comes_back_with_its_data(site: Site, namespace: str) -> None:
    runner, core, plane = site.runner, site.core, site.plane
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "kept"}, "data": {"a": "1"}})
    site.faults.stop_api_server()
    assert not plane.api_server_running
    with pytest.raises(urllib3.exceptions.HTTPError):
        core.read_namespaced_config_map("kept", namespace, _request_timeout=2)
    wait_for(
        lambda: any("reconcile failed" in event.message for event in runner.events),
        timeout=30,
        what="the runner noticing the outage",
    )
    assert runner._thread is not None and runner._thread.is_alive(), "the site runner survives the outage"

    site.faults.start_api_server()
    assert plane.api_server_running
    assert core.read_namespaced_config_map("kept", namespace).data == {"a": "1"}, "etcd kept the data"
    wait_for(
        lambda: any("reconcile works again" in event.message for event in runner.events),
        timeout=30,
        what="the runner working again",
    )
    for node in plane.options.nodes:
        wait_for(lambda n=node.name: ready_status(core, n) == "True", timeout=60, what=f"{node.name} Ready")


def test_faults_restore_undoes_everything(site: Site, node: str) -> None:
    site.faults.partition(node)
    site.faults.power_off(node)
    assert site.faults.active
    site.faults.restore()
    assert not site.faults.active
    assert ready_status(site.core, node) == "True"
    assert node not in site.runner.powered_off and site.runner.uplink(node).connected
    wait_for(lambda: node not in site.runner.partitioned, timeout=30, what="the runner reconnecting the node")
