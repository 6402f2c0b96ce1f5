"""VirtualPLC reconciled on the real control plane: children, placement, status, logic updates, rollback, GC."""

from __future__ import annotations

from kubernetes import client

from shopfloor_st import source_revision
from tests.support.waiting import wait_for

from .conftest import Cluster, OperatorFactory
from .manifests import BROKEN_SOURCE, GOOD_SOURCE, NEW_SOURCE, OTHER_SOURCE, plc

REALTIME_NODES = {"edge-rt-1", "edge-rt-2"}


def running_pod(cluster: Cluster, name: str) -> client.V1Pod:
    def scheduled() -> client.V1Pod | None:
        pods = [pod for pod in cluster.live_pods(name) if pod.spec.node_name]
        return pods[0] if len(pods) == 1 else None

    return wait_for(scheduled, what=f"one scheduled pod of {name}")  # type: ignore[return-value]


def make_running(cluster: Cluster, name: str, revision: str) -> client.V1Pod:
    pod = running_pod(cluster, name)
    cluster.play_runtime(name, pod.metadata.name, revision)
    wait_for(lambda: cluster.status("virtualplcs", name).get("phase") == "Running", what=f"{name} Running")
    return pod


def test_create_builds_children_and_runs_on_a_realtime_node(start_operator: OperatorFactory, cluster: Cluster) -> None:
    start_operator()
    created = cluster.create("virtualplcs", plc("mixer-1", realtimePriority=50))
    pod = running_pod(cluster, "mixer-1")
    assert pod.spec.node_name in REALTIME_NODES
    container = pod.spec.containers[0]
    assert container.security_context.capabilities.add is None
    assert container.resources.requests == container.resources.limits
    for kind, read in [
        ("ServiceAccount", lambda: cluster.core.read_namespaced_service_account("mixer-1-vplc", cluster.namespace)),
        ("Service", lambda: cluster.core.read_namespaced_service("mixer-1", cluster.namespace)),
        ("ConfigMap", lambda: cluster.core.read_namespaced_config_map("mixer-1-runtime", cluster.namespace)),
        ("Lease", lambda: cluster.coordination.read_namespaced_lease("mixer-1", cluster.namespace)),
        (
            "Role",
            lambda: client.RbacAuthorizationV1Api(cluster.api).read_namespaced_role("mixer-1-vplc", cluster.namespace),
        ),
        (
            "NetworkPolicy",
            lambda: client.NetworkingV1Api(cluster.api).read_namespaced_network_policy("mixer-1", cluster.namespace),
        ),
    ]:
        owner = read().metadata.owner_references[0]
        assert owner.uid == created["metadata"]["uid"] and owner.controller, kind
    revision = source_revision(GOOD_SOURCE)
    config_map = cluster.config_map("mixer-1-runtime")
    assert config_map is not None and config_map.data["revision"] == revision

    wait_for(lambda: cluster.status("virtualplcs", "mixer-1").get("phase") == "Starting", what="Starting")
    assert cluster.condition("virtualplcs", "mixer-1", "Ready")["status"] == "False"
    cluster.play_runtime("mixer-1", pod.metadata.name, revision)
    wait_for(lambda: cluster.status("virtualplcs", "mixer-1").get("phase") == "Running", what="Running")
    status = cluster.status("virtualplcs", "mixer-1")
    assert status["observedGeneration"] == created["metadata"]["generation"]
    assert status["nodeName"] == pod.spec.node_name and status["podName"] == pod.metadata.name
    assert status["program"]["activeRevision"] == revision
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"]["status"] == "True" and conditions["Stalled"]["status"] == "False"
    assert conditions["Reconciling"]["status"] == "False" and conditions["RuntimeHealthy"]["status"] == "True"
    assert all(c["lastTransitionTime"] and c["observedGeneration"] == 1 for c in status["conditions"])
    wait_for(lambda: {"Deploying", "Scheduled", "Ready"} <= {e.reason for e in cluster.events("mixer-1")})


def test_pinned_to_a_node(start_operator: OperatorFactory, cluster: Cluster) -> None:
    start_operator()
    cluster.create("virtualplcs", plc("pinned", placement={"nodeName": "edge-rt-2"}))
    assert running_pod(cluster, "pinned").spec.node_name == "edge-rt-2"


def test_general_node_when_realtime_not_required(start_operator: OperatorFactory, cluster: Cluster) -> None:
    start_operator()
    cluster.create("virtualplcs", plc("general", placement={"realtime": "None", "nodeName": "edge-1"}))
    assert running_pod(cluster, "general").spec.node_name == "edge-1"


