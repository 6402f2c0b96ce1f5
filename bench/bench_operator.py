"""Benchmark of the operator on the real local control plane with simulated real-time nodes (kwok).

    python bench/bench_operator.py [--sizes 100,1000] [--nodes 50] [--baselines-up-to 1000] [--json]

For each size N, each measurement in a fresh namespace (deleted completely before the next one):
  plain         N pods created directly (the pod the operator builds, 8 client threads): time until every pod is
                Running on a node.
  same objects  everything the operator's first pass leaves behind, created directly from 8 client threads: per PLC
                the VirtualPLC itself, ServiceAccount, Role, RoleBinding, Lease, retain and runtime ConfigMaps,
                Service, NetworkPolicy and the pod. Time until every pod is Running.
  operator      N VirtualPLCs created (8 client threads) and reconciled by `shopfloor-operator` in a subprocess:
                time until every VirtualPLC's pod is Running on an eligible (real-time) node and its status names
                that pod and node with Scheduled=True.
  steady state  (sizes up to --steady-up-to) the runtimes' Leases are then played (held by the pod, reporting
                Running) until every PLC is Running on a verified revision; then the API server's own count of
                write requests other than Leases over --steady-seconds, per minute. Settled PLCs should cost none.
Reported per size: the ratios operator/plain and operator/same objects, reconcile p50/p99 (interpolated from the
operator's histogram), the operator's peak RSS, and API requests sent by the reconcilers per VirtualPLC (kopf's
own watches and patches are counted by the steady-state figure, which reads the API server's metrics).

No runtime runs in the kwok pods; the activation timeout is raised so that its absence is not what is measured.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch

REPO = Path(__file__).resolve().parents[1]
for root in ("operator", "workloads", "localsite"):
    sys.path.insert(0, str(REPO / root))

import yaml  # noqa: E402

from shopfloor_api import parse_manifest  # noqa: E402
from shopfloor_api.runtime_contract import ANNOTATION_ACTIVE_REVISION, ANNOTATION_STATE  # noqa: E402
from shopfloor_api.virtualplc import VirtualPLC  # noqa: E402
from shopfloor_localsite.controlplane import ControlPlaneOptions, LocalControlPlane  # noqa: E402
from shopfloor_localsite.nodes import SimulatedNode  # noqa: E402
from shopfloor_localsite.processes import free_port  # noqa: E402
from shopfloor_operator.builders import config as runtime_config  # noqa: E402
from shopfloor_operator.builders import network, rbac  # noqa: E402
from shopfloor_operator.builders.config import ProgramRelease  # noqa: E402
from shopfloor_operator.builders.pod import pod  # noqa: E402
from shopfloor_operator.kube import Kube, collection_path  # noqa: E402
from shopfloor_operator.plc import plc_pod_workload  # noqa: E402
from shopfloor_operator.settings import OperatorSettings  # noqa: E402
from shopfloor_st import source_revision  # noqa: E402

SOURCE = "PROGRAM Main\nVAR Level : REAL; END_VAR\nLevel := Level + 1.0;\nEND_PROGRAM\n"
REVISION = source_revision(SOURCE)
CLIENT_THREADS = 8
PLAYED_LEASE_SECONDS = 3600
WRITE_VERBS = ("POST", "PUT", "PATCH", "DELETE", "APPLY", "CREATE", "UPDATE")


def plc_manifest(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "shopfloor.io/v1alpha1",
        "kind": "VirtualPLC",
        "metadata": {"name": name},
        "spec": {"program": {"source": SOURCE}},
    }


def _unowned(manifest: dict[str, Any]) -> dict[str, Any]:
    manifest["metadata"].pop("ownerReferences", None)
    return manifest


def first_pass_objects(namespace: str, name: str) -> list[dict[str, Any]]:
    """What the operator's first pass creates for one PLC, built by the operator's own builders (no owner)."""
    settings = OperatorSettings()
    plc = parse_manifest({**plc_manifest(name), "metadata": {"name": name, "namespace": namespace, "uid": name}})
    assert isinstance(plc, VirtualPLC)
    workload = plc_pod_workload(plc, settings)
    release = ProgramRelease(REVISION, SOURCE, "")
    children = [
        rbac.service_account(workload),
        rbac.role(workload),
        rbac.role_binding(workload),
        runtime_config.lease(workload),
        runtime_config.retain_config_map(workload),
        runtime_config.plc_config_map(workload, plc, release, None),
        network.service(workload),
        network.network_policy(workload, settings),
        pod(workload, settings, 0),
    ]
    return [{**plc_manifest(name), "metadata": {"name": name, "namespace": namespace}}] + [
        _unowned(child) for child in children
    ]


def plain_pod(namespace: str, name: str) -> dict[str, Any]:
    built = first_pass_objects(namespace, name)[-1]
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


def delete_and_wait(core: client.CoreV1Api, namespace: str) -> None:
    """Gone for real: terminating pods still hold their cpus, which would skew the next measurement."""
    core.delete_namespace(namespace)
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        try:
            core.read_namespace(namespace)
        except client.ApiException as error:
            if error.status == 404:
                return
            raise
        time.sleep(0.5)
    raise RuntimeError(f"namespace {namespace} was not deleted within 900 s")


class Mirror:
    """A list+watch of one namespaced collection, keeping a small summary per object (a watch, not polling lists:
    listing 10,000 pods twice a second would be the load measured)."""

    def __init__(self, lister: Callable[..., Any], namespace: str, summarize: Callable[[dict[str, Any]], Any]) -> None:
        self.lister, self.namespace, self.summarize = lister, namespace, summarize
        self.items: dict[str, Any] = {}
        self.changed = threading.Condition()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                listed = self.lister(self.namespace, _preload_content=False)
                document = json.loads(listed.data)
                with self.changed:
                    self.items = {o["metadata"]["name"]: self.summarize(o) for o in document.get("items") or []}
                    self.changed.notify_all()
                version = document["metadata"]["resourceVersion"]
                stream = watch.Watch().stream(
                    self.lister, self.namespace, resource_version=version, timeout_seconds=30, _preload_content=False
                )
                for event in stream:
                    if self._stopped.is_set():
                        return
                    obj = event["raw_object"]
                    with self.changed:
                        if event["type"] == "DELETED":
                            self.items.pop(obj["metadata"]["name"], None)
                        elif event["type"] in ("ADDED", "MODIFIED"):
                            self.items[obj["metadata"]["name"]] = self.summarize(obj)
                        self.changed.notify_all()
            except Exception:  # an expired resourceVersion or a dropped connection: list again
                time.sleep(0.2)

    def wait_until(self, predicate: Callable[[dict[str, Any]], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not predicate(self.items):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{what} not reached within {timeout:.0f} s")
                self.changed.wait(min(left, 1.0))

    def stop(self) -> None:
        self._stopped.set()


def pod_summary(obj: dict[str, Any]) -> tuple[str, str, str]:
    labels = obj["metadata"].get("labels") or {}
    status, spec = obj.get("status") or {}, obj.get("spec") or {}
    return (status.get("phase", ""), spec.get("nodeName", ""), labels.get("app.kubernetes.io/instance", ""))


def plc_summary(obj: dict[str, Any]) -> tuple[str, str, bool, str]:
    """Pod, node, Scheduled, and the phase once its revision is verified (empty before)."""
    status = obj.get("status") or {}
    scheduled = any(c["type"] == "Scheduled" and c["status"] == "True" for c in status.get("conditions") or [])
    verified = (status.get("program") or {}).get("lastKnownGoodRevision") == REVISION
    return (
        status.get("podName", ""),
        status.get("nodeName", ""),
        scheduled,
        status.get("phase", "") if verified else "",
    )


def running(pods: dict[str, Any]) -> int:
    return sum(1 for phase, node, _ in pods.values() if phase == "Running" and node)


def create_all(kube: Kube, manifests: list[dict[str, Any]]) -> None:
    def create(manifest: dict[str, Any]) -> None:
        metadata = manifest["metadata"]
        path = collection_path(manifest["apiVersion"], manifest["kind"], metadata["namespace"])
        for _ in range(20):  # a CRD just established, or the API server briefly overloaded (429)
            try:
                kube.request("POST", path, manifest)
                return
            except Exception:
                time.sleep(0.5)
        raise RuntimeError(f"could not create {manifest['kind']} {metadata['name']}")

    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        list(pool.map(create, manifests))


def bench_direct(
    plane: LocalControlPlane, api: client.ApiClient, count: int, objects: Callable[[str, str], list[dict[str, Any]]]
) -> float:
    core = client.CoreV1Api(api)
    namespace = new_namespace(core)
    manifests = [manifest for index in range(count) for manifest in objects(namespace, f"plc-{index}")]
    pods = Mirror(core.list_namespaced_pod, namespace, pod_summary)
    meter = CpuMeter(plane)
    started = time.monotonic()
    create_all(Kube(api), manifests)
    pods.wait_until(lambda items: running(items) >= count, 3600, f"{count} pods Running")
    elapsed = time.monotonic() - started
    print(f"  {count}: {len(manifests) // count} objects per PLC directly: CPU s {meter.read()}", flush=True)
    pods.stop()
    delete_and_wait(core, namespace)
    return elapsed


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return str(response.read().decode())


def api_server_metrics(api: client.ApiClient) -> str:
    response = api.call_api(*api.param_serialize("GET", "/metrics", auth_settings=["BearerToken"]))
    response.read()
    return response.data.decode()


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


def label(labels: str, key: str) -> str:
    marker = f'{key}="'
    return labels.split(marker, 1)[1].split('"', 1)[0] if marker in labels else ""


def api_server_requests(api: client.ApiClient) -> Counter[str]:
    """The API server's own count of requests by verb, resource and subresource (all clients, kopf's included)."""
    counts: Counter[str] = Counter()
    for labels, value in samples(api_server_metrics(api), "apiserver_request_total").items():
        sub = label(labels, "subresource")
        counts[f"{label(labels, 'verb')} {label(labels, 'resource')}{'/' + sub if sub else ''}"] += value
    return counts


def writes_besides_leases(api: client.ApiClient, namespace: str) -> Counter[str]:
    """Write requests by resource as the API server counts them, Leases apart."""
    return Counter(
        {
            key: value
            for key, value in api_server_requests(api).items()
            if key.split()[0] in WRITE_VERBS and not key.split()[1].startswith("leases")
        }
    )


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds used by the API server and etcd (and `extra` pids) between start and `read`."""

    def __init__(self, plane: LocalControlPlane, extra: dict[str, int] | None = None) -> None:
        self.pids = {
            p.name: p.process.pid for p in plane.processes if p.name in ("kube-apiserver", "etcd") and p.process
        }
        self.pids.update(extra or {})
        self.start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def read(self) -> dict[str, float]:
        return {name: round(cpu_seconds(pid) - self.start[name], 1) for name, pid in self.pids.items()}


