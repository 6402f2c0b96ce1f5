"""The real node (real-rt-1: a kubelet and containerd on this machine), each figure next to its reference in one run:

1. scan wake-up lateness p50/p99/max at 10 ms and 1 ms, SCHED_FIFO 80, inside a real container with one exclusive
   CPU (static CPU manager, the real-time RuntimeClass), next to the bare clock_nanosleep loop on the host pinned to
   the same CPU at the same priority (goal: the container's scan p99 within 1.5x of the host's bare loop);
2. pod create -> first Modbus answer on the real node: a VirtualPLC through the operator vs a plain pod of the same
   image running a plain pymodbus server;
3. image build: cached (nothing changed), and cold into an empty cache with COLD=1 (debootstrap included).

Run as root: .venv/bin/python bench/bench_realnode.py (QUICK=1 shortens the lateness phases; COLD=1 adds the cold
image build, about 2 minutes).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pymodbus.client import ModbusTcpClient

sys.path.insert(0, str(Path(__file__).parent))
import bench_vplc

from shopfloor_localsite.images import VPLC_IMAGE, ensure_images
from shopfloor_localsite.realnode import RealNode
from shopfloor_localsite.realnode_config import REALTIME_RUNTIME_HANDLER
from shopfloor_localsite.site.edgesite import EdgeSite, SiteOptions

QUICK = os.environ.get("QUICK") == "1"
SECONDS = 2.0 if QUICK else 6.0
PRIORITY = 80
EXCLUSIVE_CPU = 1
NODE = "real-rt-1"
NAMESPACE = "bench-rt"
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted"}
SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
}
POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "runAsGroup": 65532,
    "seccompProfile": {"type": "RuntimeDefault"},
}
ONE_CPU = {"cpu": "1", "memory": "256Mi"}

IN_CONTAINER = f"""
import json, sys
sys.path.insert(0, "/bench")
import bench_vplc as b
result = {{}}
for period_ms in (10, 1):
    period = period_ms * 1_000_000
    bare = b.bare_loop(period, {SECONDS}, {PRIORITY})
    scan = b.engine_lateness(period, {SECONDS}, {PRIORITY})
    result[period_ms] = {{"bare": b.percentiles(bare), "scan": b.percentiles(scan.lateness), "overruns": scan.overruns}}
import os
result["cpus"] = sorted(os.sched_getaffinity(0))
print("RESULT " + json.dumps(result), flush=True)
"""

PLAIN_MODBUS = """
import asyncio
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice
async def main():
    device = SimDevice(1, simdata=[SimData(0, count=10, values=0, datatype=DataType.REGISTERS)])
    await ModbusTcpServer(device, address=("0.0.0.0", 5020)).serve_forever()
