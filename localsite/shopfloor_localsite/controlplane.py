"""Start and stop a real Kubernetes control plane on loopback.

etcd, kube-apiserver (TLS, RBAC, service-account signing), kube-controller-manager (garbage collector, node
lifecycle and the other built-in controllers), kube-scheduler and kwok (the kubelets of simulated edge nodes).
Every process dies with its parent and every temporary file is removed on stop.
"""

from __future__ import annotations

import base64
import os
import shutil
import ssl
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from shopfloor_localsite.build import Binaries, ensure_binaries
from shopfloor_localsite.kubeconfig import kubeconfig_document, write_kubeconfig_file
from shopfloor_localsite.nodes import KWOK_MANAGED_LABEL, SimulatedNode, default_nodes, node_manifest
from shopfloor_localsite.pki import ControlPlanePki, create_pki
from shopfloor_localsite.processes import ManagedProcess, free_port, process_alive, wait_until
from shopfloor_localsite.realnode import RealNode
from shopfloor_localsite.realnode_config import RealNodeSpec

WORKDIR_PREFIX = "shopfloor-cp-"
# Service addresses are never routed on this machine (no kube-proxy): the site's endpoint map serves simulated
# pods, and a real node's forwarder answers the `kubernetes` Service's address inside that node's network only.
SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"
# Simulated pod addresses live in loopback space; nothing listens on them, but a workload may bind its client
# sockets to its pod address, so a peer sees which pod is talking.
POD_CIDR = "127.128.0.1/16"


def node_pod_cidr(node: SimulatedNode) -> str:
    """Each node hands out pod addresses from its own /24 of POD_CIDR (kwok honours `spec.podCIDR`), so a PLC that
    moves to another node never gets the address its old pod had."""
    return f"127.128.{node.address_index}.0/24"


SITE_KWOK_STAGE = Path(__file__).with_name("kwok-pod-ready-again.yaml")


@dataclass
class ControlPlaneOptions:
    nodes: list[SimulatedNode] = field(default_factory=default_nodes)
    # How long the node lifecycle controller waits for a silent node before marking it NotReady/Unknown.
    # Kubernetes defaults to 50 s; an edge site that moves PLCs within 10 s needs to notice sooner.
    node_monitor_grace_seconds: int = 8
    node_lease_seconds: int = 4
    # Real nodes (a kubelet and containerd on this machine) next to the simulated ones; see realnode.py.
    real_nodes: list[RealNodeSpec] = field(default_factory=list)
    workdir: Path | None = None
    verbose: bool = False


def _log(message: str) -> None:
    print(f"[control-plane] {message}", file=sys.stderr, flush=True)


def write_kubeconfig(path: Path, server: str, pki: ControlPlanePki, user: str = "shopfloor-admin") -> None:
    def b64(file: Path) -> str:
        return base64.b64encode(file.read_bytes()).decode()

    credentials = {"client-certificate-data": b64(pki.admin_cert), "client-key-data": b64(pki.admin_key)}
    write_kubeconfig_file(path, kubeconfig_document(server, b64(pki.ca_cert), user, credentials))


OWNER_FILE = "owner.pid"


def remove_abandoned_workdirs() -> None:
    """Remove work directories of control planes whose owner was killed before it could clean up (SIGKILL).
    Their processes are already gone: they die with their parent."""
    for workdir in Path(tempfile.gettempdir()).glob(f"{WORKDIR_PREFIX}*"):
        try:
            owner = int((workdir / OWNER_FILE).read_text().strip())
        except (OSError, ValueError):
            continue
        if not process_alive(owner):
            shutil.rmtree(workdir, ignore_errors=True)


