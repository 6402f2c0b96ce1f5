"""A real edge node for the local site: containerd and a kubelet on this machine, run by the site and removed by it.

What stays inside the node:
- its network: a network namespace of its own (`shopfloor-<node>-<owner pid>`) holding the node address, the CNI
  bridge and every pod address. The host's namespace has no route to any of them; the kubelet and the pods reach the
  API server, and tests reach a pod's port, only through forwarder listeners (netns_forward.py);
- its mounts: containerd, its shims and the kubelet share one private mount namespace, so every overlay, tmpfs
  and bind mount they make vanishes with their last process; the fixed paths of containerd's shims and the CNI
  library (/run/containerd, /var/lib/cni) are mounted over with the node's own directories there;
- its processes and cgroups: all under the kubelet's cgroupRoot `/shopfloor-<node>` in every cgroup v1 hierarchy,
  so stopping the node (or cleaning up after an owner killed with SIGKILL) finds every one of them.
The kubelet changes six kernel sysctls at start (vm.overcommit_memory, kernel.panic_on_oops, ...); their values
from before are saved next to the owner record and written back when the node stops.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from shopfloor_localsite.images import PAUSE_IMAGE
from shopfloor_localsite.kubeconfig import kubeconfig_document, write_kubeconfig_file
from shopfloor_localsite.node_services import API_NAME
from shopfloor_localsite.pki import ControlPlanePki, issue_node_client
from shopfloor_localsite.processes import ManagedProcess, free_port, process_alive, wait_until
from shopfloor_localsite.realnode_config import (
    NODE_API_PORT,
    REALTIME_RUNTIME_HANDLER,
    RealNodePaths,
    RealNodeSpec,
    cni_config,
    containerd_config,
    kubelet_args,
    kubelet_config,
    labels_set_after_registration,
    realtime_policy,
)

CGROUP_MOUNT = Path("/sys/fs/cgroup")
OWNER_DIR = Path("/run/shopfloor-localsite")
KUBELET_SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)
REQUIRED_PROGRAMS = ("containerd", "ctr", "runc", "ip", "nsenter", "unshare", "mount")
REQUIRED_CNI_PLUGINS = ("bridge", "host-local", "loopback")
CNI_BIN = Path("/usr/lib/cni")


class RealNodeUnavailable(RuntimeError):
    """This machine cannot run a real node; the message says exactly what is missing."""


def _log(message: str) -> None:
    print(f"[real-node] {message}", file=sys.stderr, flush=True)


def preflight(kubelet: Path) -> list[str]:
    """Everything a real node needs that this machine lacks, as sentences a user can act on."""
    problems = []
    if os.geteuid() != 0:
        problems.append("not running as root (a kubelet and containerd need it)")
    for program in REQUIRED_PROGRAMS:
        if shutil.which(program) is None:
            problems.append(f"`{program}` is not installed (Debian: containerd, runc, iproute2, util-linux)")
    for plugin in REQUIRED_CNI_PLUGINS:
        if not (CNI_BIN / plugin).exists():
            problems.append(f"CNI plugin {CNI_BIN / plugin} is missing (Debian: containernetworking-plugins)")
    if not kubelet.exists():
        problems.append(f"no kubelet at {kubelet} (`make binaries` builds it)")
    if not (CGROUP_MOUNT / "cpu" / "cpu.rt_runtime_us").exists() and not (CGROUP_MOUNT / "cpu").exists():
        problems.append("no cgroup v1 cpu hierarchy under /sys/fs/cgroup (this node setup is written for cgroup v1)")
    return problems


def _hierarchies() -> list[Path]:
    """The cgroup v1 hierarchies the kubelet uses (named ones like name=systemd included)."""
    return sorted(path for path in CGROUP_MOUNT.iterdir() if path.is_dir() and (path / "cgroup.procs").exists())


def _run(*args: str) -> str:
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def _read_sysctls() -> dict[str, str]:
    return {name: (Path("/proc/sys") / name).read_text().strip() for name in KUBELET_SYSCTLS}


def _write_sysctls(values: dict[str, str]) -> None:
    for name, value in values.items():
        with contextlib.suppress(OSError):
            (Path("/proc/sys") / name).write_text(value)


def _cgroup_pids(group: Path) -> list[int]:
    pids: list[int] = []
    for procs in group.rglob("cgroup.procs"):
        with contextlib.suppress(OSError, ValueError):
            pids += [int(line) for line in procs.read_text().split()]
    return pids


def _remove_cgroup_tree(group: Path) -> None:
    if not group.exists():
        return
    for directory in sorted((p for p in group.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            directory.rmdir()
    with contextlib.suppress(OSError):
        group.rmdir()


def kill_cgroup_tree(cgroup_root: str, timeout: float = 20) -> None:
    """SIGKILL every process under the node's cgroup root (containers, shims, containerd, kubelet), then remove
    the cgroups, deepest first, in every hierarchy."""
    pids_root = CGROUP_MOUNT / "pids" / cgroup_root.lstrip("/")
    deadline = time.monotonic() + timeout
    while (pids := _cgroup_pids(pids_root)) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    # A killed task leaves its cgroup only once it is reaped; until then rmdir says EBUSY, so retry.
    groups = [hierarchy / cgroup_root.lstrip("/") for hierarchy in _hierarchies()]
    while True:
        for group in groups:
            _remove_cgroup_tree(group)
        left = [group for group in groups if group.exists()]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    if left:
        _log(f"could not remove {', '.join(map(str, left))}: processes still in them")


@dataclass
class OwnerRecord:
    """Who runs a node, and what to undo if they die without cleaning up."""

    pid: int
    netns: str
    cgroup_root: str
    sysctls: dict[str, str]

    @staticmethod
    def path(node: str) -> Path:
        return OWNER_DIR / f"{node}.json"

    def save(self, node: str) -> None:
        OWNER_DIR.mkdir(parents=True, exist_ok=True)
        self.path(node).write_text(json.dumps(self.__dict__))

    @classmethod
    def load(cls, node: str) -> OwnerRecord | None:
        try:
            return cls(**json.loads(cls.path(node).read_text()))
        except (OSError, ValueError, TypeError):
            return None


def undo(record: OwnerRecord, node: str) -> None:
    kill_cgroup_tree(record.cgroup_root)
    with contextlib.suppress(RuntimeError):
        _run("ip", "netns", "delete", record.netns)
    _write_sysctls(record.sysctls)
    OwnerRecord.path(node).unlink(missing_ok=True)


def remove_abandoned(node: str) -> None:
    """Undo what a node's owner left behind when it was killed before it could stop the node."""
    record = OwnerRecord.load(node)
    if record is None:
        return
    if process_alive(record.pid):
        who = "this process" if record.pid == os.getpid() else f"process {record.pid}"
        raise RealNodeUnavailable(f"node {node} is already run by {who} (one site with a real node at a time)")
    _log(f"{node}: removing what a stopped site (pid {record.pid}) left running")
    undo(record, node)


