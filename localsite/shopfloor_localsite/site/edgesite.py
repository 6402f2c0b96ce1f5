"""The whole simulated edge site on this machine.

A real control plane with simulated edge nodes, the CRDs, the operator running under the chart's ServiceAccount
(so its least-privilege RBAC is exercised for real), a real Mosquitto broker, the plant's remote I/O devices, and
the site runner that attaches real runtimes and bridges to the pods the operator creates.
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
from shopfloor_localsite.plant.plant import Plant
from shopfloor_localsite.processes import ManagedProcess, free_port, wait_until
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


@dataclass
class SiteOptions:
    realtime_nodes: int = 2
    general_nodes: int = 2
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
            ControlPlaneOptions(nodes=default_nodes(self.options.realtime_nodes, self.options.general_nodes))
        )
        self.broker: Mosquitto | None = None
        self.plant: Plant | None = None
        self.operator: ManagedProcess | None = None
        self.operator_metrics_port = 0
        self.runner: SiteRunner | None = None
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
        )
        self.runner.start()
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
        rbac = [d for d in yaml.safe_load_all(rendered) if d and d["kind"] not in ("Deployment", "Service")]
        self.kubectl("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump_all(rbac))
        token = core.create_namespaced_service_account_token(
            OPERATOR_ACCOUNT, OPERATOR_NAMESPACE, {"spec": {"expirationSeconds": 86400}}
        ).status.token
        document = kubeconfig_document(
            cluster["server"], cluster["certificate-authority-data"], OPERATOR_ACCOUNT, {"token": token}
        )
        kubeconfig = write_kubeconfig_file(self.workdir / "operator.kubeconfig", document)
        self.operator_metrics_port = free_port()
        env = dict(os.environ)
        env.pop("KUBERNETES_SERVICE_HOST", None)
        env.update(
            {
                "KUBECONFIG": str(kubeconfig),
                "SHOPFLOOR_STANDALONE": "true",
                "SHOPFLOOR_OPERATOR_NAMESPACE": OPERATOR_NAMESPACE,
                "SHOPFLOOR_METRICS_PORT": str(self.operator_metrics_port),
                "SHOPFLOOR_LIVENESS_ENDPOINT": f"http://127.0.0.1:{free_port()}/healthz",
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

    # -- tools -------------------------------------------------------------------------------------------------

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

    def helm(self, *args: str) -> str:
        result = subprocess.run([str(ensure_binaries().helm), *args], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"helm {' '.join(args)} failed:\n{result.stderr}")
        return result.stdout

    def wait(self, condition: Callable[[], object], timeout: float, what: str) -> None:
        watched = [self.operator] if self.operator is not None else []
        wait_until(lambda: bool(condition()), timeout, what, watched, interval=0.2)

    def elapsed(self, since: float) -> str:
        return f"{time.monotonic() - since:.1f}s"
