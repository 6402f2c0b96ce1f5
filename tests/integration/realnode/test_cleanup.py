"""A site killed with SIGKILL while its real node runs a pod leaves nothing once the next start has cleaned up:
no process, cgroup, network namespace or mount of the node, and the kernel sysctls its kubelet changed restored.

The site runs in a child process (the way a test run or `make cluster-up` would), is killed without a chance to
stop anything, and the test then does what the next start of a real node does first (realnode.remove_abandoned).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from shopfloor_localsite.build import locate
from shopfloor_localsite.controlplane import remove_abandoned_workdirs
from shopfloor_localsite.realnode import (
    CGROUP_MOUNT,
    KUBELET_SYSCTLS,
    OwnerRecord,
    preflight,
    remove_abandoned,
)
from tests.support.waiting import wait_for

NODE = "real-rt-1"
REPO = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.timeout(600)

SITE = """
import sys, time
from kubernetes import client
from shopfloor_localsite.controlplane import ControlPlaneOptions, LocalControlPlane
from shopfloor_localsite.images import PAUSE_IMAGE
from shopfloor_localsite.realnode_config import RealNodeSpec

plane = LocalControlPlane(ControlPlaneOptions(nodes=[], real_nodes=[RealNodeSpec()]))
plane.start()
core = client.CoreV1Api(plane.api_client())
container = {"name": "p", "image": PAUSE_IMAGE, "imagePullPolicy": "Never"}
tolerations = [{"key": "shopfloor.io/realtime", "operator": "Exists"}]
spec = {"nodeName": "real-rt-1", "tolerations": tolerations, "containers": [container]}
core.create_namespaced_pod("default", {"metadata": {"name": "left-behind"}, "spec": spec})
while core.read_namespaced_pod("left-behind", "default").status.phase != "Running":
    time.sleep(0.2)
print("RUNNING", flush=True)
time.sleep(3600)
"""


def sysctls() -> dict[str, str]:
    return {name: (Path("/proc/sys") / name).read_text().strip() for name in KUBELET_SYSCTLS}


def node_pids(cgroup_root: str) -> list[int]:
    pids: list[int] = []
    for procs in (CGROUP_MOUNT / "pids" / cgroup_root.lstrip("/")).rglob("cgroup.procs"):
        pids += [int(line) for line in procs.read_text().split()]
    return pids


def netns_names() -> list[str]:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout.split()


def test_a_killed_site_leaves_nothing_after_the_next_start_cleans_up() -> None:
    problems = preflight(locate().kubelet)
    if problems:
        pytest.skip(f"this machine cannot run a real node: {'; '.join(problems)}")
    before = sysctls()
    site = subprocess.Popen(
        [sys.executable, "-c", SITE], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO
    )
    try:
        assert site.stdout is not None
        line = site.stdout.readline()  # the child's own timeout is this test's: it prints once the pod runs
        assert line.strip() == "RUNNING", "the site in the child did not get its pod running"
        record = OwnerRecord.load(NODE)
        assert record is not None and record.pid == site.pid
        assert record.netns in netns_names()
        assert sysctls() != before or before == record.sysctls  # the kubelet set its values (unless they were so)
    finally:
        os.kill(site.pid, signal.SIGKILL)
        site.wait(timeout=30)
    # What a killed site leaves: the pod's shim and container outlive it (they are nobody's children), and with them
    # the node's cgroups and its network namespace.
    assert node_pids(record.cgroup_root), "the pod should have outlived its killed site"
    assert record.netns in netns_names()
    remove_abandoned(NODE)
    wait_for(lambda: not node_pids(record.cgroup_root), 30, 0.2, "every process of the node gone")
    assert not any((hierarchy / record.cgroup_root.lstrip("/")).exists() for hierarchy in CGROUP_MOUNT.iterdir())
    assert record.netns not in netns_names()
    assert sysctls() == before
    assert OwnerRecord.load(NODE) is None
    mounts = Path("/proc/self/mounts").read_text()
    assert "/real-rt-1/" not in mounts and "shopfloor-cp-" not in mounts
    remove_abandoned_workdirs()  # the killed control plane's work directory, as its next start does