asyncio.run(main())
"""


def pod(
    name: str, args: list[str], restart: str = "Never", volumes: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "nodeName": NODE,
            "runtimeClassName": REALTIME_RUNTIME_HANDLER,
            "restartPolicy": restart,
            "automountServiceAccountToken": False,
            "tolerations": [{"key": "shopfloor.io/realtime", "operator": "Exists"}],
            "securityContext": POD_SECURITY,
            "containers": [
                {
                    "name": "main",
                    "image": VPLC_IMAGE,
                    "imagePullPolicy": "Never",
                    "command": ["python3", "-c", *args],
                    "resources": {"requests": ONE_CPU, "limits": ONE_CPU},
                    "securityContext": SECURITY,
                    "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}]
                    + [{"name": v["name"], "mountPath": "/bench"} for v in volumes or []],
                }
            ],
            "volumes": [{"name": "tmp", "emptyDir": {"medium": "Memory"}}] + (volumes or []),
        },
    }


def wait(condition: Any, timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = condition()
        except (ApiException, OSError):
            result = None
        if result:
            return result
        time.sleep(interval)
    raise TimeoutError(what)


def delete_and_wait(core: client.CoreV1Api, name: str) -> None:
    core.delete_namespaced_pod(name, NAMESPACE, grace_period_seconds=5)

    def gone() -> bool:
        try:
            core.read_namespaced_pod(name, NAMESPACE)
        except ApiException as error:
            return error.status == 404
        return False

    wait(gone, 60, f"{name} gone", 0.2)


def container_log(node: RealNode, pod_name: str) -> str:
    return "\n".join(path.read_text() for path in node.paths.pod_logs.glob(f"{NAMESPACE}_{pod_name}_*/*/*.log"))


def host_lateness() -> dict[int, dict[str, Any]]:
    os.sched_setaffinity(0, {EXCLUSIVE_CPU})
    try:
        result: dict[int, dict[str, Any]] = {}
        for period_ms in (10, 1):
            period = period_ms * 1_000_000
            result[period_ms] = {"bare": bench_vplc.percentiles(bench_vplc.bare_loop(period, SECONDS, PRIORITY))}
        return result
    finally:
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))


def container_lateness(site: EdgeSite, node: RealNode) -> dict[str, Any]:
    core = client.CoreV1Api(site.api)
    source = (Path(__file__).parent / "bench_vplc.py").read_text()
    core.create_namespaced_config_map(NAMESPACE, {"metadata": {"name": "bench"}, "data": {"bench_vplc.py": source}})
    core.create_namespaced_pod(
        NAMESPACE, pod("lateness", [IN_CONTAINER], volumes=[{"name": "bench", "configMap": {"name": "bench"}}])
    )
    wait(
        lambda: core.read_namespaced_pod("lateness", NAMESPACE).status.phase in ("Succeeded", "Failed"), 120, "done", 1
    )
    log = container_log(node, "lateness")
    delete_and_wait(core, "lateness")
    line = next((x for x in log.splitlines() if "RESULT " in x), None)
    if line is None:
        raise RuntimeError(f"no result from the container:\n{log[-3000:]}")
    return dict(json.loads(line.split("RESULT ", 1)[1]))


def first_modbus_answer(node: RealNode, core: client.CoreV1Api, pod_name: str, started: float) -> float:
    def address() -> str | None:
        pods = core.list_namespaced_pod(NAMESPACE).items
        return next((p.status.pod_ip for p in pods if p.metadata.name.startswith(pod_name) and p.status.pod_ip), None)

    ip = wait(address, 120, f"{pod_name} address")
    port = node.forward(ip, 5020)

    def answers() -> bool:
        modbus = ModbusTcpClient("127.0.0.1", port=port, timeout=0.5, retries=0)
        try:
            return bool(modbus.connect() and not modbus.read_holding_registers(0, count=1, device_id=1).isError())
        except Exception:
            return False
        finally:
            modbus.close()

    wait(answers, 120, f"{pod_name} answering Modbus", 0.02)
    return time.monotonic() - started


PLC = {
    "apiVersion": "shopfloor.io/v1alpha1",
    "kind": "VirtualPLC",
    "metadata": {"name": "bench-plc", "namespace": NAMESPACE},
    "spec": {
        "program": {
            "entrypoint": "Main",
            "source": "PROGRAM Main\nVAR\n  Count : INT;\nEND_VAR\nCount := Count + 1;\nEND_PROGRAM\n",
        },
        "cycleTime": "10ms",
        "realtimePriority": PRIORITY,
        "resources": {"cpus": 1, "memory": "256Mi"},
        "placement": {"realtime": "Required", "nodeName": NODE, "runtimeClassName": REALTIME_RUNTIME_HANDLER},
        "io": {
            "modbus": {
                "enabled": True,
                "port": 5020,
                "map": [{"variable": "Count", "table": "holdingRegisters", "address": 0}],
            }
        },
    },
}


def startup(site: EdgeSite, node: RealNode) -> tuple[float, float]:
    core = client.CoreV1Api(site.api)
    started = time.monotonic()
    core.create_namespaced_pod(NAMESPACE, pod("plain-modbus", [PLAIN_MODBUS], restart="Always"))
    plain = first_modbus_answer(node, core, "plain-modbus", started)
    delete_and_wait(core, "plain-modbus")
    started = time.monotonic()
    site.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(PLC))
    ours = first_modbus_answer(node, core, "bench-plc-", started)
    site.kubectl("delete", "virtualplc", "-n", NAMESPACE, "bench-plc", "--wait=true")
    return plain, ours


def image_builds() -> list[str]:
    lines = []
    started = time.monotonic()
    ensure_images()
    lines.append(f"images cached (nothing changed): {time.monotonic() - started:.2f} s")
    if os.environ.get("COLD") == "1":
        with tempfile.TemporaryDirectory(prefix="shopfloor-cold-images-") as cache:
            os.environ["SHOPFLOOR_CACHE_DIR"] = cache
            try:
                started = time.monotonic()
                ensure_images()
                lines.append(f"images cold (empty cache, debootstrap included): {time.monotonic() - started:.1f} s")
            finally:
                del os.environ["SHOPFLOOR_CACHE_DIR"]
    return lines


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt("SIGTERM")


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupt)  # a terminated run stops the real node like Ctrl-C does
    lines = image_builds()
    host = host_lateness()
    site = EdgeSite(SiteOptions(realtime_nodes=1, general_nodes=0, real_nodes=1, broker=False, plant=False))
    site.start()
    try:
        node = site.plane.real_nodes[NODE]
        client.CoreV1Api(site.api).create_namespace({"metadata": {"name": NAMESPACE, "labels": RESTRICTED}})
        inside = container_lateness(site, node)
        plain, ours = startup(site, node)
    finally:
        site.stop()
    lines.append(f"container CPU affinity: {inside['cpus']} (exclusive; CPU 0 is the node's reserved CPU)")
    for period_ms in (10, 1):
        bare_host = host[period_ms]["bare"]
        bare_inside, scan_inside = inside[str(period_ms)]["bare"], inside[str(period_ms)]["scan"]
        lines.append(
            f"lateness {period_ms:>2} ms host bare loop (CPU {EXCLUSIVE_CPU}, FIFO {PRIORITY}): "
            f"{bench_vplc.fmt(bare_host)}"
        )
        lines.append(
            f"lateness {period_ms:>2} ms container bare loop:              {bench_vplc.fmt(tuple(bare_inside))}"
        )
        lines.append(
            f"lateness {period_ms:>2} ms container scan:                   {bench_vplc.fmt(tuple(scan_inside))}"
            f"  p99 ratio vs host bare {scan_inside[1] / bare_host[1]:.2f}x (goal <= 1.5x)"
            f"  overruns {inside[str(period_ms)]['overruns']}"
        )
    lines.append(
        f"pod create -> first Modbus answer: plain pymodbus pod {plain:.2f} s, "
        f"VirtualPLC {ours:.2f} s ({ours / plain:.2f}x)"
    )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