class RealNode:
    """One real node; start() registers it with the API server and waits until it is Ready."""

    def __init__(
        self,
        spec: RealNodeSpec,
        workdir: Path,
        kubelet: Path,
        pki: ControlPlanePki,
        api_port: int,
        service_ip: str,
        service_cidr: str,
        admin: client.ApiClient,
    ) -> None:
        self.spec = spec
        self.paths = RealNodePaths(root=workdir)
        self.kubelet_binary = kubelet
        self.pki = pki
        self.api_port = api_port
        self.service_ip = service_ip
        self.service_cidr = service_cidr
        self.admin = admin
        self.netns = f"shopfloor-{spec.name}-{os.getpid()}"
        self.processes: list[ManagedProcess] = []
        self.containerd: ManagedProcess | None = None
        self.kubelet: ManagedProcess | None = None
        self._record: OwnerRecord | None = None
        self._forwards: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()

    @property
    def netns_path(self) -> str:
        return f"/run/netns/{self.netns}"

    # -- start ---------------------------------------------------------------------------------------------------

    def start(self, timeout: float = 120) -> None:
        problems = preflight(self.kubelet_binary)
        if problems:
            raise RealNodeUnavailable("; ".join(problems))
        remove_abandoned(self.spec.name)
        started = time.monotonic()
        self._record = OwnerRecord(os.getpid(), self.netns, self.spec.cgroup_root, _read_sysctls())
        self._record.save(self.spec.name)
        try:
            self._prepare_cgroups()
            self._create_network()
            self._write_configs()
            self._start_node_services()
            self._start_containerd()
        except BaseException:
            self.stop()
            raise
        _log(f"{self.spec.name}: containerd up in {time.monotonic() - started:.1f}s")

    def join(self, timeout: float = 120) -> None:
        """Start the kubelet (after the images it needs are imported) and wait for the node to be Ready."""
        started = time.monotonic()
        try:
            self._start_kubelet()
            wait_until(self._registered, timeout, f"node {self.spec.name} registered", self.processes)
            self._label_after_registration()
            self._ensure_runtime_class()
            wait_until(self.ready, timeout, f"node {self.spec.name} Ready", self.processes)
        except BaseException:
            self.stop()
            raise
        _log(f"{self.spec.name}: kubelet Ready in {time.monotonic() - started:.1f}s")

    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> ManagedProcess:
        proc = ManagedProcess(name=name, args=args, log_path=self.paths.root / "logs" / f"{name}.log", env=env)
        proc.start()
        self.processes.append(proc)
        return proc

    def _prepare_cgroups(self) -> None:
        root = self.spec.cgroup_root.lstrip("/")
        for hierarchy in _hierarchies():
            group = hierarchy / root
            for directory in (group, group / "system"):
                directory.mkdir(exist_ok=True)
                if hierarchy.name == "cpuset":  # a cpuset group admits no task until it has cpus and mems
                    for key in ("cpuset.cpus", "cpuset.mems"):
                        (directory / key).write_text((hierarchy / key).read_text())
        budget = CGROUP_MOUNT / "cpu" / root / "cpu.rt_runtime_us"
        if budget.exists():
            try:
                budget.write_text(str(self.spec.realtime_budget_us))
            except OSError as error:
                _log(f"{self.spec.name}: no real-time budget for the node ({error}); pods run without SCHED_FIFO")

    def _create_network(self) -> None:
        ns = self.netns
        _run("ip", "netns", "add", ns)
        _run("ip", "-n", ns, "link", "set", "lo", "up")
        # The node's address is on one end of a veth pair whose other end is in the same namespace: not loopback
        # (a kubelet refuses that), and no way out of the namespace (the dummy driver is not always there).
        _run("ip", "-n", ns, "link", "add", "name", "node0", "type", "veth", "peer", "name", "node0-end")
        _run("ip", "-n", ns, "addr", "add", f"{self.spec.node_ip}/{self.spec.node_prefix}", "dev", "node0")
        for link in ("node0", "node0-end"):
            _run("ip", "-n", ns, "link", "set", link, "up")
        _run("ip", "-n", ns, "route", "add", "default", "dev", "node0")
        # Every Service address is local to the node (what kube-proxy's rules make it): pods reach them through their
        # bridge, and the node's services process answers on them, DNS included.
        _run("ip", "-n", ns, "route", "add", "local", self.service_cidr, "dev", "lo")

    def _write_configs(self) -> None:
        paths = self.paths
        for directory in (
            paths.root / "logs",
            paths.containerd_root,
            paths.containerd_state,
            paths.cni_conf_dir,
            paths.cni_state,
            paths.shim_state,
            paths.pod_netns_dir,
            paths.kubelet_root,
            paths.pod_logs,
        ):
            directory.mkdir(parents=True, exist_ok=True)
        runtime = paths.root / "shopfloor-realtime-runc"
        runtime.write_text(
            "#!/bin/sh\n"
            f"exec {sys.executable} -m shopfloor_node.realtime_runc --policy {paths.realtime_policy} "
            f'--runc {shutil.which("runc")} -- "$@"\n'
        )
        runtime.chmod(0o755)
        paths.realtime_policy.write_text(json.dumps(realtime_policy(self.spec)))
        paths.containerd_config.write_text(containerd_config(paths, self.sandbox_image, runtime))
        (paths.cni_conf_dir / "10-shopfloor.conflist").write_text(json.dumps(cni_config(self.spec, paths), indent=2))
        paths.resolv_conf.write_text("search svc.cluster.local cluster.local\noptions ndots:5\n")
        paths.kubelet_config.write_text(yaml.safe_dump(kubelet_config(self.spec, paths, self.pki.ca_cert)))
        cert, key = issue_node_client(self.pki, self.spec.name, paths.root / "pki")

        def b64(file: Path) -> str:
            return base64.b64encode(file.read_bytes()).decode()

        document = kubeconfig_document(
            f"https://127.0.0.1:{NODE_API_PORT}",
            b64(self.pki.ca_cert),
            f"system:node:{self.spec.name}",
            {"client-certificate-data": b64(cert), "client-key-data": b64(key)},
        )
        write_kubeconfig_file(paths.kubelet_kubeconfig, document)

    sandbox_image = PAUSE_IMAGE

    def _start_forwarder(self, name: str, into: list[str], out: list[str]) -> ManagedProcess:
        args = [sys.executable, "-m", "shopfloor_localsite.netns_forward", "--netns", self.netns_path]
        args += [f"--into={rule}" for rule in into] + [f"--out={rule}" for rule in out]
        proc = self._spawn(name, args)
        wait_until(lambda: "ready" in proc.log_tail(5), 20, f"{name} listening", [proc])
        return proc

    @property
    def endpoint_map(self) -> Path:
        """The node's endpoint map: what its pods' names resolve to, and where its API traffic goes (the site
        rewrites it to send that through the node's uplink)."""
        return self.paths.root / "endpoints"

    def _start_node_services(self) -> None:
        self.endpoint_map.write_text(f"{API_NAME[0]}:{API_NAME[1]}=127.0.0.1:{self.api_port}\n")
        proc = self._spawn(
            "node-services",
            [
                sys.executable,
                "-m",
                "shopfloor_localsite.node_services",
                f"--netns={self.netns_path}",
                f"--map={self.endpoint_map}",
                f"--dns={self.spec.cluster_dns}",
                f"--network={self.spec.name_network}",
                f"--api-address={self.service_ip}",
                f"--kubelet-api=127.0.0.1:{NODE_API_PORT}",
            ],
        )
        wait_until(lambda: "ready" in proc.log_tail(5), 20, "node services listening", [proc])

    def _node_shell(self, inner: str) -> list[str]:
        """A command that joins the node's cgroups, gets a private mount namespace and the node's network, then
        runs `inner` (a shell command) there."""
        root = self.spec.cgroup_root.lstrip("/")
        join = "; ".join(f"echo $$ > {hierarchy / root / 'system' / 'cgroup.procs'}" for hierarchy in _hierarchies())
        return [
            "sh",
            "-c",
            f'{join}; exec unshare --mount --propagation private nsenter --net={self.netns_path} sh -c "$0"',
            inner,
        ]

    def _start_containerd(self) -> None:
        paths = self.paths
        # The fixed paths of containerd's shims, the CNI library and the pods' network namespaces (containerd 1.6
        # has no setting for it) get the node's own directories.
        Path("/run/containerd").mkdir(exist_ok=True)
        Path("/var/lib/cni").mkdir(parents=True, exist_ok=True)
        inner = (
            f"mount --bind {paths.shim_state} /run/containerd && "
            f"mount --bind {paths.cni_state} /var/lib/cni && "
            f"mount --bind {paths.pod_netns_dir} /run/netns && "
            "mount --make-rshared / && "
            f"exec containerd --config {paths.containerd_config}"
        )
        self.containerd = self._spawn("containerd", self._node_shell(inner))
        wait_until(
            lambda: (
                subprocess.run(
                    ["ctr", "--address", str(paths.containerd_socket), "version"], capture_output=True
                ).returncode
                == 0
            ),
            30,
            "containerd answering",
            [self.containerd],
        )

    def ctr(self, *args: str) -> str:
        return _run("ctr", "--address", str(self.paths.containerd_socket), "-n", "k8s.io", *args)

    def _start_kubelet(self) -> None:
        assert self.containerd is not None and self.containerd.process is not None
        mount_ns = f"/proc/{self.containerd.process.pid}/ns/mnt"
        args = ["nsenter", f"--mount={mount_ns}", f"--net={self.netns_path}", "--"]
        args += kubelet_args(self.spec, self.paths, self.kubelet_binary)
        self.kubelet = self._spawn("kubelet", args)

    # -- the node as the API server sees it ------------------------------------------------------------------

    def _node(self) -> Any:
        return client.CoreV1Api(self.admin).read_node(self.spec.name)

    def _registered(self) -> bool:
        try:
            self._node()
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return True

    def ready(self) -> bool:
        node = self._node()
        return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])

    def _label_after_registration(self) -> None:
        labels = labels_set_after_registration(self.spec)
        if labels:
            client.CoreV1Api(self.admin).patch_node(self.spec.name, {"metadata": {"labels": labels}})

    def _ensure_runtime_class(self) -> None:
        body = {
            "apiVersion": "node.k8s.io/v1",
            "kind": "RuntimeClass",
            "metadata": {"name": REALTIME_RUNTIME_HANDLER},
            "handler": REALTIME_RUNTIME_HANDLER,
            "scheduling": {"nodeSelector": {"shopfloor.io/real-kubelet": "true"}},
        }
        try:
            client.NodeV1Api(self.admin).create_runtime_class(body)
        except ApiException as error:
            if error.status != 409:
                raise

    def forward(self, target_host: str, target_port: int) -> int:
        """A loopback port on the host that reaches `target_host:target_port` inside the node's network (one per
        target, started on first use)."""
        with self._lock:
            if (target_host, target_port) not in self._forwards:
                port = free_port()
                self._start_forwarder(
                    f"forward-{target_host}-{target_port}",
                    into=[],
                    out=[f"127.0.0.1:{port}={target_host}:{target_port}"],
                )
                self._forwards[(target_host, target_port)] = port
            return self._forwards[(target_host, target_port)]

    # -- power ---------------------------------------------------------------------------------------------------

    def power_off(self) -> None:
        """A power loss: every process of the node (kubelet, containerd, shims, containers) is SIGKILLed at once and
        runs no shutdown code; the node's mounts vanish with them. Its network namespace and the site's relays stay:
        they are the plant's wiring, and nothing answers behind them until power_on()."""
        kill_cgroup_tree(self.spec.cgroup_root)
        for proc in (self.kubelet, self.containerd):
            if proc is not None:
                proc.kill()  # reaps it; already dead
                self.processes.remove(proc)
        self.kubelet = self.containerd = None

    def power_on(self, timeout: float = 120) -> None:
        """Power is back: containerd and the kubelet start again from their state on disk; returns once the node is
        Ready. Its pods run again as the kubelet finds them (the containers themselves died with the power)."""
        self._prepare_cgroups()
        self._start_containerd()
        self._start_kubelet()
        wait_until(self.ready, timeout, f"node {self.spec.name} Ready after power on", self.processes)

    @property
    def powered(self) -> bool:
        return self.kubelet is not None

    # -- stop ----------------------------------------------------------------------------------------------------

    def stop(self) -> None:
        if self.kubelet is not None:
            self.kubelet.stop(timeout=15)
        for proc in reversed(self.processes):
            proc.stop(timeout=10)
        self.processes.clear()
        if self._record is not None:
            undo(self._record, self.spec.name)
            self._record = None
