"""The real node's configs, built without starting anything: what the kubelet, containerd and CNI are told."""

from __future__ import annotations

import tomllib
from pathlib import Path

from shopfloor_localsite.nodes import EDGE_ROLE_LABEL, REALTIME_LABEL, REALTIME_TAINT_KEY
from shopfloor_localsite.realnode_config import (
    REAL_NODE_LABEL,
    REALTIME_RUNTIME_HANDLER,
    RealNodePaths,
    RealNodeSpec,
    cni_config,
    containerd_config,
    kubelet_args,
    kubelet_config,
    labels_set_after_registration,
    real_node_specs,
    realtime_policy,
)

SPEC = RealNodeSpec()
PATHS = RealNodePaths(root=Path("/tmp/site/real-rt-1"))


def test_containerd_config_is_valid_toml_with_the_real_time_handler_and_the_sites_sandbox_image() -> None:
    config = tomllib.loads(containerd_config(PATHS, "localhost/shopfloor/pause:3.10", Path("/tmp/rt-runc")))
    assert config["version"] == 2 and config["root"] == str(PATHS.containerd_root)
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["sandbox_image"] == "localhost/shopfloor/pause:3.10"
    assert cri["restrict_oom_score_adj"] is True  # no CAP_SYS_RESOURCE on the site's machine
    runtimes = cri["containerd"]["runtimes"]
    assert runtimes[REALTIME_RUNTIME_HANDLER]["options"]["BinaryName"] == "/tmp/rt-runc"
    assert runtimes["runc"]["options"]["SystemdCgroup"] is False
    assert cri["cni"]["conf_dir"] == str(PATHS.cni_conf_dir)
    assert config["grpc"]["address"] == str(PATHS.containerd_socket)


def test_kubelet_gets_exclusive_cpus_a_private_cgroup_root_and_a_lease_inside_the_nodes_grace() -> None:
    config = kubelet_config(SPEC, PATHS, Path("/tmp/ca.crt"))
    assert (config["cpuManagerPolicy"], config["reservedSystemCPUs"]) == ("static", "0")
    assert config["cgroupRoot"] == "/shopfloor-real-rt-1" and config["cgroupDriver"] == "cgroupfs"
    assert config["failCgroupV1"] is False and config["oomScoreAdj"] == 0
    assert config["nodeLeaseDurationSeconds"] < 8  # the site's node-monitor-grace-period
    assert config["registerWithTaints"] == [{"key": REALTIME_TAINT_KEY, "value": "true", "effect": "NoSchedule"}]
    assert config["clusterDNS"] == [SPEC.cluster_dns] and config["address"] == SPEC.node_ip
    assert config["authentication"]["anonymous"]["enabled"] is False


def test_labels_the_kubelet_may_not_set_itself_are_set_after_registration() -> None:
    args = kubelet_args(SPEC, PATHS, Path("/bin/kubelet"))
    node_labels = next(a for a in args if a.startswith("--node-labels="))
    assert f"{REALTIME_LABEL}=true" in node_labels and f"{REAL_NODE_LABEL}=true" in node_labels
    assert EDGE_ROLE_LABEL not in node_labels
    assert labels_set_after_registration(SPEC) == {EDGE_ROLE_LABEL: ""}
    assert f"--node-ip={SPEC.node_ip}" in args and "--hostname-override=real-rt-1" in args


def test_pods_get_addresses_of_the_nodes_range_and_no_way_out() -> None:
    config = cni_config(SPEC, PATHS)
    bridge = config["plugins"][0]
    assert bridge["ipMasq"] is False
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.250.1.0/24", "gateway": "10.250.1.1"}]]
    assert bridge["ipam"]["dataDir"].startswith(str(PATHS.root))


def test_each_real_node_has_its_own_addresses_and_the_policy_bounds_the_grant() -> None:
    first, second = real_node_specs(2)
    assert (first.name, second.name) == ("real-rt-1", "real-rt-2")
    assert len({first.node_ip, second.node_ip}) == 2 and first.pod_cidr != second.pod_cidr
    assert first.pod_cidr == SPEC.pod_cidr and first.node_ip == SPEC.node_ip
    policy = realtime_policy(SPEC)
    assert policy["cgroupRoot"] == SPEC.cgroup_root
    assert policy["podBudgetUs"] < SPEC.realtime_budget_us