def memory_mib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


class LeasePlayer:
    """Plays the runtimes' Leases for settled PLCs: held by the PLC's pod, reporting Running. Each Lease is written
    once, renewed an hour ahead and for an hour: a runtime's renewals are Lease writes the operator answers with
    nothing (its Lease watch wakes a PLC only for a new holder or report), and renewing 1,000 played Leases every
    few seconds would overload the API server the operator shares these 2 cores with."""

    def __init__(self, kube: Kube, namespace: str) -> None:
        self.kube, self.namespace = kube, namespace
        self.rejected = 0

    def play(self, holders: dict[str, str]) -> None:
        """Write every Lease; those the API server refused (overloaded: 429, timeouts) again until all went in."""
        pending = dict(holders)
        while pending:
            with ThreadPoolExecutor(CLIENT_THREADS * 2) as pool:
                written = dict(zip(pending, pool.map(self._write, pending.items()), strict=True))
            pending = {name: holder for name, holder in pending.items() if not written[name]}
            self.rejected += len(pending)

    def _write(self, item: tuple[str, str]) -> bool:
        name, holder = item
        now = datetime.now(UTC)
        ahead = (now + timedelta(seconds=PLAYED_LEASE_SECONDS)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        patch = {
            "metadata": {"annotations": {ANNOTATION_STATE: "Running", ANNOTATION_ACTIVE_REVISION: REVISION}},
            "spec": {
                "holderIdentity": holder,
                "leaseDurationSeconds": PLAYED_LEASE_SECONDS,
                "acquireTime": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "renewTime": ahead,
                "leaseTransitions": 1,
            },
        }
        try:
            self.kube.merge_patch(f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases/{name}", patch)
        except Exception:
            return False
        return True


def start_operator(kubeconfig: Path, namespace: str, port: int, log: Any) -> subprocess.Popen[bytes]:
    environment = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "SHOPFLOOR_NAMESPACES": namespace,
        "SHOPFLOOR_STANDALONE": "true",
        "SHOPFLOOR_METRICS_PORT": str(port),
        "SHOPFLOOR_ACTIVATION_TIMEOUT": "2h",
        "SHOPFLOOR_WITNESS_PORT": "0",
        "SHOPFLOOR_LIVENESS_ENDPOINT": f"http://127.0.0.1:{free_port()}/healthz",
        "PYTHONPATH": os.pathsep.join(str(REPO / root) for root in ("operator", "workloads", "localsite")),
    }
    operator = subprocess.Popen(
        [sys.executable, "-m", "shopfloor_operator.main"], env=environment, stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            scrape(port)
            return operator
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the operator did not serve its metrics within 60 s")


def bench_operator(
    plane: LocalControlPlane, api: client.ApiClient, count: int, rt: set[str], workdir: Path, args: Any
) -> dict[str, Any]:
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    namespace = new_namespace(core)
    port = free_port()
    log = (workdir / f"operator-{count}.log").open("wb")
    operator = start_operator(plane.kubeconfig, namespace, port, log)
    pods = Mirror(core.list_namespaced_pod, namespace, pod_summary)

    def list_plcs(ns: str, **kwargs: Any) -> Any:
        return custom.list_namespaced_custom_object("shopfloor.io", "v1alpha1", ns, "virtualplcs", **kwargs)

    plcs = Mirror(list_plcs, namespace, plc_summary)

    def converged(items: dict[str, Any]) -> bool:
        if operator.poll() is not None:
            raise RuntimeError(f"the operator exited; see {log.name}")
        with pods.changed:
            pod_nodes = {name: node for name, (phase, node, _) in pods.items.items() if phase == "Running"}
        done = sum(
            1
            for pod_name, node, scheduled, _ in items.values()
            if scheduled and node in rt and pod_nodes.get(pod_name) == node
        )
        return done >= count

    result: dict[str, Any] = {}
    try:
        meter = CpuMeter(plane, {"operator": operator.pid})
        requests_before = api_server_requests(api)
        started = time.monotonic()
        create_all(
            Kube(api),
            [
                {**plc_manifest(f"plc-{i}"), "metadata": {"name": f"plc-{i}", "namespace": namespace}}
                for i in range(count)
            ],
        )
        plcs.wait_until(converged, 7200, f"{count} VirtualPLCs scheduled and recorded")
        result["operator_s"] = time.monotonic() - started
        result["cpu_s"] = meter.read()
        print(f"  {count}: operator run: CPU s {result['cpu_s']}", flush=True)
        served = api_server_requests(api) - requests_before
        top_served = ", ".join(f"{key} {value / count:.1f}" for key, value in served.most_common(14))
        print(f"  {count}: API server requests per PLC (all clients): {top_served}", flush=True)
        text = scrape(port)
        requests = samples(text, "shopfloor_api_requests_total")
        result.update(
            reconcile_p50_ms=histogram_quantile(text, "shopfloor_reconcile_time_seconds", 0.5) * 1000,
            reconcile_p99_ms=histogram_quantile(text, "shopfloor_reconcile_time_seconds", 0.99) * 1000,
            requests_per_plc=sum(requests.values()) / count,
            rss_mib=memory_mib(operator.pid, "VmRSS"),
        )
        top = sorted(requests.items(), key=lambda item: -item[1])[:10]
        by_kind = ", ".join(f"{label(k, 'verb')} {label(k, 'resource')} {v / count:.1f}" for k, v in top)
        print(f"  {count}: requests per PLC by kind: {by_kind}", flush=True)
        if count <= args.steady_up_to:
            try:
                result["steady_writes_per_min"] = steady_state(api, namespace, plcs, count, args.steady_seconds)
            except TimeoutError as error:  # reported, and the figures measured so far are kept
                print(f"  {count}: steady state not measured: {error}", flush=True)
                result["steady_writes_per_min"] = None
        result["peak_rss_mib"] = memory_mib(operator.pid, "VmHWM")
        if not args.keep_last or count != args.largest:
            # While the operator still runs: kopf's finalizer on each VirtualPLC needs it to let go.
            custom.delete_collection_namespaced_custom_object("shopfloor.io", "v1alpha1", namespace, "virtualplcs")
            plcs.wait_until(lambda items: not items, 1800, "VirtualPLCs deleted")
    finally:
        pods.stop()
        plcs.stop()
        operator.terminate()
        try:
            operator.wait(timeout=30)
        except subprocess.TimeoutExpired:
            operator.kill()
        log.close()
    if not args.keep_last or count != args.largest:
        delete_and_wait(core, namespace)
    return result


def steady_state(api: client.ApiClient, namespace: str, plcs: Mirror, count: int, seconds: float) -> dict[str, float]:
    """Writes per minute (API server's count, Leases apart) once every PLC is Running on its played Lease and its
    revision is verified (promotion is a write, but not a steady-state one)."""
    with plcs.changed:
        holders = {name: pod_name for name, (pod_name, *_) in plcs.items.items()}
    player = LeasePlayer(Kube(api), namespace)
    player.play(holders)
    if player.rejected:
        print(f"  {count}: {player.rejected} Lease writes refused under load and written again", flush=True)
    plcs.wait_until(
        lambda items: sum(1 for *_, phase in items.values() if phase == "Running") >= count,
        900,
        f"{count} VirtualPLCs Running on a verified revision",
    )
    time.sleep(5)  # the last Ready transitions land (their status patches are not steady state)
    before = writes_besides_leases(api, namespace)
    time.sleep(seconds)
    after = writes_besides_leases(api, namespace)
    delta = {key: (after[key] - before.get(key, 0)) * 60 / seconds for key in after if after[key] != before.get(key)}
    print(f"  {count}: steady-state writes per minute besides Leases: {delta or 'none'}", flush=True)
    return delta


def simulated_nodes(count: int, largest: int) -> list[SimulatedNode]:
    per_node = max(32, math.ceil(largest * 1.25 / count))
    return [
        SimulatedNode(
            name=f"edge-rt-{i}",
            realtime=True,
            cpus=per_node,
            memory=f"{per_node * 2}Gi",
            max_pods=per_node + 10,
            address_index=i,
        )
        for i in range(1, count + 1)
    ]


def install_crds(api: client.ApiClient) -> None:
    extensions = client.ApiextensionsV1Api(api)
    names = []
    for path in sorted((REPO / "crds").glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            extensions.create_custom_resource_definition(document)
            names.append(document["metadata"]["name"])
    deadline = time.monotonic() + 60
    for name in names:
        while time.monotonic() < deadline:
            conditions = extensions.read_custom_resource_definition(name).status.conditions or []
            if any(c.type == "Established" and c.status == "True" for c in conditions):
                break
            time.sleep(0.2)


def rows(results: dict[int, dict[str, Any]]) -> Iterator[str]:
    yield (
        f"{'PLCs':>6} {'plain s':>8} {'same obj s':>10} {'operator s':>10} {'x plain':>7} {'x same':>7} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'RSS MiB':>8} {'req/PLC':>8}"
    )
    for count, r in results.items():
        plain, same = r.get("plain_pods_s"), r.get("same_objects_s")
        yield (
            f"{count:>6} {plain or 0:>8.1f} {same or 0:>10.1f} {r['operator_s']:>10.1f} "
            f"{r['operator_s'] / plain if plain else 0:>7.2f} {r['operator_s'] / same if same else 0:>7.2f} "
            f"{r['reconcile_p50_ms']:>7.0f} {r['reconcile_p99_ms']:>7.0f} {r['rss_mib']:>8.0f} "
            f"{r['requests_per_plc']:>8.1f}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,1000")
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--baselines-up-to", type=int, default=1000, help="skip plain/same-objects above this size")
    parser.add_argument("--steady-up-to", type=int, default=1000, help="skip the steady-state window above this")
    parser.add_argument("--steady-seconds", type=float, default=60.0)
    parser.add_argument("--keep-last", action="store_true", help="leave the largest size's objects (faster exit)")
    parser.add_argument("--json", action="store_true", help="print one JSON object of results by size at the end")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    args.largest = max(sizes)
    nodes = simulated_nodes(args.nodes, args.largest)
    # Node leases as a kubelet's by default (40 s, renewed every 10 s): the site's 4 s leases, made for fast fault
    # tests, would add 50 lease writes per second of background to every measurement.
    plane = LocalControlPlane(ControlPlaneOptions(nodes=nodes, node_lease_seconds=40, node_monitor_grace_seconds=50))
    plane.start()
    results: dict[int, dict[str, Any]] = {}
    try:
        api = config.new_client_from_config(str(plane.kubeconfig))
        api.configuration.connection_pool_maxsize = CLIENT_THREADS * 2
        install_crds(api)
        rt = {node.name for node in nodes}
        print(f"{args.nodes} simulated real-time nodes; kube-apiserver and the operator on this machine's cores")
        with tempfile.TemporaryDirectory(prefix="bench-operator-") as workdir:
            for count in sizes:
                result: dict[str, Any] = {"plain_pods_s": None, "same_objects_s": None}
                if count <= args.baselines_up_to:
                    result["plain_pods_s"] = bench_direct(plane, api, count, lambda ns, name: [plain_pod(ns, name)])
                    result["same_objects_s"] = bench_direct(plane, api, count, first_pass_objects)
                result.update(bench_operator(plane, api, count, rt, Path(workdir), args))
                results[count] = result
                print("\n".join(rows({count: result})), flush=True)
        print("\n".join(rows(results)))
        if args.json:
            print(json.dumps({str(count): result for count, result in results.items()}, indent=1))
    finally:
        plane.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