def test_no_eligible_node_says_why(start_operator: OperatorFactory, cluster: Cluster) -> None:
    start_operator()
    cluster.create("virtualplcs", plc("nowhere", placement={"nodeSelector": {"zone": "moon"}}))

    def unschedulable() -> dict | None:
        condition = cluster.condition("virtualplcs", "nowhere", "Scheduled")
        return condition if condition.get("reason") == "Unschedulable" else None

    condition = wait_for(unschedulable, what="Scheduled=False Unschedulable")
    assert isinstance(condition, dict) and condition["status"] == "False"
    assert "label zone=moon missing" in condition["message"]
    assert "edge-rt-1" in condition["message"] and "edge-1" in condition["message"]
    assert cluster.status("virtualplcs", "nowhere")["phase"] == "Scheduling"
    assert cluster.condition("virtualplcs", "nowhere", "Reconciling")["status"] == "True"
    wait_for(lambda: any(e.reason == "NotScheduled" for e in cluster.events("nowhere")), what="NotScheduled event")


def test_invalid_program_keeps_the_running_revision(start_operator: OperatorFactory, cluster: Cluster) -> None:
    start_operator()
    good = source_revision(GOOD_SOURCE)
    cluster.create("virtualplcs", plc("logic", updateStrategy={"verifyFor": "0s"}))
    pod = make_running(cluster, "logic", good)
    cluster.patch_spec("virtualplcs", "logic", {"program": {"source": BROKEN_SOURCE}})

    def invalid() -> dict | None:
        condition = cluster.condition("virtualplcs", "logic", "ProgramValid")
        return condition if condition.get("status") == "False" else None

    condition = wait_for(invalid, what="ProgramValid=False")
    assert isinstance(condition, dict) and condition["reason"] == "CompileError"
    assert condition["message"].startswith("3:"), condition["message"]
    status = cluster.status("virtualplcs", "logic")
    assert status["program"]["activeRevision"] == good and status["program"]["deployedRevision"] == good
    assert status["observedGeneration"] == 2 and status["phase"] == "Running"
    assert cluster.condition("virtualplcs", "logic", "Stalled")["status"] == "True"
    config_map = cluster.config_map("logic-runtime")
    assert config_map is not None and config_map.data["revision"] == good
    assert [p.metadata.name for p in cluster.live_pods("logic")] == [pod.metadata.name]


def test_online_change_verified_then_faulty_change_rolled_back(
    start_operator: OperatorFactory, cluster: Cluster
) -> None:
    operator = start_operator()
    good, new, other = (source_revision(s) for s in (GOOD_SOURCE, NEW_SOURCE, OTHER_SOURCE))
    cluster.create("virtualplcs", plc("changer", updateStrategy={"verifyFor": "1s"}))
    pod = make_running(cluster, "changer", good)
    wait_for(lambda: cluster.status("virtualplcs", "changer")["program"].get("lastKnownGoodRevision") == good)

    cluster.patch_spec("virtualplcs", "changer", {"program": {"source": NEW_SOURCE}})
    wait_for(lambda: (cluster.config_map("changer-runtime") or client.V1ConfigMap()).data["revision"] == new)
    # The ConfigMap is written before the status of the same pass: wait for the phase, do not race it.
    wait_for(lambda: cluster.status("virtualplcs", "changer")["phase"] == "Updating", what="Updating")
    assert cluster.status("virtualplcs", "changer")["program"]["activeRevision"] == good
    cluster.play_runtime("changer", pod.metadata.name, new)
    wait_for(lambda: cluster.status("virtualplcs", "changer")["program"].get("lastKnownGoodRevision") == new)
    wait_for(lambda: cluster.status("virtualplcs", "changer")["phase"] == "Running")

    cluster.patch_spec("virtualplcs", "changer", {"program": {"source": OTHER_SOURCE}})
    wait_for(lambda: (cluster.config_map("changer-runtime") or client.V1ConfigMap()).data["revision"] == other)
    cluster.play_runtime("changer", pod.metadata.name, other, state="Faulted", fault="3:10: division by zero")

    wait_for(lambda: cluster.status("virtualplcs", "changer")["phase"] == "Degraded", what="Degraded")
    status = cluster.status("virtualplcs", "changer")
    assert status["program"]["deployedRevision"] == new and status["program"]["failedRevision"] == other
    assert "division by zero" in status["program"]["message"]
    degraded = cluster.condition("virtualplcs", "changer", "Degraded")
    assert degraded["status"] == "True" and degraded["reason"] == "RolledBack"
    config_map = cluster.config_map("changer-runtime")
    assert config_map is not None and config_map.data["revision"] == new
    assert any(e.reason == "RolledBack" for e in cluster.events("changer"))
    assert [p.metadata.name for p in cluster.live_pods("changer")] == [pod.metadata.name]
    cluster.play_runtime("changer", pod.metadata.name, new)  # the runtime switched back
    wait_for(lambda: cluster.condition("virtualplcs", "changer", "RuntimeHealthy").get("status") == "True")
    assert cluster.status("virtualplcs", "changer")["phase"] == "Degraded"
    assert cluster.condition("virtualplcs", "changer", "Ready")["status"] == "False"
    assert cluster.condition("virtualplcs", "changer", "Stalled")["reason"] == "RolledBack"
    assert operator.controller.metrics.rollbacks_total._value.get() == 1


