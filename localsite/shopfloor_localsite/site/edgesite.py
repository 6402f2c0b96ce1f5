"""The whole simulated edge site on this machine.

A real control plane with simulated edge nodes, the CRDs, the operator running under the chart's ServiceAccount
(so its least-privilege RBAC is exercised for real), a real Mosquitto broker, the plant's remote I/O devices, and
the site runner that attaches real runtimes and bridges to the pods the operator creates.

The site can also cause the failures a plant sees, one call each and each reversible (`SiteFaults`, also as
methods of `EdgeSite`): a node losing power, a node cut off from the central zone, the API server down.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from shopfloor_localsite.broker import Mosquitto
from shopfloor_localsite.build import ensure_binaries
from shopfloor_localsite.controlplane import ControlPlaneOptions, LocalControlPlane
from shopfloor_localsite.kubeconfig import kubeconfig_document, write_kubeconfig_file
from shopfloor_localsite.nodes import default_nodes
from shopfloor_localsite.plant.device import RemoteIODevice
from shopfloor_localsite.plant.plant import Plant
from shopfloor_localsite.processes import ManagedProcess, free_port, wait_until
from shopfloor_localsite.realnode import RealNode
from shopfloor_localsite.realnode_config import RealNodeSpec, real_node_specs
from shopfloor_localsite.site.runner import SiteRunner

REPO = Path(__file__).resolve().parents[3]
CRDS = REPO / "crds"
CHART = REPO / "charts" / "shopfloor"
OPERATOR_NAMESPACE = "shopfloor-system"
OPERATOR_ACCOUNT = "shopfloor-operator"
# Names the example manifests use for things outside the cluster, answered by the site's endpoint map.
BROKER_NAME = ("broker.plant", 1883)
PLANT_NAMESPACE = "line-1"
PLANT_PORT = 502
# The operator's witness, as pods name it: it answers a runtime that cannot renew its Lease whether the API server is
# unreachable for the operator too. Central: each node reaches it through its uplink.
WITNESS_NAME = ("shopfloor-operator.shopfloor-system", 8092)
WITNESS_PORT_ENV = "SHOPFLOOR_WITNESS_PORT"
WITNESS_URL_ENV = "SHOPFLOOR_WITNESS_URL"
WITNESS_URL = f"http://{WITNESS_NAME[0]}:{WITNESS_NAME[1]}/witness"


class SiteFaults:
    """The failures a plant sees, one call each, each reversible; `restore()` undoes all of them (for test teardown).

    A node's heartbeat (kwok renewing its node lease) runs while the node has power and its uplink works. Node
    faults change it through the API, so one asked for while the API server is down takes effect in the control
    plane when the API server is back (the node's processes and uplink change at once)."""

    def __init__(
        self, plane: LocalControlPlane, runner: SiteRunner, on_event: Callable[[str], None] | None = None
    ) -> None:
        self.plane = plane
        self.runner = runner
        self.on_event = on_event
        self.powered_off: set[str] = set()
        self.partitioned: set[str] = set()
        self.api_server_stopped = False
        self._pending_heartbeats: dict[str, bool] = {}
        self._lock = threading.RLock()

    def _say(self, message: str) -> None:
        if self.on_event is not None:
            self.on_event(f"fault: {message}")

    def _heartbeat(self, node: str) -> None:
        if node in self.plane.real_nodes:
            return  # a real kubelet heartbeats by itself, while it runs and its uplink works
        alive = node not in self.powered_off and node not in self.partitioned
        if self.api_server_stopped:
            self._pending_heartbeats[node] = alive
            return
        self.plane.set_node_heartbeat(node, alive)

    # -- power -------------------------------------------------------------------------------------------------

    def power_off(self, node: str) -> None:
        """The node loses power: its processes are SIGKILLed (no shutdown code runs) and its heartbeat stops."""
        with self._lock:
            self.powered_off.add(node)
            self.runner.power_off(node)
            if node in self.plane.real_nodes:
                self.plane.real_nodes[node].power_off()
            self._heartbeat(node)
        self._say(f"{node} powered off")

    def power_on(self, node: str) -> None:
        """Power is back: the heartbeat resumes (unless the node is also partitioned) and its pods run again."""
        with self._lock:
            self.powered_off.discard(node)
            self.runner.power_on(node)
            real = self.plane.real_nodes.get(node)
            if real is not None and not real.powered:
                real.power_on()
            self._heartbeat(node)
        self._say(f"{node} powered on")

    # -- the node's uplink ---------------------------------------------------------------------------------------

    def partition(self, node: str) -> None:
        """Cut the node off from the central zone: its uplink is cut (the API server and the witness are out of
        reach, connections hang), its heartbeat stops, and its processes keep running exactly as they are. Its field
        devices and the broker stay reachable."""
        with self._lock:
            self.partitioned.add(node)
            self.runner.partition(node)
            self._heartbeat(node)
        self._say(f"{node} partitioned")

    def heal(self, node: str, close_after: float = 0.0) -> None:
        """The uplink works again: held bytes are delivered (late, in order), the heartbeat resumes, and the node's
        pods are reconciled again (a pod deleted meanwhile gets its SIGTERM now). `close_after` delays the closes
        that happened during the cut (see Uplink.heal): with it, a request whose client gave up is usually still
        applied by the API server."""
        with self._lock:
            self.partitioned.discard(node)
            self.runner.heal(node, close_after)
            self._heartbeat(node)
        self._say(f"{node} healed")

    # -- the API server ------------------------------------------------------------------------------------------

    def stop_api_server(self, kill: bool = False) -> None:
        """kube-apiserver down for everyone; etcd, the controllers, the scheduler, kwok and the site keep running."""
        with self._lock:
            self.api_server_stopped = True
            self.plane.stop_api_server(kill=kill)
        self._say("kube-apiserver stopped")

    def start_api_server(self) -> None:
        """kube-apiserver back with the same flags, port and certificates; returns once /readyz answers."""
        with self._lock:
            self.plane.start_api_server()
            self.api_server_stopped = False
            pending, self._pending_heartbeats = self._pending_heartbeats, {}
            for node, alive in pending.items():
                self.plane.set_node_heartbeat(node, alive)
        self._say("kube-apiserver started")

    # -- all of it -----------------------------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        return bool(self.powered_off or self.partitioned or self.api_server_stopped)

    def restore(self, timeout: float = 90) -> None:
        """Undo every fault (API server first, then uplinks and power) and wait until the nodes touched are Ready."""
        with self._lock:
            touched = self.powered_off | self.partitioned
            if self.api_server_stopped:
                self.start_api_server()
            for node in sorted(self.partitioned):
                self.heal(node)
            for node in sorted(self.powered_off):
                self.power_on(node)
        wait_until(lambda: all(self._ready_or_gone(node) for node in touched), timeout, "nodes Ready after faults")

    def _ready_or_gone(self, node: str) -> bool:
        try:
            return self.plane.node_ready(node)
        except client.exceptions.ApiException as error:
            if error.status == 404:
                return True
            raise


@dataclass
class SiteOptions:
    realtime_nodes: int = 2
    general_nodes: int = 2
    # Real nodes (real-rt-1..N: a kubelet and containerd, pods in real containers; needs root, see realnode.py).
    real_nodes: int = 0
    broker: bool = True
    plant: bool = True
    operator: bool = True
    operator_env: dict[str, str] = field(default_factory=dict)
    on_event: Callable[[str], None] | None = None


class EdgeSite:
    def __init__(self, options: SiteOptions | None = None) -> None:
        self.options = options or SiteOptions()
        self.workdir = Path(tempfile.mkdtemp(prefix="shopfloor-site-"))
        self.plane = LocalControlPlane(
            ControlPlaneOptions(
                nodes=default_nodes(self.options.realtime_nodes, self.options.general_nodes),
                real_nodes=real_node_specs(self.options.real_nodes),
            )
        )
        self.broker: Mosquitto | None = None
        self.plant: Plant | None = None
        self.operator: ManagedProcess | None = None
        self.operator_metrics_port = 0
        self.runner: SiteRunner | None = None
        self.faults: SiteFaults | None = None
        self.witness_port = 0
        self._api: client.ApiClient | None = None
        self._plant_loop: asyncio.AbstractEventLoop | None = None
        self._plant_thread: threading.Thread | None = None

    def _say(self, message: str) -> None:
        if self.options.on_event is not None:
            self.options.on_event(message)

    @property
    def api(self) -> client.ApiClient:
        assert self._api is not None, "site not started"
        return self._api

    @property
    def kubeconfig(self) -> Path:
        return self.plane.kubeconfig

    # -- start and stop ----------------------------------------------------------------------------------------

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        self.plane.start()
        self._api = self.plane.api_client()
        self._say(f"control plane ready in {self.plane.startup_seconds:.1f}s")
        self.kubectl("apply", "--server-side", "-f", str(CRDS))
        self._wait_crds_established()
        static: dict[tuple[str, int], tuple[str, int]] = {}
        if self.options.broker:
            self.broker = Mosquitto(self.workdir / "broker")
            self.broker.start()
            static[BROKER_NAME] = ("127.0.0.1", self.broker.port)
            self._say(f"MQTT broker (Mosquitto) on 127.0.0.1:{self.broker.port}")
        if self.options.plant:
            self.plant = Plant()
            self._start_plant()
            for name, device in self.plant.devices.items():
                static[(f"{name}.{PLANT_NAMESPACE}", PLANT_PORT)] = (device.host, device.port)
                self._say(f"plant device {name} (Modbus TCP) on {device.endpoint}")
        cluster = yaml.safe_load(self.kubeconfig.read_text())["clusters"][0]["cluster"]
        self.runner = SiteRunner(
            api=self.api,
            server=cluster["server"],
            ca_data=cluster["certificate-authority-data"],
            workdir=self.workdir / "pods",
            static_endpoints=static,
            on_event=self.options.on_event,
            real_nodes=dict(self.plane.real_nodes),
        )
        self.runner.start()
        self.faults = SiteFaults(self.plane, self.runner, on_event=self.options.on_event)
        if self.options.operator:
            self._start_operator(cluster)

    def _wait_crds_established(self) -> None:
        extensions = client.ApiextensionsV1Api(self.api)

        def established() -> bool:
            crds = [c for c in extensions.list_custom_resource_definition().items if c.spec.group == "shopfloor.io"]
            return bool(crds) and all(
                any(cond.type == "Established" and cond.status == "True" for cond in c.status.conditions or [])
                for c in crds
            )

        wait_until(established, 30, "shopfloor CRDs established")

    def _start_plant(self) -> None:
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                assert self.plant is not None
                loop.run_until_complete(self.plant.start())
            except BaseException as error:
                failure.append(error)
                ready.set()
                return
            ready.set()
            loop.run_forever()

        self._plant_loop = loop
        self._plant_thread = threading.Thread(target=run, name="plant", daemon=True)
        self._plant_thread.start()
        ready.wait(30)
        if failure:
            raise failure[0]

    def plant_call(self, coroutine: Any, timeout: float = 10) -> Any:
        """Run a coroutine on the plant's event loop (e.g. to stop or restart a device)."""
        assert self._plant_loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._plant_loop).result(timeout)

    def _start_operator(self, cluster: dict[str, Any]) -> None:
        """Install the chart's RBAC and run the operator with its ServiceAccount's token, not as admin."""
        core = client.CoreV1Api(self.api)
        try:
            core.create_namespace({"metadata": {"name": OPERATOR_NAMESPACE}})
        except client.exceptions.ApiException as error:
            if error.status != 409:
                raise
        rendered = self.helm("template", "shopfloor", str(CHART), "--namespace", OPERATOR_NAMESPACE)
        # The CRDs came from crds/ above (the chart's copies, crds.install, are the same files).
        skip = ("Deployment", "Service", "CustomResourceDefinition")
        rbac = [d for d in yaml.safe_load_all(rendered) if d and d["kind"] not in skip]
        self.kubectl("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump_all(rbac))
        token = core.create_namespaced_service_account_token(
            OPERATOR_ACCOUNT, OPERATOR_NAMESPACE, {"spec": {"expirationSeconds": 86400}}
        ).status.token
        document = kubeconfig_document(
            cluster["server"], cluster["certificate-authority-data"], OPERATOR_ACCOUNT, {"token": token}
        )
        kubeconfig = write_kubeconfig_file(self.workdir / "operator.kubeconfig", document)
        self.operator_metrics_port = free_port()
        self.witness_port = int(self.options.operator_env.get(WITNESS_PORT_ENV) or free_port())
        assert self.runner is not None
        self.runner.set_central_endpoint(*WITNESS_NAME, ("127.0.0.1", self.witness_port))
        env = dict(os.environ)
        env.pop("KUBERNETES_SERVICE_HOST", None)
        env.update(
            {
                "KUBECONFIG": str(kubeconfig),
                "SHOPFLOOR_STANDALONE": "true",
                "SHOPFLOOR_OPERATOR_NAMESPACE": OPERATOR_NAMESPACE,
                "SHOPFLOOR_METRICS_PORT": str(self.operator_metrics_port),
                "SHOPFLOOR_LIVENESS_ENDPOINT": f"http://127.0.0.1:{free_port()}/healthz",
                WITNESS_PORT_ENV: str(self.witness_port),
                WITNESS_URL_ENV: WITNESS_URL,
                "PYTHONUNBUFFERED": "1",
                **self.options.operator_env,
            }
        )
        self.operator = ManagedProcess(
            name="shopfloor-operator",
            args=[str(Path(sys.executable).parent / "shopfloor-operator")],
            log_path=self.workdir / "operator.log",
            env=env,
        )
        self.operator.start()
        self._say(f"operator running as {OPERATOR_NAMESPACE}/{OPERATOR_ACCOUNT} (log {self.operator.log_path})")

    def stop(self) -> None:
        if self.runner is not None:
            self.runner.stop()
        if self.operator is not None:
            self.operator.stop()
        if self._plant_loop is not None and self.plant is not None:
            try:
                self.plant_call(self.plant.stop())
            finally:
                self._plant_loop.call_soon_threadsafe(self._plant_loop.stop)
        if self._plant_thread is not None:
            self._plant_thread.join(timeout=10)
        if self.broker is not None:
            self.broker.stop()
        if self._api is not None:
            self._api.close()
        self.plane.stop()
        subprocess.run(["rm", "-rf", str(self.workdir)], check=False)

    def __enter__(self) -> EdgeSite:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- faults (see SiteFaults) ---------------------------------------------------------------------------------

    def _faults(self) -> SiteFaults:
        assert self.faults is not None, "site not started"
        return self.faults

    def power_off(self, node: str) -> None:
        self._faults().power_off(node)

    def power_on(self, node: str) -> None:
        self._faults().power_on(node)

    def partition(self, node: str) -> None:
        self._faults().partition(node)

    def heal(self, node: str, close_after: float = 0.0) -> None:
        self._faults().heal(node, close_after)

    def stop_api_server(self, kill: bool = False) -> None:
        self._faults().stop_api_server(kill=kill)

    def start_api_server(self) -> None:
        self._faults().start_api_server()

    def restore(self, timeout: float = 90) -> None:
        """Undo every fault (see SiteFaults.restore)."""
        self._faults().restore(timeout)

    def device(self, name: str) -> RemoteIODevice:
        """A plant device, e.g. `site.device("tank-io").writes`."""
        assert self.plant is not None, "site started without the plant"
        return self.plant.devices[name]

    # -- tools -------------------------------------------------------------------------------------------------

    def add_real_node(self, spec: RealNodeSpec) -> RealNode:
        """Add a real node (realnode.py) to the running site; raises RealNodeUnavailable when this machine cannot."""
        node = self.plane.add_real_node(spec)
        assert self.runner is not None
        self.runner.add_real_node(spec.name, node)
        return node

    def remove_real_node(self, name: str) -> None:
        """Take a real node out of the running site: its processes stop, its Node object goes."""
        assert self.runner is not None
        self.runner.remove_real_node(name)
        self.plane.remove_real_node(name)

    def kubectl(self, *args: str, stdin: str = "", check: bool = True) -> str:
        binary = ensure_binaries().kubectl
        result = subprocess.run(
            [str(binary), "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        return result.stdout + result.stderr if not check else result.stdout

    def helm(self, *args: str, stdin: str = "") -> str:
        command = [str(ensure_binaries().helm), "--kubeconfig", str(self.kubeconfig), *args]
        result = subprocess.run(command, input=stdin, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"helm {' '.join(args)} failed:\n{result.stderr}")
        return result.stdout

    def wait(self, condition: Callable[[], object], timeout: float, what: str) -> None:
        watched = [self.operator] if self.operator is not None else []
        wait_until(lambda: bool(condition()), timeout, what, watched, interval=0.2)

    def elapsed(self, since: float) -> str:
        return f"{time.monotonic() - since:.1f}s"
