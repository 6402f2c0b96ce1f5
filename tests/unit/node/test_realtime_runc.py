"""The real-time runtime handler's grant, without a container runtime: which containers it applies to, what it
adds to the OCI spec, and the cgroup budgets it writes so the kernel admits the container's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shopfloor_node.realtime_runc import (
    RealtimePolicy,
    bundle_of_create,
    grant_budget_in_spec,
    grant_capabilities,
    grants_apply,
    plan_ancestor_budgets,
)

POLICY = RealtimePolicy(cgroup_root="/shopfloor-real-rt-1", pod_budget_us=400_000)
POD = "/shopfloor-real-rt-1/kubepods/pod1234"
CONTAINER = f"{POD}/abcdef"


def app_container_spec(cgroups_path: str = CONTAINER, container_type: str = "container") -> dict[str, Any]:
    return {
        "annotations": {
            "io.kubernetes.cri.container-type": container_type,
            "io.kubernetes.cri.sandbox-namespace": "plant",
        },
        "process": {"capabilities": {"bounding": ["CAP_NET_BIND_SERVICE"], "effective": []}},
        "linux": {"cgroupsPath": cgroups_path, "resources": {"cpu": {"shares": 1024}}},
    }


def test_only_create_carries_a_bundle_and_its_flag_forms_are_understood(tmp_path: Path) -> None:
    assert bundle_of_create(["--root", "/r", "start", "abc"]) is None
    assert bundle_of_create(["--root", "/r", "--log", "x", "create", "--bundle", str(tmp_path), "abc"]) == tmp_path
    assert bundle_of_create(["create", f"--bundle={tmp_path}", "abc"]) == tmp_path
    assert bundle_of_create(["create", "-b", str(tmp_path), "abc"]) == tmp_path


def test_the_grant_is_for_app_containers_inside_the_nodes_pod_cgroups_only() -> None:
    assert grants_apply(app_container_spec(), POLICY)
    assert not grants_apply(app_container_spec(container_type="sandbox"), POLICY)
    assert not grants_apply(app_container_spec("/other-root/kubepods/pod1/c"), POLICY)
    # A sibling root whose name starts the same is not inside the node's root.
    assert not grants_apply(app_container_spec("/shopfloor-real-rt-10/kubepods/pod1/c"), POLICY)
    assert not grants_apply(app_container_spec(), RealtimePolicy(cgroup_root=POLICY.cgroup_root, namespaces=("a",)))


def test_capabilities_reach_every_set_including_ambient_so_a_non_root_process_keeps_them() -> None:
    spec = app_container_spec()
    grant_capabilities(spec, POLICY)
    grant_capabilities(spec, POLICY)  # twice changes nothing
    caps = spec["process"]["capabilities"]
    assert caps["ambient"] == ["CAP_SYS_NICE", "CAP_IPC_LOCK"]
    assert caps["bounding"] == ["CAP_NET_BIND_SERVICE", "CAP_SYS_NICE", "CAP_IPC_LOCK"]
    assert set(caps) == {"bounding", "effective", "permitted", "inheritable", "ambient"}


def test_the_container_budget_goes_into_the_spec_for_runc_to_write() -> None:
    spec = app_container_spec()
    grant_budget_in_spec(spec, POLICY)
    assert spec["linux"]["resources"]["cpu"] == {
        "shares": 1024,
        "realtimePeriod": 1_000_000,
        "realtimeRuntime": 400_000,
    }


class CgroupTree:
    def __init__(self, budgets: dict[str, int]) -> None:
        self.budgets = budgets

    def read(self, group: str) -> int:
        return self.budgets.get(group, 0)

    def children(self, group: str) -> list[str]:
        depth = group.count("/") + 1
        return [g for g in self.budgets if g.startswith(group + "/") and g.count("/") == depth]


def test_a_first_pod_raises_kubepods_and_its_pod_group_top_down() -> None:
    tree = CgroupTree({"/shopfloor-real-rt-1": 800_000, "/shopfloor-real-rt-1/kubepods": 0, POD: 0})
    plan = plan_ancestor_budgets(CONTAINER, POLICY, tree.read, tree.children)
    assert plan == [("/shopfloor-real-rt-1/kubepods", 400_000), (POD, 400_000)]


def test_a_second_pod_makes_room_next_to_the_first_and_a_granted_one_needs_no_write() -> None:
    other = "/shopfloor-real-rt-1/kubepods/pod9999"
    tree = CgroupTree(
        {
            "/shopfloor-real-rt-1": 800_000,
            "/shopfloor-real-rt-1/kubepods": 400_000,
            other: 400_000,
            f"{other}/c": 400_000,
            POD: 0,
        }
    )
    plan = plan_ancestor_budgets(CONTAINER, POLICY, tree.read, tree.children)
    assert plan == [("/shopfloor-real-rt-1/kubepods", 800_000), (POD, 400_000)]
    granted = CgroupTree({**tree.budgets, "/shopfloor-real-rt-1/kubepods": 800_000, POD: 400_000})
    assert plan_ancestor_budgets(CONTAINER, POLICY, granted.read, granted.children) == []


def test_a_burstable_pod_has_one_more_level_to_raise() -> None:
    pod = "/shopfloor-real-rt-1/kubepods/burstable/pod1"
    tree = CgroupTree({"/shopfloor-real-rt-1/kubepods": 0, "/shopfloor-real-rt-1/kubepods/burstable": 0, pod: 0})
    plan = plan_ancestor_budgets(f"{pod}/c", POLICY, tree.read, tree.children)
    assert [group for group, _ in plan] == [
        "/shopfloor-real-rt-1/kubepods",
        "/shopfloor-real-rt-1/kubepods/burstable",
        pod,
    ]


def test_policy_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({"cgroupRoot": "/x", "podBudgetUs": 100, "namespaces": ["plant"]}))
    policy = RealtimePolicy.load(path)
    assert (policy.cgroup_root, policy.pod_budget_us, policy.namespaces) == ("/x", 100, ("plant",))
    assert policy.capabilities == ("CAP_SYS_NICE", "CAP_IPC_LOCK")