def test_restart_strategy_replaces_the_pod(start_operator: OperatorFactory, cluster: Cluster) -> None:
    start_operator()
    good, new = source_revision(GOOD_SOURCE), source_revision(NEW_SOURCE)
    cluster.create("virtualplcs", plc("restarter", updateStrategy={"type": "Restart", "verifyFor": "0s"}))
    first = make_running(cluster, "restarter", good)
    cluster.patch_spec("virtualplcs", "restarter", {"program": {"source": NEW_SOURCE}})

    def replaced() -> client.V1Pod | None:
        pods = [p for p in cluster.live_pods("restarter") if p.spec.node_name]
        return pods[0] if len(pods) == 1 and pods[0].metadata.name != first.metadata.name else None

    second = wait_for(replaced, what="a new pod")
    assert isinstance(second, client.V1Pod)
    cluster.play_runtime("restarter", second.metadata.name, new)
    wait_for(lambda: cluster.status("virtualplcs", "restarter")["program"].get("lastKnownGoodRevision") == new)


def test_spec_change_replaces_the_pod_with_the_reason(start_operator: OperatorFactory, cluster: Cluster) -> None:
    start_operator()
    cluster.create("virtualplcs", plc("resized", updateStrategy={"verifyFor": "0s"}))
    first = running_pod(cluster, "resized")
    cluster.patch_spec("virtualplcs", "resized", {"resources": {"cpus": 2}})

    def resized() -> client.V1Pod | None:
        pods = [p for p in cluster.live_pods("resized") if p.spec.node_name]
        if len(pods) == 1 and pods[0].metadata.name != first.metadata.name:
            return pods[0]
        return None

    second = wait_for(resized, what="the resized pod")
    assert isinstance(second, client.V1Pod) and second.spec.containers[0].resources.limits["cpu"] == "2"
    messages = [e.message for e in cluster.events("resized") if e.reason == "Replacing"]
    assert any("resources.requests.cpu: '1' -> '2'" in message for message in messages), messages


def test_deleting_the_plc_removes_everything(start_operator: OperatorFactory, cluster: Cluster) -> None:
    start_operator()
    cluster.create("virtualplcs", plc("doomed"))
    running_pod(cluster, "doomed")
    cluster.delete("virtualplcs", "doomed")

    def all_gone() -> bool:
        return (
            not cluster.pods("doomed")
            and cluster.config_map("doomed-runtime") is None
            and not cluster.core.list_namespaced_service(cluster.namespace).items
        )

    wait_for(all_gone, timeout=60, what="garbage collection")


def test_deleted_pod_is_replaced(start_operator: OperatorFactory, cluster: Cluster) -> None:
    start_operator()
    cluster.create("virtualplcs", plc("phoenix"))
    first = running_pod(cluster, "phoenix")
    cluster.core.delete_namespaced_pod(first.metadata.name, cluster.namespace)

    def replacement() -> client.V1Pod | None:
        pods = [p for p in cluster.live_pods("phoenix") if p.spec.node_name]
        return pods[0] if len(pods) == 1 and pods[0].metadata.name != first.metadata.name else None

    second = wait_for(replacement, what="replacement pod")
    assert isinstance(second, client.V1Pod)
    wait_for(lambda: cluster.status("virtualplcs", "phoenix").get("podName") == second.metadata.name)
    assert cluster.status("virtualplcs", "phoenix")["replacements"] == 1


def test_runtime_config_change_rewrites_the_config_map_and_restarts(
    start_operator: OperatorFactory, cluster: Cluster
) -> None:
    start_operator()
    cluster.create("virtualplcs", plc("tuned"))
    first = running_pod(cluster, "tuned")
    cluster.patch_spec("virtualplcs", "tuned", {"cycleTime": "20ms"})

    def rewritten() -> bool:
        config_map = cluster.config_map("tuned-runtime")
        return config_map is not None and "cycleTime: 20ms" in config_map.data["virtualplc.yaml"]

    wait_for(rewritten, what="the runtime ConfigMap with the new cycle time")

    def restarted() -> client.V1Pod | None:
        pods = [p for p in cluster.live_pods("tuned") if p.spec.node_name]
        return pods[0] if len(pods) == 1 and pods[0].metadata.name != first.metadata.name else None

    wait_for(restarted, what="a pod started with the new configuration")
    messages = [e.message for e in cluster.events("tuned") if e.reason == "Replacing"]
    assert any("runtime-config-hash" in message for message in messages), messages


