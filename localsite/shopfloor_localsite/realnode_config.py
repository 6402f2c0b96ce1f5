"""What a real edge node of the local site is made of: pure builders for its kubelet, containerd and CNI configs.

The node's addresses exist only inside the network namespace the site creates for it (see realnode.py); the
builders take every path and address as input, so the same node description is tested without starting anything.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from shopfloor_node.realtime_runc import RealtimePolicy

from shopfloor_localsite.nodes import EDGE_ROLE_LABEL, REALTIME_LABEL, REALTIME_TAINT_KEY

REAL_NODE_LABEL = "shopfloor.io/real-kubelet"
REALTIME_RUNTIME_HANDLER = "shopfloor-realtime"
# Inside the node's namespace: where its kubelet finds the API server (the forwarder's listener).
NODE_API_PORT = 6443
KUBELET_PORT = 10250


class RealNodeSpec(BaseModel):
    """One real node: a kubelet and containerd on this machine, its network in a namespace of its own."""

    name: str = "real-rt-1"
    node_ip: str = "10.250.0.2"
    node_prefix: int = 24
    pod_cidr: str = "10.250.1.0/24"
    pod_gateway: str = "10.250.1.1"
    reserved_cpus: str = Field("0", description="CPUs the static CPU manager keeps for system processes")
    max_pods: int = 16
    # The node's real-time budget (of cpu.rt_period_us = 1 s) for all its pods together; the kernel's root keeps
    # 950 ms, and the rest of the machine keeps some of it.
    realtime_budget_us: int = 800_000
    # What one real-time pod may use of it: a SCHED_FIFO loop that never sleeps is throttled here, not the node.
    realtime_pod_budget_us: int = 400_000
    realtime_max_priority: int = Field(98, ge=1, le=99)
    # Inside the node's namespace, in the Service range: the cluster DNS address and the addresses names get.
    cluster_dns: str = "10.96.0.10"
    name_network: str = "10.96.1.0/24"

    @property
    def cgroup_root(self) -> str:
        """The kubelet's cgroupRoot: everything the node runs lives under it, so it can all be found and removed."""
        return f"/shopfloor-{self.name}"

    @property
    def labels(self) -> dict[str, str]:
        """The labels of a real-time edge node (like the simulated edge-rt-N), and the mark of a real kubelet."""
        return {REALTIME_LABEL: "true", EDGE_ROLE_LABEL: "", REAL_NODE_LABEL: "true"}


def real_node_specs(count: int) -> list[RealNodeSpec]:
    """real-rt-1..N, each with its own node address and pod range (each node's network is its own namespace, but
    the site tells pods apart by address). On 2 cores one node is what fits: each takes CPU 1 as exclusive."""
    return [
        RealNodeSpec(
            name=f"real-rt-{i}", node_ip=f"10.250.0.{1 + i}", pod_cidr=f"10.250.{i}.0/24", pod_gateway=f"10.250.{i}.1"
        )
        for i in range(1, count + 1)
    ]


class RealNodePaths(BaseModel):
    """Where one node keeps its state; everything under `root`, removed when the node stops."""

    root: Path

    @property
    def containerd_root(self) -> Path:
        return self.root / "containerd" / "root"

    @property
    def containerd_state(self) -> Path:
        return self.root / "containerd" / "state"

    @property
    def containerd_socket(self) -> Path:
        return self.root / "containerd" / "containerd.sock"

    @property
    def containerd_config(self) -> Path:
        return self.root / "containerd" / "config.toml"

    @property
    def cni_conf_dir(self) -> Path:
        return self.root / "cni" / "net.d"

    @property
    def cni_state(self) -> Path:
        """Mounted over /var/lib/cni inside the node's mount namespace (the CNI library's fixed cache)."""
        return self.root / "cni" / "state"

    @property
    def shim_state(self) -> Path:
        """Mounted over /run/containerd inside the node's mount namespace (the shims' fixed socket directory)."""
        return self.root / "containerd" / "run"

    @property
    def pod_netns_dir(self) -> Path:
        return self.root / "netns"

    @property
    def kubelet_root(self) -> Path:
        return self.root / "kubelet"

    @property
    def kubelet_config(self) -> Path:
        return self.root / "kubelet.yaml"

    @property
    def kubelet_kubeconfig(self) -> Path:
        return self.root / "kubelet.kubeconfig"

    @property
    def pod_logs(self) -> Path:
        return self.root / "pod-logs"

    @property
    def resolv_conf(self) -> Path:
        return self.root / "resolv.conf"

    @property
    def realtime_policy(self) -> Path:
        return self.root / "realtime-policy.json"


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def _toml(tables: dict[str, dict[str, object]], top: dict[str, object]) -> str:
    """TOML for a flat set of tables (all containerd needs); the standard library reads TOML but cannot write it."""
    lines = [f"{key} = {_toml_value(value)}" for key, value in top.items()]
    for table, values in tables.items():
        lines += ["", f"[{table}]"]
        lines += [f"  {key} = {_toml_value(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def containerd_config(paths: RealNodePaths, sandbox_image: str, realtime_runtime: Path) -> str:
    """containerd 1.6 (config version 2): overlayfs, the CRI plugin with our sandbox image, and two runtime
    handlers: plain runc and the real-time handler a RuntimeClass names."""
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    runtimes = f"{cri}.containerd.runtimes"
    return _toml(
        {
            "grpc": {"address": str(paths.containerd_socket)},
            "ttrpc": {"address": str(paths.containerd_socket) + ".ttrpc"},
            "debug": {"level": "warn"},
            cri: {
                "sandbox_image": sandbox_image,
                # The site runs without CAP_SYS_RESOURCE: it may not lower a container's OOM score below its own.
                "restrict_oom_score_adj": True,
                "disable_apparmor": True,
                "enable_selinux": False,
                "stream_server_address": "127.0.0.1",
                "stream_server_port": "0",
                "enable_cdi": False,
            },
            f"{cri}.containerd": {"snapshotter": "overlayfs", "default_runtime_name": "runc"},
            f"{runtimes}.runc": {"runtime_type": "io.containerd.runc.v2"},
            f"{runtimes}.runc.options": {"SystemdCgroup": False},
            f"{runtimes}.{REALTIME_RUNTIME_HANDLER}": {"runtime_type": "io.containerd.runc.v2"},
            f"{runtimes}.{REALTIME_RUNTIME_HANDLER}.options": {
                "SystemdCgroup": False,
                "BinaryName": str(realtime_runtime),
            },
            f"{cri}.cni": {"bin_dir": "/usr/lib/cni", "conf_dir": str(paths.cni_conf_dir), "max_conf_num": 1},
            'plugins."io.containerd.internal.v1.opt"': {"path": str(paths.root / "containerd" / "opt")},
        },
        {
            "version": 2,
            "root": str(paths.containerd_root),
            "state": str(paths.containerd_state),
            "oom_score": 0,
            "disabled_plugins": [
                "io.containerd.snapshotter.v1.aufs",
                "io.containerd.snapshotter.v1.btrfs",
                "io.containerd.snapshotter.v1.devmapper",
                "io.containerd.snapshotter.v1.zfs",
                "io.containerd.tracing.processor.v1.otlp",
            ],
        },
    )


def cni_config(spec: RealNodeSpec, paths: RealNodePaths) -> dict[str, Any]:
    """A bridge inside the node's namespace; host-local addresses from the node's pod CIDR. No masquerading: the
    pod network has no way out of the namespace, by design."""
    return {
        "cniVersion": "0.4.0",
        "name": "shopfloor-pods",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cni0",
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": spec.pod_cidr, "gateway": spec.pod_gateway}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(paths.cni_state / "networks"),
                },
            },
            {"type": "loopback"},
        ],
    }


