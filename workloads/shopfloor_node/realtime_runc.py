"""`shopfloor-realtime-runc`: the runc a real-time RuntimeClass's handler runs, so a non-root PLC gets SCHED_FIFO.

Two things stop a pod's non-root process from running SCHED_FIFO, even on a PREEMPT_RT node:
- Kubernetes puts added capabilities in the bounding, effective and permitted sets, but not the ambient set, and
  a non-root process loses them at exec: `capabilities.add: [SYS_NICE]` does nothing for uid 65532.
- On kernels with CONFIG_RT_GROUP_SCHED (cgroup v1 hosts), a cgroup without a real-time budget
  (`cpu.rt_runtime_us` = 0, what every new pod cgroup gets) may not run SCHED_FIFO tasks at all: EPERM.

This wrapper is the node administrator's grant, named by a RuntimeClass: for the app containers of pods that use
it, it adds CAP_SYS_NICE and CAP_IPC_LOCK to every capability set (ambient included), gives the pod's cgroups a
bounded real-time budget (a FIFO loop that never sleeps is throttled at the budget, the node keeps running) and
then executes the real runc with the same arguments. Everything else passes through untouched. Standard library
only, so it can be copied onto a node as one file.

    shopfloor-realtime-runc --policy /etc/shopfloor/realtime-policy.json --runc /usr/sbin/runc -- <runc args>
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CPU_CGROUP = Path("/sys/fs/cgroup/cpu")
CONTAINER_TYPE_ANNOTATION = "io.kubernetes.cri.container-type"
CAPABILITY_SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")


@dataclass(frozen=True)
class RealtimePolicy:
    """What the node grants; written by the node's administrator (or the local site)."""

    cgroup_root: str = "/kubepods"
    pod_budget_us: int = 400_000
    period_us: int = 1_000_000
    capabilities: tuple[str, ...] = ("CAP_SYS_NICE", "CAP_IPC_LOCK")
    max_priority: int = 98
    namespaces: tuple[str, ...] = field(default=())  # empty: any namespace may use the RuntimeClass

    def document(self) -> dict[str, Any]:
        """The policy file's content (what load() reads)."""
        return {
            "cgroupRoot": self.cgroup_root,
            "podBudgetUs": self.pod_budget_us,
            "periodUs": self.period_us,
            "capabilities": list(self.capabilities),
            "maxPriority": self.max_priority,
            "namespaces": list(self.namespaces),
        }

    @classmethod
    def load(cls, path: Path) -> RealtimePolicy:
        raw = json.loads(path.read_text())
        return cls(
            cgroup_root=str(raw.get("cgroupRoot", cls.cgroup_root)),
            pod_budget_us=int(raw.get("podBudgetUs", cls.pod_budget_us)),
            period_us=int(raw.get("periodUs", cls.period_us)),
            capabilities=tuple(raw.get("capabilities", cls.capabilities)),
            max_priority=int(raw.get("maxPriority", cls.max_priority)),
            namespaces=tuple(raw.get("namespaces", ())),
        )


def bundle_of_create(args: Sequence[str]) -> Path | None:
    """The bundle directory of a `runc [global flags] create [--bundle B] ID` call; None for any other command."""
    if "create" not in args:
        return None
    rest = list(args[list(args).index("create") + 1 :])
    for index, arg in enumerate(rest):
        if arg in ("--bundle", "-b") and index + 1 < len(rest):
            return Path(rest[index + 1])
        if arg.startswith("--bundle="):
            return Path(arg.split("=", 1)[1])
    return Path.cwd()


def grants_apply(spec: dict[str, Any], policy: RealtimePolicy) -> bool:
    """App containers only (not the pod's sandbox), inside the node's pod cgroups, in an allowed namespace."""
    annotations = spec.get("annotations") or {}
    if annotations.get(CONTAINER_TYPE_ANNOTATION) != "container":
        return False
    cgroups_path = str((spec.get("linux") or {}).get("cgroupsPath", ""))
    if not cgroups_path.startswith(policy.cgroup_root.rstrip("/") + "/"):
        return False
    namespace = annotations.get("io.kubernetes.cri.sandbox-namespace", "")
    return not policy.namespaces or namespace in policy.namespaces


def grant_capabilities(spec: dict[str, Any], policy: RealtimePolicy) -> None:
    capabilities = spec.setdefault("process", {}).setdefault("capabilities", {})
    for name in CAPABILITY_SETS:
        present = list(capabilities.get(name) or [])
        capabilities[name] = present + [cap for cap in policy.capabilities if cap not in present]


