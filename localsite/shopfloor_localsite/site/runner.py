"""Attach real workload processes to the pods kwok runs on simulated nodes.

Level-based: every pass lists the workload pods and nodes, works out which pods would have a running container
(bound, Running, not terminating, on a node whose simulated kubelet is alive) and starts or stops processes to
match. Stops come before starts in a pass, so when the operator moves a PLC the old runtime is gone before the
new one starts. A process that exits on its own is restarted with back-off, as a kubelet would.

Each node reaches the central zone (the API server, the operator's witness) only through its own uplink
(site/uplink.py): a pod's kubeconfig and its endpoint map point there. Three ways a workload stops running:

- its pod goes away on a healthy node: SIGTERM, time to write its safe state (what a kubelet does);
- its node loses power (`power_off`, or a heartbeat that stops without the runner being told why): SIGKILL;
- its node is partitioned (`partition`): nothing. A kubelet that cannot see the API neither starts nor stops pods;
  it only restarts a container that crashes. When the node is back (`heal`, and the runner sees its heartbeat
  again) it catches up: a pod deleted meanwhile gets its SIGTERM then.

Real nodes (realnode.py) run their pods in containers themselves; the runner only wires them into the site: their
endpoint map (their kubelet's and pods' way to the API server goes through their uplink, so `partition` cuts a real
node too), and a loopback forward to each Ready pod's address, so Services lead to it from everywhere else.
"""

from __future__ import annotations

import base64
import os
import shutil
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from shopfloor_inpod.endpoints import ENDPOINT_MAP_ENV, format_endpoint_map
from shopfloor_localsite.kubeconfig import kubeconfig_document, write_kubeconfig_file
from shopfloor_localsite.node_services import API_NAME as REAL_NODE_API_NAME
from shopfloor_localsite.node_services import loopback_alias
from shopfloor_localsite.nodes import KWOK_MANAGED_LABEL
from shopfloor_localsite.processes import ManagedProcess, free_port
from shopfloor_localsite.site.launch import (
    BIND_HOST_ENV,
    FS_ROOT_ENV,
    KUBECONFIG_ENV,
    PART_OF_LABEL,
    PART_OF_VALUE,
    PORT_MAP_ENV,
    LaunchError,
    PodLaunch,
    is_site_workload,
    plan_launch,
    port_map_value,
)
from shopfloor_localsite.site.uplink import Uplink


class RealNodeLink(Protocol):
    """What the runner needs of a real node (realnode.RealNode)."""

    @property
    def endpoint_map(self) -> Path: ...

    def forward(self, target_host: str, target_port: int) -> int:
        """A loopback port leading to an address inside the node's network (the same one for the same target)."""
        ...


TOKEN_SECONDS = 3600
MAX_BACKOFF_SECONDS = 10.0
API_REQUEST_TIMEOUT = 10
API_SERVER_TARGET = "kube-apiserver"


@dataclass
class AttachedWorkload:
    launch: PodLaunch
    process: ManagedProcess
    host_ports: dict[str, int]
    started_at: float
    restarts: int = 0
    next_restart_at: float = 0.0

    @property
    def key(self) -> str:
        return f"{self.launch.namespace}/{self.launch.pod_name}"


@dataclass
class SiteEvent:
    at: float
    message: str


def _selects(service: Any, namespace: str, labels: dict[str, str]) -> bool:
    """Whether the Service selects a pod with these labels in `namespace` (one without a selector selects none)."""
    selector = service.spec.selector or {}
    if namespace != service.metadata.namespace or not selector:
        return False
    return all(labels.get(k) == v for k, v in selector.items())


def _central_target_name(name: str, port: int) -> str:
    return f"{name}:{port}"