class LocalControlPlane:
    """A real control plane with simulated edge nodes. Use as a context manager or call start()/stop()."""

    def __init__(self, options: ControlPlaneOptions | None = None) -> None:
        self.options = options or ControlPlaneOptions()
        self._owns_workdir = self.options.workdir is None
        if self._owns_workdir:
            remove_abandoned_workdirs()
        self.workdir = self.options.workdir or Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX))
        (self.workdir / OWNER_FILE).write_text(f"{os.getpid()}\n")
        self.processes: list[ManagedProcess] = []
        self.kubeconfig = self.workdir / "kubeconfig"
        self.api_port = 0
        self.startup_seconds = 0.0
        self._kwok_stages: Path | None = None
        self._apiserver: ManagedProcess | None = None
        self.real_nodes: dict[str, RealNode] = {}

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    def _spawn(self, name: str, args: list[str]) -> ManagedProcess:
        proc = ManagedProcess(name=name, args=args, log_path=self.workdir / "logs" / f"{name}.log")
        proc.start()
        self.processes.append(proc)
        return proc

    def start(self) -> None:
        started = time.monotonic()
        try:
            self._start(ensure_binaries())
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        _log(f"ready in {self.startup_seconds:.1f}s: {self.server} (kubeconfig {self.kubeconfig})")

    def _start(self, binaries: Binaries) -> None:
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        pki = create_pki(self.workdir / "pki", [SERVICE_IP])
        etcd_port, etcd_peer_port, self.api_port = free_port(), free_port(), free_port()
        etcd = self._spawn(
            "etcd",
            [
                str(binaries.etcd),
                "--data-dir",
                str(self.workdir / "etcd"),
                "--listen-client-urls",
                f"http://127.0.0.1:{etcd_port}",
                "--advertise-client-urls",
                f"http://127.0.0.1:{etcd_port}",
                "--listen-peer-urls",
                f"http://127.0.0.1:{etcd_peer_port}",
                "--initial-advertise-peer-urls",
                f"http://127.0.0.1:{etcd_peer_port}",
                "--initial-cluster",
                f"default=http://127.0.0.1:{etcd_peer_port}",
                "--unsafe-no-fsync=true",
                "--quota-backend-bytes=8589934592",
                "--log-level=warn",
            ],
        )
        apiserver = self._spawn(
            "kube-apiserver",
            [
                str(binaries.kube_apiserver),
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.api_port}",
                f"--tls-cert-file={pki.serving_cert}",
                f"--tls-private-key-file={pki.serving_key}",
                f"--client-ca-file={pki.ca_cert}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki.service_account_pub}",
                f"--service-account-signing-key-file={pki.service_account_key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--authorization-mode=Node,RBAC",
                "--allow-privileged=true",
                "--profiling=false",
                "--endpoint-reconciler-type=none",
                # The API server never dials a node (logs, exec, port-forward): a real node's address exists only
                # inside its own network namespace, and no node reports a DNS name, so such calls fail at once.
                "--kubelet-preferred-address-types=InternalDNS",
                f"--v={2 if self.options.verbose else 0}",
            ],
        )
        self._apiserver = apiserver
        self._write_kubeconfigs(pki)
        wait_until(lambda: self._healthy("/readyz", pki), 90, "kube-apiserver /readyz", [etcd, apiserver])
        admin = str(self.kubeconfig)
        self._spawn(
            "kube-controller-manager",
            [
                str(binaries.kube_controller_manager),
                f"--kubeconfig={admin}",
                f"--authentication-kubeconfig={admin}",
                f"--authorization-kubeconfig={admin}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                f"--service-account-private-key-file={pki.service_account_key}",
                f"--root-ca-file={pki.ca_cert}",
                "--use-service-account-credentials=false",
                f"--node-monitor-grace-period={self.options.node_monitor_grace_seconds}s",
                "--node-monitor-period=1s",
                # Endpoints controllers off: they refuse the loopback pod addresses of simulated pods, and nothing
                # routes to pod addresses here (the site's endpoint map does that job).
                "--controllers=*,-bootstrapsigner,-tokencleaner,-nodeipam,-service-lb-controller,-cloud-node-lifecycle,"
                "-endpoints-controller,-endpointslice-controller,-endpointslice-mirroring-controller",
                "--concurrent-gc-syncs=5",
                "--v=0",
            ],
        )
        self._spawn(
            "kube-scheduler",
            [
                str(binaries.kube_scheduler),
                f"--kubeconfig={admin}",
                f"--authentication-kubeconfig={admin}",
                f"--authorization-kubeconfig={admin}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                "--v=0",
            ],
        )
        self._spawn(
            "kwok",
            [
                str(binaries.kwok),
                f"--kubeconfig={admin}",
                f"--config={self._kwok_config(binaries)}",
                f"--manage-nodes-with-label-selector={KWOK_MANAGED_LABEL}=true",
                f"--cidr={POD_CIDR}",
                "--node-ip=127.0.1.254",
                f"--node-lease-duration-seconds={self.options.node_lease_seconds}",
                f"--server-address=127.0.0.1:{free_port()}",
            ],
        )
        for node in self.options.nodes:
            self.add_node(node)
        wait_until(
            lambda: all(self.node_ready(node.name) for node in self.options.nodes),
            60,
            "simulated nodes Ready",
            self.processes,
        )
        if self.options.real_nodes:
            self._start_real_nodes(binaries)

    def _start_real_nodes(self, binaries: Binaries) -> None:
        for spec in self.options.real_nodes:
            self.add_real_node(spec, binaries)

    def add_real_node(self, spec: RealNodeSpec, binaries: Binaries | None = None) -> RealNode:
        """Start a real node's containerd, import the images (built once, cached), then join its kubelet; returns
        once the node is Ready. Raises RealNodeUnavailable, saying why, when this machine cannot run one."""
        from shopfloor_localsite.images import ensure_images, import_images  # the image build is real nodes' only

        node = RealNode(
            spec,
            self.workdir / spec.name,
            (binaries or ensure_binaries()).kubelet,
            self._pki,
            self.api_port,
            SERVICE_IP,
            SERVICE_CIDR,
            self.api_client(),
        )
        node.start()
        self.real_nodes[spec.name] = node
        import_images(ensure_images().all(), "ctr", str(node.paths.containerd_socket))
        node.join()
        return node

    def _kwok_config(self, binaries: Binaries) -> Path:
        path = self.workdir / "kwok.yaml"
        documents = [file.read_text() for file in sorted(binaries.kwok_stages.glob("*.yaml"))]
        documents.append(SITE_KWOK_STAGE.read_text())  # what a real kubelet does and kwok's stages do not
        path.write_text("\n---\n".join(documents))
        return path

    def _write_kubeconfigs(self, pki: ControlPlanePki) -> None:
        write_kubeconfig(self.kubeconfig, self.server, pki)
        self._pki = pki

    def _healthy(self, endpoint: str, pki: ControlPlanePki) -> bool:
        context = ssl.create_default_context(cafile=str(pki.ca_cert))
        context.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
        with urllib.request.urlopen(f"{self.server}{endpoint}", context=context, timeout=2) as response:
            return bool(response.status == 200)

    # -- faults ------------------------------------------------------------------------------------------------

    @property
    def api_server_running(self) -> bool:
        return self._apiserver is not None and self._apiserver.running()

    def stop_api_server(self, kill: bool = False) -> None:
        """Stop kube-apiserver for everyone (SIGTERM, or SIGKILL with kill=True); etcd, the controllers, the scheduler
        and kwok keep running and retry, as they would through a real API outage."""
        assert self._apiserver is not None, "control plane not started"
        if kill:
            self._apiserver.kill()
        else:
            self._apiserver.stop(timeout=30)
        _log("kube-apiserver stopped")

    def start_api_server(self, timeout: float = 90) -> None:
        """Start kube-apiserver again with the same flags, port and certificates; returns once /readyz answers."""
        assert self._apiserver is not None, "control plane not started"
        if not self._apiserver.running():
            started = time.monotonic()
            self._apiserver.start()
            wait_until(
                lambda: self._healthy("/readyz", self._pki), timeout, "kube-apiserver /readyz", [self._apiserver]
            )
            _log(f"kube-apiserver back in {time.monotonic() - started:.1f}s")

    # -- API helpers used by the site, the CLI and the test fixtures --------------------------------------------

    def api_client(self) -> client.ApiClient:
        return config.new_client_from_config(str(self.kubeconfig))

    @contextmanager
    def _core(self) -> Iterator[client.CoreV1Api]:
        api = self.api_client()
        try:
            yield client.CoreV1Api(api)
        finally:
            api.close()

    def add_node(self, node: SimulatedNode) -> None:
        """Register a simulated node (idempotent); kwok then keeps it Ready."""
        manifest = node_manifest(node)
        manifest["spec"].update({"podCIDR": node_pod_cidr(node), "podCIDRs": [node_pod_cidr(node)]})
        with self._core() as core:
            try:
                core.create_node(manifest)
            except ApiException as error:
                if error.status != 409:
                    raise

    def remove_node(self, name: str) -> None:
        with self._core() as core:
            try:
                core.delete_node(name)
            except ApiException as error:
                if error.status != 404:
                    raise

    def set_node_heartbeat(self, name: str, alive: bool) -> None:
        """Stop (or resume) kwok's heartbeat for one node: the node lifecycle controller then marks it
        NotReady after the grace period, as with a real node that lost power or network."""
        value: str | None = "true" if alive else None
        with self._core() as core:
            core.patch_node(name, {"metadata": {"labels": {KWOK_MANAGED_LABEL: value}}})

    def node_ready(self, name: str) -> bool:
        with self._core() as core:
            node: Any = core.read_node(name)
        conditions = node.status.conditions or []
        return any(c.type == "Ready" and c.status == "True" for c in conditions)

    def remove_real_node(self, name: str) -> None:
        """Stop a real node and delete its Node object (its pods go with it)."""
        node = self.real_nodes.pop(name, None)
        if node is not None:
            node.stop()
        self.remove_node(name)

    def stop(self) -> None:
        for node in self.real_nodes.values():
            node.stop()
        self.real_nodes.clear()
        for proc in reversed(self.processes):
            proc.stop()
        self.processes.clear()
        if self._owns_workdir and self.workdir.exists():
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LocalControlPlane:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
