"""Benchmark of the operator on the real local control plane with 50 simulated real-time nodes.

    python bench/bench_operator.py [--sizes 100,1000] [--nodes 50]

For each size N, in a fresh namespace each:
  plain     N pods created directly (the same pod the operator builds, 8 client threads): time until every pod is
            Running on a node.
  operator  N VirtualPLCs created (8 client threads) and reconciled by `shopfloor-operator` in a subprocess: time
            until every VirtualPLC's pod is Running on an eligible (real-time) node and its status names that pod
            and node with Scheduled=True.
Prints the ratio operator/plain, reconcile p50/p99 (interpolated from the operator's histogram), the operator's
peak RSS, and API requests sent by the reconcilers per VirtualPLC (kopf's watches not included).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes import client, config

REPO = Path(__file__).resolve().parents[1]
for root in ("operator", "workloads", "localsite"):
    sys.path.insert(0, str(REPO / root))

from shopfloor_api import parse_manifest  # noqa: E402
from shopfloor_localsite.controlplane import ControlPlaneOptions, LocalControlPlane  # noqa: E402
from shopfloor_localsite.nodes import SimulatedNode  # noqa: E402
from shopfloor_localsite.processes import free_port  # noqa: E402
from shopfloor_operator.builders.pod import pod  # noqa: E402
from shopfloor_operator.builders.workloads import plc_workload  # noqa: E402
from shopfloor_operator.settings import OperatorSettings  # noqa: E402

SOURCE = "PROGRAM Main\nVAR Level : REAL; END_VAR\nLevel := Level + 1.0;\nEND_PROGRAM\n"
REALTIME_LABEL = "feature.node.kubernetes.io/kernel-config.PREEMPT_RT"
CLIENT_THREADS = 8


def plc_manifest(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "shopfloor.io/v1alpha1",
        "kind": "VirtualPLC",
        "metadata": {"name": name},
        "spec": {"program": {"source": SOURCE}},
    }


def plain_pod(namespace: str, name: str) -> dict[str, Any]:
    """The pod the operator would build for this PLC, without an owner."""
    manifest = parse_manifest({**plc_manifest(name), "metadata": {"name": name, "namespace": namespace, "uid": name}})
    built = pod(plc_workload(manifest, OperatorSettings()), OperatorSettings(), 0)  # type: ignore[arg-type]
    built["metadata"].pop("ownerReferences")
    built["spec"]["serviceAccountName"] = "default"
    return built


def new_namespace(core: client.CoreV1Api) -> str:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            core.read_namespaced_service_account("default", name)
            return name
        except client.ApiException:
            time.sleep(0.2)
    raise RuntimeError("namespace never got its default ServiceAccount")


def running_pods(core: client.CoreV1Api, namespace: str) -> dict[str, str]:
    pods = core.list_namespaced_pod(namespace).items
    return {p.metadata.name: p.spec.node_name for p in pods if p.status.phase == "Running" and p.spec.node_name}


def bench_plain(core: client.CoreV1Api, count: int) -> float:
    namespace = new_namespace(core)
    manifests = [plain_pod(namespace, f"plc-{index}") for index in range(count)]
    started = time.monotonic()
    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        list(pool.map(lambda manifest: core.create_namespaced_pod(namespace, manifest), manifests))
    while len(running_pods(core, namespace)) < count:
        time.sleep(0.2)
    elapsed = time.monotonic() - started
    delete_and_wait(core, namespace)
    return elapsed


def delete_and_wait(core: client.CoreV1Api, namespace: str) -> None:
    """Gone for real: terminating pods still hold their cpus, which would skew the next measurement."""
    core.delete_namespace(namespace)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            core.read_namespace(namespace)
        except client.ApiException as error:
            if error.status == 404:
                return
            raise
        time.sleep(0.5)
    raise RuntimeError(f"namespace {namespace} was not deleted within 300 s")


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return str(response.read().decode())


def histogram_quantile(text: str, name: str, quantile: float) -> float:
    """Linear interpolation inside the bucket holding the quantile, as Prometheus does."""
    buckets: list[tuple[float, float]] = []
    for line in text.splitlines():
        if line.startswith(f"{name}_bucket{{") and 'controller="virtualplc"' in line:
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float("inf") if bound == "+Inf" else float(bound), float(line.rsplit(" ", 1)[1])))
    buckets.sort()
    total = buckets[-1][1]
    rank = quantile * total
    previous_bound, previous_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return previous_bound
            share = (rank - previous_count) / max(count - previous_count, 1e-9)
            return previous_bound + (bound - previous_bound) * share
        previous_bound, previous_count = bound, count
    return previous_bound


def samples(text: str, name: str) -> dict[str, float]:
    """Every sample of one metric, by its label text."""
    found = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            labels, value = line[len(name) :].rsplit(" ", 1)
            found[labels] = float(value)
    return found


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def converged(custom: client.CustomObjectsApi, core: client.CoreV1Api, namespace: str, count: int, rt: set[str]) -> int:
    running = running_pods(core, namespace)
    items = custom.list_namespaced_custom_object("shopfloor.io", "v1alpha1", namespace, "virtualplcs")["items"]
    done = 0
    for item in items:
        status = item.get("status") or {}
        scheduled = any(c["type"] == "Scheduled" and c["status"] == "True" for c in status.get("conditions") or [])
        node = running.get(status.get("podName", ""))
        if scheduled and node in rt and status.get("nodeName") == node:
            done += 1
    return done


def bench_operator(
    kubeconfig: Path, api: client.ApiClient, count: int, rt: set[str], workdir: Path
) -> dict[str, float]:
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    namespace = new_namespace(core)
    port = free_port()
    environment = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "SHOPFLOOR_NAMESPACES": namespace,
        "SHOPFLOOR_STANDALONE": "true",
        "SHOPFLOOR_METRICS_PORT": str(port),
        "SHOPFLOOR_LIVENESS_ENDPOINT": f"http://127.0.0.1:{free_port()}/healthz",
        "PYTHONPATH": os.pathsep.join(str(REPO / root) for root in ("operator", "workloads", "localsite")),
    }
    log = (workdir / f"operator-{count}.log").open("wb")
    operator = subprocess.Popen(
        [sys.executable, "-m", "shopfloor_operator.main"], env=environment, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                scrape(port)
                break
            except OSError:
                time.sleep(0.2)
        started = time.monotonic()
        with ThreadPoolExecutor(CLIENT_THREADS) as pool:
            list(
                pool.map(
                    lambda index: custom.create_namespaced_custom_object(
                        "shopfloor.io", "v1alpha1", namespace, "virtualplcs", plc_manifest(f"plc-{index}")
                    ),
                    range(count),
                )
            )
        while converged(custom, core, namespace, count, rt) < count:
            if operator.poll() is not None:
                raise RuntimeError(f"the operator exited; see {log.name}")
            time.sleep(0.5)
        elapsed = time.monotonic() - started
        text = scrape(port)
        result = {
            "seconds": elapsed,
            "p50": histogram_quantile(text, "shopfloor_reconcile_time_seconds", 0.5),
            "p99": histogram_quantile(text, "shopfloor_reconcile_time_seconds", 0.99),
            "rss": peak_rss_mib(operator.pid),
            "requests_per_plc": sum(samples(text, "shopfloor_api_requests_total").values()) / count,
        }
        requests = samples(text, "shopfloor_api_requests_total")
        top = sorted(requests.items(), key=lambda item: -item[1])[:8]
        print("  requests per PLC by kind: " + ", ".join(f"{k} {v / count:.1f}" for k, v in top), flush=True)
        reasons = Counter(
            event.reason
            for event in core.list_namespaced_event(namespace).items
            if event.involved_object.kind == "VirtualPLC"
        )
        print("  Events per PLC by reason: " + ", ".join(f"{k} {v / count:.1f}" for k, v in reasons.most_common()))
        # While the operator still runs: kopf's finalizer on each VirtualPLC needs it to let go, and kopf stops
        # serving a namespace once it is terminating, so the VirtualPLCs go first.
        custom.delete_collection_namespaced_custom_object("shopfloor.io", "v1alpha1", namespace, "virtualplcs")
        while custom.list_namespaced_custom_object("shopfloor.io", "v1alpha1", namespace, "virtualplcs")["items"]:
            time.sleep(0.5)
        delete_and_wait(core, namespace)
    finally:
        operator.terminate()
        try:
            operator.wait(timeout=30)
        except subprocess.TimeoutExpired:
            operator.kill()
        log.close()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,1000")
    parser.add_argument("--nodes", type=int, default=50)
    args = parser.parse_args()
    nodes = [
        SimulatedNode(name=f"edge-rt-{i}", realtime=True, cpus=32, memory="64Gi", address_index=i)
        for i in range(1, args.nodes + 1)
    ]
    plane = LocalControlPlane(ControlPlaneOptions(nodes=nodes))
    plane.start()
    try:
        api = config.new_client_from_config(str(plane.kubeconfig))
        extensions = client.ApiextensionsV1Api(api)
        import yaml

        for path in sorted((REPO / "crds").glob("*.yaml")):
            for document in yaml.safe_load_all(path.read_text()):
                extensions.create_custom_resource_definition(document)
        time.sleep(2)  # CRDs become Established within a moment; the first create retries below otherwise
        rt = {node.name for node in nodes}
        core = client.CoreV1Api(api)
        print(f"{args.nodes} simulated real-time nodes; kube-apiserver and the operator on this machine's cores")
        print(
            f"{'PLCs':>6} {'plain pods s':>13} {'operator s':>11} {'ratio':>6} {'p50 ms':>7} {'p99 ms':>7} "
            f"{'RSS MiB':>8} {'req/PLC':>8}"
        )
        with tempfile.TemporaryDirectory(prefix="bench-operator-") as workdir:
            for count in (int(size) for size in args.sizes.split(",")):
                plain = bench_plain(core, count)
                result = bench_operator(plane.kubeconfig, api, count, rt, Path(workdir))
                print(
                    f"{count:>6} {plain:>13.1f} {result['seconds']:>11.1f} {result['seconds'] / plain:>6.1f} "
                    f"{result['p50'] * 1000:>7.1f} {result['p99'] * 1000:>7.1f} {result['rss']:>8.0f} "
                    f"{result['requests_per_plc']:>8.1f}",
                    flush=True,
                )
    finally:
        plane.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