@dataclass
class SiteRunner:
    """Runs until stop(); call `reconcile_once()` directly for a single pass."""

    api: client.ApiClient
    server: str
    ca_data: str
    workdir: Path
    interval: float = 0.3
    on_event: Callable[[str], None] | None = None
    # Names the site answers for besides Services, e.g. the plant's devices and the broker: (name, port) -> address.
    # Reached directly from every node (they are on the plant floor, not behind the uplink).
    static_endpoints: dict[tuple[str, int], tuple[str, int]] = field(default_factory=dict)
    # Names in the central zone, e.g. the operator's witness: (name, port) -> real address. Each node reaches them
    # through its uplink; see set_central_endpoint() to add one later.
    central_endpoints: dict[tuple[str, int], tuple[str, int]] = field(default_factory=dict)
    attached: dict[str, AttachedWorkload] = field(default_factory=dict)
    events: list[SiteEvent] = field(default_factory=list)
    uplinks: dict[str, Uplink] = field(default_factory=dict)
    # Nodes whose uplink is cut; the runner leaves their processes running (restarting only a crashed one).
    partitioned: set[str] = field(default_factory=set)
    # Nodes without power; they run nothing.
    powered_off: set[str] = field(default_factory=set)
    _healing: set[str] = field(default_factory=set)
    _service_entries: dict[tuple[str, int], tuple[str, int]] = field(default_factory=dict)
    # The last readiness probe of each workload (`namespace/pod`) that has one; a Service leaves out the unready.
    readiness: dict[str, bool] = field(default_factory=dict)
    probe_interval: float = 0.5
    _failing: bool = False
    # Completed passes, for tests that must see the runner act (or not act) on a change.
    passes: int = 0
    # Pod address -> `namespace/pod` of every workload ever started (the latest pod wins if kwok reuses an address):
    # who a plant device's writer was, even after its pod is gone.
    pod_addresses: dict[str, str] = field(default_factory=dict)
    # Real nodes by name: the runner writes their endpoint maps and forwards Services to their pods.
    real_nodes: dict[str, RealNodeLink] = field(default_factory=dict)
    # The Ready workload pods of real nodes, in the form of workloads() (their ports: loopback forwards).
    _real_workloads: dict[str, dict[str, Any]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.RLock = field(default_factory=threading.RLock)

    # -- life cycle --------------------------------------------------------------------------------------------

    def start(self) -> None:
        for node in self.real_nodes:
            self.uplink(node)  # and the node's endpoint map: its API traffic goes through the uplink from now on
        self._thread = threading.Thread(target=self._loop, name="site-runner", daemon=True)
        self._thread.start()
        threading.Thread(target=self._probe_loop, name="site-readiness", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        with self._lock:
            for key in list(self.attached):
                self._detach(key, "site stopping")
            for uplink in self.uplinks.values():
                uplink.stop()
            self.uplinks.clear()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.reconcile_once()
            except Exception as error:  # the site keeps running through API outages and hiccups
                if not self._failing:
                    self._event(f"reconcile failed, retrying every {self.interval}s: {error}")
                self._failing = True
            else:
                if self._failing:
                    self._event("reconcile works again")
                self._failing = False
            self._stop.wait(self.interval)

    def _probe_loop(self) -> None:
        """What a kubelet's readiness probes do for Services: a workload whose probe fails (a hot standby, a runtime
        not running its program) is left out of the endpoint map until it passes again."""
        while not self._stop.wait(self.probe_interval):
            with self._lock:
                targets = {key: w for key, w in self.attached.items() if w.launch.readiness_path}
            results = {key: _probe_ready(workload) for key, workload in targets.items()}
            with self._lock:
                changed = {k: v for k, v in results.items() if k in self.attached and self.readiness.get(k) != v}
                self.readiness = {k: v for k, v in {**self.readiness, **results}.items() if k in self.attached}
            if changed:
                self._event(", ".join(f"{k}: {'Ready' if v else 'not Ready'}" for k, v in sorted(changed.items())))

    def _event(self, message: str) -> None:
        self.events.append(SiteEvent(time.time(), message))
        if self.on_event is not None:
            self.on_event(message)

    # -- one pass ----------------------------------------------------------------------------------------------

    def reconcile_once(self) -> None:
        core = client.CoreV1Api(self.api)
        live_nodes = {
            node.metadata.name
            for node in core.list_node(_request_timeout=API_REQUEST_TIMEOUT).items
            if (node.metadata.labels or {}).get(KWOK_MANAGED_LABEL) == "true"
        }
        pods = core.list_pod_for_all_namespaces(
            label_selector=f"{PART_OF_LABEL}={PART_OF_VALUE}", _request_timeout=API_REQUEST_TIMEOUT
        ).items
        services = core.list_service_for_all_namespaces(
            label_selector=f"{PART_OF_LABEL}={PART_OF_VALUE}", _request_timeout=API_REQUEST_TIMEOUT
        ).items
        with self._lock:
            # A healed node is back once its heartbeat is: until this pass sees it, it stays partitioned (left alone).
            for node in sorted(self._healing & live_nodes):
                self._healing.discard(node)
                self.partitioned.discard(node)
                self._event(f"node {node}: reconnected, reconciling its pods")
            partitioned, powered_off = set(self.partitioned), set(self.powered_off)
            reachable = live_nodes - partitioned - powered_off
            wanted: dict[str, dict[str, Any]] = {}
            for pod in pods:
                raw = self.api.sanitize_for_serialization(pod)
                if self._should_run(raw, reachable):
                    wanted[f"{pod.metadata.namespace}/{pod.metadata.name}"] = raw
            for key, workload in list(self.attached.items()):
                node = workload.launch.node_name
                if node in partitioned:
                    # Behind a dead uplink the kubelet sees no pod changes; it only restarts a crashed container.
                    if node not in powered_off:
                        self._restart_if_exited(workload)
                    continue
                raw_pod = wanted.get(key)
                if raw_pod is None or raw_pod["metadata"]["uid"] != workload.launch.uid:
                    if node in powered_off or node not in live_nodes:
                        self._detach(key, "its node went down", power_loss=True)
                    else:
                        self._detach(key, "pod gone")
            for key, raw_pod in wanted.items():
                if key not in self.attached:
                    self._attach(core, raw_pod)
                else:
                    self._restart_if_exited(self.attached[key])
            self._publish_endpoints(services, [pod for pod in pods if pod.spec.node_name in self.real_nodes])
            self.passes += 1

    # -- faults: what the node's power and uplink do to its workloads -----------------------------------------

    def power_off(self, node: str) -> None:
        """The node loses power: its processes are SIGKILLed now (no shutdown code runs) and nothing starts there
        until power_on(). The heartbeat is the control plane's part (LocalControlPlane.set_node_heartbeat)."""
        with self._lock:
            self.powered_off.add(node)
            for key, workload in list(self.attached.items()):
                if workload.launch.node_name == node:
                    self._detach(key, f"node {node} lost power", power_loss=True)
        self._event(f"node {node}: power off")

    def power_on(self, node: str) -> None:
        """Power is back: once the node's heartbeat is too, its pods that still exist run again."""
        with self._lock:
            self.powered_off.discard(node)
        self._event(f"node {node}: power on")

    def partition(self, node: str) -> None:
        """Cut the node's uplink; from now on the runner leaves the node's processes running as they are (it only
        restarts one that crashes, as a kubelet does without the API), whatever happens to their pods."""
        with self._lock:
            self.partitioned.add(node)
            self._healing.discard(node)
        self.uplink(node).cut()
        self._event(f"node {node}: partitioned from the central zone")

    def heal(self, node: str, close_after: float = 0.0) -> None:
        """Heal the node's uplink (held bytes are delivered late, in order; see Uplink.heal for `close_after`). The
        runner reconciles the node again from the first pass that sees its heartbeat back."""
        self.uplink(node).heal(close_after)
        with self._lock:
            if node in self.partitioned:
                self._healing.add(node)
        self._event(f"node {node}: uplink healed")

    # -- the uplinks -------------------------------------------------------------------------------------------

    @property
    def api_server_address(self) -> tuple[str, int]:
        parts = urlsplit(self.server)
        return parts.hostname or "127.0.0.1", parts.port or 443

    def uplink(self, node: str) -> Uplink:
        """The node's uplink, started on first use."""
        with self._lock:
            uplink = self.uplinks.get(node)
            if uplink is None:
                targets = {API_SERVER_TARGET: self.api_server_address}
                for (name, port), target in self.central_endpoints.items():
                    targets[_central_target_name(name, port)] = target
                uplink = Uplink(node, targets, on_event=self._event).start()
                self.uplinks[node] = uplink
                self._write_endpoint_maps()
            return uplink

    def node_api_server(self, node: str) -> str:
        """The API server's URL as the node's workloads reach it: through the node's uplink."""
        return f"https://127.0.0.1:{self.uplink(node).port(API_SERVER_TARGET)}"

    def set_central_endpoint(self, name: str, port: int, target: tuple[str, int]) -> None:
        """Add or replace a central endpoint; every node's uplink and endpoint map follow at once."""
        with self._lock:
            self.central_endpoints[(name, port)] = target
            for uplink in self.uplinks.values():
                uplink.set_target(_central_target_name(name, port), target)
            self._write_endpoint_maps()

    # -- the endpoint maps -------------------------------------------------------------------------------------

    @property
    def endpoint_map_file(self) -> Path:
        """The site's own view (central names map to their real addresses, not through any uplink), for tools and
        tests. Pods get their node's map: node_endpoint_map_file()."""
        return self.workdir / "endpoints"

    def node_endpoint_map_file(self, node: str) -> Path:
        return self.workdir / f"endpoints-{node}"

    def _real_pod_targets(self, pod: Any) -> dict[str, tuple[str, int]] | None:
        """A Ready pod of a real node: its container ports by name, each as the loopback forward to it."""
        if pod.status.pod_ip:
            self.pod_addresses[loopback_alias(pod.status.pod_ip)] = f"{pod.metadata.namespace}/{pod.metadata.name}"
        ready = any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))
        if not ready or not pod.status.pod_ip or pod.metadata.deletion_timestamp:
            return None
        node = self.real_nodes[pod.spec.node_name]
        targets: dict[str, tuple[str, int]] = {}
        for container in pod.spec.containers:
            for port in container.ports or []:
                address = ("127.0.0.1", node.forward(pod.status.pod_ip, port.container_port))
                targets[str(port.container_port)] = address
                if port.name:
                    targets[port.name] = address
        return targets

    def _publish_endpoints(self, services: list[Any], real_pods: list[Any] | None = None) -> None:
        """Map each Service's `name.namespace:port` to the loopback listener of the workload it selects: the
        site's stand-in for cluster DNS and kube-proxy. Rewritten atomically when it changes."""
        entries: dict[tuple[str, int], tuple[str, int]] = {}
        real_targets = [(pod, self._real_pod_targets(pod)) for pod in real_pods or []]
        self._real_workloads = {
            f"{pod.metadata.namespace}/{pod.metadata.name}": {
                "namespace": pod.metadata.namespace,
                "owner": (pod.metadata.labels or {}).get("app.kubernetes.io/instance", ""),
                "component": (pod.metadata.labels or {}).get("app.kubernetes.io/component", ""),
                "pod": pod.metadata.name,
                "node": pod.spec.node_name,
                "pod_ip": pod.status.pod_ip,
                "pid": None,
                "ports": {name: address[1] for name, address in targets.items() if not name.isdigit()},
                "running": True,
            }
            for pod, targets in real_targets
            if targets is not None
        }
        # A real pod's own address too (a hot standby dials its primary's pod address): from outside the node's
        # network namespace, only through the forward, never routed from this machine's namespace.
        for pod, targets in real_targets:
            for port, forward in (targets or {}).items():
                if port.isdigit():
                    entries[(pod.status.pod_ip, int(port))] = forward
        for service in services:
            for pod, targets in real_targets:
                if targets is None or not _selects(service, pod.metadata.namespace, pod.metadata.labels or {}):
                    continue
                for port in service.spec.ports or []:
                    address = targets.get(str(port.target_port))
                    if address is not None:
                        entries[(f"{service.metadata.name}.{service.metadata.namespace}", port.port)] = address
            for key, workload in self.attached.items():
                if self.readiness.get(key) is False:
                    continue
                if not _selects(service, workload.launch.namespace, workload.launch.labels):
                    continue
                for port in service.spec.ports or []:
                    target = _target_port_name(port.target_port, workload.launch.container_ports)
                    if target is not None:
                        name = f"{service.metadata.name}.{service.metadata.namespace}"
                        entries[(name, port.port)] = ("127.0.0.1", workload.host_ports[target])
        self._service_entries = entries
        self._write_endpoint_maps()

    def _write_endpoint_maps(self) -> None:
        """The site's map, and each node's: static entries, Services, and the central entries through the node's
        uplink."""
        base = {**self.static_endpoints, **self._service_entries}
        _write_if_changed(self.endpoint_map_file, format_endpoint_map({**base, **self.central_endpoints}))
        for node, uplink in self.uplinks.items():
            central = {key: ("127.0.0.1", uplink.port(_central_target_name(*key))) for key in self.central_endpoints}
            _write_if_changed(self.node_endpoint_map_file(node), format_endpoint_map({**base, **central}))
            if node in self.real_nodes:
                api = {REAL_NODE_API_NAME: ("127.0.0.1", uplink.port(API_SERVER_TARGET))}
                _write_if_changed(self.real_nodes[node].endpoint_map, format_endpoint_map({**base, **central, **api}))

    @staticmethod
    def _should_run(pod: dict[str, Any], live_nodes: set[str]) -> bool:
        if not is_site_workload(pod) or pod["metadata"].get("deletionTimestamp"):
            return False
        node = pod.get("spec", {}).get("nodeName")
        return bool(node in live_nodes and pod.get("status", {}).get("phase") == "Running")

    def _attach(self, core: client.CoreV1Api, pod: dict[str, Any]) -> None:
        key = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
        try:
            launch = plan_launch(
                pod, lambda kind, name, k: self._lookup(core, pod["metadata"]["namespace"], kind, name, k)
            )
        except LaunchError as error:
            self._event(f"{key}: cannot run here: {error}")
            return
        pod_dir = self.workdir / launch.namespace / launch.pod_name
        shutil.rmtree(pod_dir, ignore_errors=True)
        (pod_dir / "root").mkdir(parents=True)
        self.uplink(launch.node_name)  # and its endpoint map
        host_ports = {name: free_port() for name in launch.container_ports}
        env = dict(os.environ)
        env.update(launch.env)
        env.update(
            {
                KUBECONFIG_ENV: str(self._write_kubeconfig(core, launch, pod_dir)),
                BIND_HOST_ENV: "127.0.0.1",
                PORT_MAP_ENV: port_map_value({port: host_ports[name] for name, port in launch.container_ports.items()}),
                FS_ROOT_ENV: str(pod_dir / "root"),
                ENDPOINT_MAP_ENV: str(self.node_endpoint_map_file(launch.node_name)),
                "HOSTNAME": launch.pod_name,
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
                "PYTHONUNBUFFERED": "1",
            }
        )
        for name in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
            env.pop(name, None)
        self._materialise_volumes(core, launch, pod_dir / "root")
        process = ManagedProcess(name=key, args=launch.command, log_path=pod_dir / "workload.log", env=env)
        process.start()
        self.attached[key] = AttachedWorkload(launch, process, host_ports, time.monotonic())
        if launch.pod_ip:
            self.pod_addresses[launch.pod_ip] = key
        ports = ", ".join(f"{name} 127.0.0.1:{port}" for name, port in host_ports.items())
        self._event(f"{key}: started {launch.component} on {launch.node_name} ({ports})")

    def _restart_if_exited(self, workload: AttachedWorkload) -> None:
        if workload.process.running():
            return
        now = time.monotonic()
        if workload.next_restart_at == 0.0:
            backoff = min(MAX_BACKOFF_SECONDS, 0.5 * 2**workload.restarts)
            workload.next_restart_at = now + backoff
            self._event(
                f"{workload.key}: exited ({workload.process.process.returncode if workload.process.process else '?'}),"
                f" restarting in {backoff:.1f}s; last lines:\n{workload.process.log_tail(8)}"
            )
            return
        if now >= workload.next_restart_at:
            workload.restarts += 1
            workload.next_restart_at = 0.0
            workload.process.start()
            self._event(f"{workload.key}: restarted (restart {workload.restarts})")

    def _detach(self, key: str, reason: str, power_loss: bool = False) -> None:
        """Stop a workload: SIGTERM with time to write its safe state when its pod goes away, SIGKILL when its
        node goes down (a node that lost power runs no shutdown code)."""
        workload = self.attached.pop(key)
        if power_loss:
            workload.process.kill()
        else:
            workload.process.stop(timeout=15)
        self._event(f"{key}: stopped ({reason})")

    # -- what a kubelet would provide --------------------------------------------------------------------------

    @staticmethod
    def _lookup(core: client.CoreV1Api, namespace: str, kind: str, name: str, key: str) -> str | None:
        try:
            if kind == "Secret":
                data = core.read_namespaced_secret(name, namespace).data or {}
                return base64.b64decode(data[key]).decode() if key in data else None
            return (core.read_namespaced_config_map(name, namespace).data or {}).get(key)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def _write_kubeconfig(self, core: client.CoreV1Api, launch: PodLaunch, pod_dir: Path) -> Path:
        """A kubeconfig with a token of the pod's own service account, bound to the pod as a kubelet's projected
        token is (it stops working when the pod object is gone): the workload gets exactly its RBAC. The server is
        the node's uplink port for the API server."""
        bound = {"kind": "Pod", "apiVersion": "v1", "name": launch.pod_name, "uid": launch.uid}
        request = core.create_namespaced_service_account_token(
            launch.service_account,
            launch.namespace,
            {"spec": {"expirationSeconds": TOKEN_SECONDS, "boundObjectRef": bound}},
            _request_timeout=API_REQUEST_TIMEOUT,
        )
        document = kubeconfig_document(
            self.node_api_server(launch.node_name),
            self.ca_data,
            launch.service_account,
            {"token": request.status.token},
            namespace=launch.namespace,
        )
        return write_kubeconfig_file(pod_dir / "kubeconfig", document)

    def _materialise_volumes(self, core: client.CoreV1Api, launch: PodLaunch, root: Path) -> None:
        for volume in launch.volumes:
            target = root / volume.mount_path.lstrip("/")
            target.mkdir(parents=True, exist_ok=True)
            try:
                if volume.kind == "Secret":
                    secret = core.read_namespaced_secret(volume.name, launch.namespace)
                    data = {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}
                else:
                    config_map = core.read_namespaced_config_map(volume.name, launch.namespace)
                    data = {k: v.encode() for k, v in (config_map.data or {}).items()}
            except ApiException as error:
                if error.status == 404:
                    self._event(f"{launch.namespace}/{launch.pod_name}: {volume.kind} {volume.name} not found")
                    continue
                raise
            for key, content in data.items():
                relative = volume.items.get(key) if volume.items is not None else key
                if relative is None:
                    continue
                (target / relative).parent.mkdir(parents=True, exist_ok=True)
                (target / relative).write_bytes(content)

    def log_tails(self, lines: int = 20) -> dict[str, str]:
        with self._lock:
            return {key: workload.process.log_tail(lines) for key, workload in self.attached.items()}

    def service_target(self, name: str, port: int) -> tuple[str, int] | None:
        """Where `name` (a Service's `name.namespace`) on `port` leads now, as the nodes' endpoint maps say."""
        with self._lock:
            return self._service_entries.get((name, port))

    def workloads(self) -> list[dict[str, Any]]:
        """What runs where, for the site table."""
        with self._lock:
            return [
                {
                    "namespace": w.launch.namespace,
                    "owner": w.launch.owner,
                    "component": w.launch.component,
                    "pod": w.launch.pod_name,
                    "node": w.launch.node_name,
                    "pod_ip": w.launch.pod_ip,
                    "pid": w.process.process.pid if w.process.process is not None else None,
                    "ports": dict(w.host_ports),
                    "running": w.process.running(),
                }
                for w in self.attached.values()
            ] + list(self._real_workloads.values())

    def add_real_node(self, name: str, node: RealNodeLink) -> None:
        """Wire a real node that joined after the runner started into the site."""
        with self._lock:
            self.real_nodes[name] = node
        self.uplink(name)

    def remove_real_node(self, name: str) -> None:
        with self._lock:
            self.real_nodes.pop(name, None)
            uplink = self.uplinks.pop(name, None)
        if uplink is not None:
            uplink.stop()


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only: never a proxy


def _probe_ready(workload: AttachedWorkload) -> bool:
    """One HTTP readiness probe of `workload` on its loopback port (a port given by name or number)."""
    launch = workload.launch
    port_name = launch.readiness_port
    if port_name not in workload.host_ports:
        port_name = next((n for n, p in launch.container_ports.items() if str(p) == port_name), port_name)
    port = workload.host_ports.get(port_name)
    if port is None or not workload.process.running():
        return False
    try:
        with _DIRECT.open(f"http://127.0.0.1:{port}{launch.readiness_path}", timeout=0.5) as response:
            return bool(200 <= response.status < 400)
    except (OSError, ValueError):  # refused, timed out, or an HTTP error status (a standby's 503)
        return False


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.rename(path)


def _target_port_name(target: int | str | None, container_ports: dict[str, int]) -> str | None:
    """The container port (by its name in the pod) a Service port sends to."""
    if isinstance(target, str) and not target.isdigit():
        return target if target in container_ports else None
    number = int(target) if target is not None else None
    return next((name for name, port in container_ports.items() if port == number), None)