def test_sha256_pin_mismatch_deploys_nothing(start_operator: OperatorFactory, cluster: Cluster) -> None:
    start_operator()
    cluster.create("virtualplcs", plc("pinned-wrong", program={"source": GOOD_SOURCE, "sha256": "0" * 64}))

    def mismatch() -> dict | None:
        condition = cluster.condition("virtualplcs", "pinned-wrong", "ProgramValid")
        return condition if condition.get("reason") == "ChecksumMismatch" else None

    wait_for(mismatch, what="ProgramValid=False ChecksumMismatch")
    assert cluster.status("virtualplcs", "pinned-wrong")["phase"] == "Pending"
    assert cluster.condition("virtualplcs", "pinned-wrong", "Stalled")["status"] == "True"
    assert cluster.config_map("pinned-wrong-runtime") is None and not cluster.pods("pinned-wrong")


def test_program_from_a_config_map(start_operator: OperatorFactory, cluster: Cluster) -> None:
    # No periodic resync within the test: only the ConfigMap's watch can bring its change in.
    operator = start_operator(resync_seconds=3600)
    cluster.core.create_namespaced_config_map(
        cluster.namespace, {"metadata": {"name": "logic"}, "data": {"main.st": NEW_SOURCE}}
    )
    cluster.create("virtualplcs", plc("referenced", program={"configMapRef": {"name": "logic", "key": "main.st"}}))
    wait_for(lambda: cluster.config_map("referenced-runtime") is not None, what="runtime ConfigMap")
    config_map = cluster.config_map("referenced-runtime")
    assert config_map is not None and config_map.data["revision"] == source_revision(NEW_SOURCE)
    make_running(cluster, "referenced", source_revision(NEW_SOURCE))

    cluster.core.patch_namespaced_config_map("logic", cluster.namespace, {"data": {"main.st": OTHER_SOURCE}})
    wait_for(
        lambda: (
            cluster.status("virtualplcs", "referenced")["program"].get("desiredRevision")
            == source_revision(OTHER_SOURCE)
        ),
        what="the ConfigMap's new program desired",
    )
    # The source comes from the watch, never from a read per pass.
    requests = operator.controller.kube.by_kind
    assert requests["GET configmaps"] == 0, dict(requests)
    assert operator.controller.sources.watched_namespaces() == [cluster.namespace]
    cluster.delete("virtualplcs", "referenced")
    wait_for(lambda: not operator.controller.sources.watched_namespaces(), what="the ConfigMap watch stopped")


def test_first_revision_faulting_ends_faulted(start_operator: OperatorFactory, cluster: Cluster) -> None:
    start_operator()
    cluster.create("virtualplcs", plc("first-fault", updateStrategy={"verifyFor": "5s"}))
    pod = running_pod(cluster, "first-fault")
    revision = source_revision(GOOD_SOURCE)
    cluster.play_runtime("first-fault", pod.metadata.name, revision, state="Faulted", fault="2:1: watchdog expired")
    wait_for(lambda: cluster.status("virtualplcs", "first-fault").get("phase") == "Faulted", what="Faulted")
    status = cluster.status("virtualplcs", "first-fault")
    assert status["program"]["failedRevision"] == revision and "watchdog expired" in status["program"]["message"]
    assert cluster.condition("virtualplcs", "first-fault", "Stalled")["reason"] == "Faulted"
    wait_for(lambda: any(e.reason == "VerificationFailed" for e in cluster.events("first-fault")))


def test_a_first_revision_failed_for_a_late_runtime_is_verified_once_it_runs(
    start_operator: OperatorFactory, cluster: Cluster
) -> None:
    start_operator(activation_timeout="2s")
    cluster.create("virtualplcs", plc("late", updateStrategy={"verifyFor": "1s"}))
    pod = running_pod(cluster, "late")
    wait_for(lambda: cluster.status("virtualplcs", "late").get("phase") == "Faulted", what="Faulted: not activated")
    assert "did not activate" in cluster.status("virtualplcs", "late")["program"]["message"]
    revision = source_revision(GOOD_SOURCE)
    cluster.play_runtime("late", pod.metadata.name, revision)  # the runtime starts after all
    wait_for(
        lambda: cluster.status("virtualplcs", "late")["program"].get("lastKnownGoodRevision") == revision,
        what="verified once running",
    )
    status = cluster.status("virtualplcs", "late")
    assert status["phase"] == "Running" and not status["program"].get("failedRevision")
    assert any(e.reason == "Reactivated" for e in cluster.events("late"))