def grant_budget_in_spec(spec: dict[str, Any], policy: RealtimePolicy) -> None:
    """runc writes the container cgroup's budget itself (it must exist before the process joins)."""
    cpu = spec.setdefault("linux", {}).setdefault("resources", {}).setdefault("cpu", {})
    cpu["realtimePeriod"] = policy.period_us
    cpu["realtimeRuntime"] = policy.pod_budget_us


def plan_ancestor_budgets(
    cgroups_path: str,
    policy: RealtimePolicy,
    read_budget: Callable[[str], int],
    child_groups: Callable[[str], list[str]],
) -> list[tuple[str, int]]:
    """The (cgroup, rt_runtime_us) writes, top-down, that let the container at `cgroups_path` have the pod budget.

    The kernel admits a group's budget only while its parent's covers all its children together, so each
    ancestor between the node's cgroup root (set up by the administrator) and the container needs at least the
    container's budget plus what its other children already hold."""
    root = policy.cgroup_root.rstrip("/")
    parts = cgroups_path.strip("/").split("/")
    root_depth = len(root.strip("/").split("/"))
    # Ancestors strictly below the node's root and above the container itself (runc makes that one).
    ancestors = ["/" + "/".join(parts[:depth]) for depth in range(root_depth + 1, len(parts))]
    needed = policy.pod_budget_us
    child = "/" + "/".join(parts)
    plan: list[tuple[str, int]] = []
    for group in reversed(ancestors):
        others = sum(read_budget(sibling) for sibling in child_groups(group) if sibling != child)
        needed = max(read_budget(group), needed + others)
        plan.append((group, needed))
        child = group
    plan.reverse()
    return [(group, budget) for group, budget in plan if budget != read_budget(group)]


def rt_group_scheduling() -> bool:
    """Whether the kernel budgets real time per cgroup (CONFIG_RT_GROUP_SCHED on cgroup v1). Without it (most
    distribution and PREEMPT_RT kernels) any task with CAP_SYS_NICE may run SCHED_FIFO: no budget to grant."""
    return (CPU_CGROUP / "cpu.rt_runtime_us").exists()


def _read_budget(group: str) -> int:
    try:
        return int((CPU_CGROUP / group.lstrip("/") / "cpu.rt_runtime_us").read_text())
    except (OSError, ValueError):
        return 0


def _child_groups(group: str) -> list[str]:
    directory = CPU_CGROUP / group.lstrip("/")
    try:
        return [f"{group.rstrip('/')}/{entry.name}" for entry in directory.iterdir() if entry.is_dir()]
    except OSError:
        return []


def grant(bundle: Path, policy: RealtimePolicy, log: Callable[[str], None]) -> None:
    config = bundle / "config.json"
    spec = json.loads(config.read_text())
    if not grants_apply(spec, policy):
        return
    cgroups_path = str(spec["linux"]["cgroupsPath"])
    if rt_group_scheduling():
        try:
            for group, budget in plan_ancestor_budgets(cgroups_path, policy, _read_budget, _child_groups):
                (CPU_CGROUP / group.lstrip("/") / "cpu.rt_runtime_us").write_text(str(budget))
        except OSError as error:
            # Without a budget SCHED_FIFO is refused; the container still starts and its runtime reports that.
            log(f"real-time budget for {cgroups_path} refused: {error}; starting without SCHED_FIFO")
            return
        grant_budget_in_spec(spec, policy)
    grant_capabilities(spec, policy)
    tmp = config.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(spec))
    os.replace(tmp, config)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    policy_path, runc = Path("/etc/shopfloor/realtime-policy.json"), "runc"
    while args and args[0] in ("--policy", "--runc"):
        flag, value, args = args[0], args[1], args[2:]
        if flag == "--policy":
            policy_path = Path(value)
        else:
            runc = value
    if args and args[0] == "--":
        args = args[1:]
    bundle = bundle_of_create(args)
    if bundle is not None:
        try:
            grant(bundle, RealtimePolicy.load(policy_path), lambda line: print(line, file=sys.stderr))
        except (OSError, ValueError, KeyError) as error:
            print(f"shopfloor-realtime-runc: no real-time grant: {error}", file=sys.stderr)
    os.execvp(runc, [runc, *args])
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main())