def kubelet_config(spec: RealNodeSpec, paths: RealNodePaths, client_ca: Path) -> dict[str, Any]:
    """KubeletConfiguration for an edge node with exclusive CPUs, on a cgroup v1 host without CAP_SYS_RESOURCE."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": spec.node_ip,
        "port": KUBELET_PORT,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(client_ca)},
        },
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": f"unix://{paths.containerd_socket}",
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": spec.cgroup_root,
        "cgroupsPerQOS": True,
        "failSwapOn": False,
        "failCgroupV1": False,
        # Exclusive cores for Guaranteed pods with whole CPUs: what a PLC's scan needs.
        "cpuManagerPolicy": "static",
        "reservedSystemCPUs": spec.reserved_cpus,
        "cpuManagerReconcilePeriod": "5s",
        "oomScoreAdj": 0,
        "maxPods": spec.max_pods,
        "podLogsDir": str(paths.pod_logs),
        "resolvConf": str(paths.resolv_conf),
        "clusterDNS": [spec.cluster_dns],
        "clusterDomain": "cluster.local",
        "serializeImagePulls": False,
        "registerNode": True,
        "registerWithTaints": [{"key": REALTIME_TAINT_KEY, "value": "true", "effect": "NoSchedule"}],
        # The site's node lifecycle controller declares a node lost after 8 s; renew well inside that.
        "nodeLeaseDurationSeconds": 4,
        "nodeStatusUpdateFrequency": "2s",
        "nodeStatusReportFrequency": "30s",
        "syncFrequency": "10s",
        "shutdownGracePeriod": "0s",
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "localStorageCapacityIsolation": True,
    }


def kubelet_args(spec: RealNodeSpec, paths: RealNodePaths, kubelet: Path) -> list[str]:
    node_labels = ",".join(
        f"{key}={value}" for key, value in sorted(spec.labels.items()) if not _kubelet_may_not_set(key)
    )
    return [
        str(kubelet),
        f"--config={paths.kubelet_config}",
        f"--kubeconfig={paths.kubelet_kubeconfig}",
        f"--root-dir={paths.kubelet_root}",
        f"--cert-dir={paths.kubelet_root / 'pki'}",
        f"--hostname-override={spec.name}",
        f"--node-ip={spec.node_ip}",
        f"--node-labels={node_labels}",
        "--v=0",
    ]


def _kubelet_may_not_set(label: str) -> bool:
    """A kubelet may not set labels in kubernetes.io namespaces other than its own (node-role.* among them); the
    site sets those on the Node object once it registered."""
    namespace = label.partition("/")[0] if "/" in label else ""
    restricted = namespace == "kubernetes.io" or namespace.endswith(".kubernetes.io")
    allowed = namespace in ("kubelet.kubernetes.io", "node.kubernetes.io") or namespace.endswith(
        (".kubelet.kubernetes.io", ".node.kubernetes.io")
    )
    return restricted and not allowed


def labels_set_after_registration(spec: RealNodeSpec) -> dict[str, str]:
    return {key: value for key, value in spec.labels.items() if _kubelet_may_not_set(key)}


def realtime_policy(spec: RealNodeSpec) -> dict[str, Any]:
    """What the node's real-time runtime handler grants a container: its policy file, in the handler's own form."""
    policy = RealtimePolicy(
        cgroup_root=spec.cgroup_root, pod_budget_us=spec.realtime_pod_budget_us, max_priority=spec.realtime_max_priority
    )
    return policy.document()
