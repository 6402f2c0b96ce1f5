"""A HotStandby VirtualPLC on the real control plane: two pods on different nodes, status.redundancy, and a takeover
by the standby (played here: the test writes the Lease as the standby's runtime would)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from kubernetes import client

from shopfloor_api.runtime_contract import ANNOTATION_STANDBY, ENV_SYNC_KEY_FILE, SYNC_KEY
from shopfloor_st import source_revision
from tests.support.waiting import wait_for

from .conftest import Cluster, OperatorFactory
from .manifests import GOOD_SOURCE, plc

REALTIME_NODES = {"edge-rt-1", "edge-rt-2"}
HOT = {"mode": "HotStandby", "takeoverAfter": "500ms", "syncInterval": "20ms"}


def scheduled_pair(cluster: Cluster, name: str) -> list[client.V1Pod]:
    def two() -> list[client.V1Pod] | None:
        pods = [pod for pod in cluster.live_pods(name) if pod.spec.node_name]
        return sorted(pods, key=lambda pod: pod.metadata.name) if len(pods) == 2 else None

    return wait_for(two, timeout=60, what=f"two scheduled pods of {name}")  # type: ignore[return-value]


def redundancy(cluster: Cluster, name: str) -> dict:
    return cluster.status("virtualplcs", name).get("redundancy") or {}


def take_over(cluster: Cluster, name: str, standby: str) -> int:
    """What the standby's runtime does when its primary went silent: the Lease is its own, one epoch on."""
    lease = cluster.coordination.read_namespaced_lease(name, cluster.namespace)
    now = datetime.now(UTC)
    lease.spec.holder_identity = standby
    lease.spec.lease_transitions = (lease.spec.lease_transitions or 0) + 1
    lease.spec.acquire_time = lease.spec.renew_time = now
    lease.metadata.annotations = {**(lease.metadata.annotations or {}), ANNOTATION_STANDBY: ""}
    cluster.coordination.replace_namespaced_lease(name, cluster.namespace, lease)
    return int(lease.spec.lease_transitions)


@pytest.mark.timeout(180)
def test_hot_standby_runs_two_pods_and_follows_the_lease(start_operator: OperatorFactory, cluster: Cluster) -> None:
    start_operator(node_lost_grace="2s")
    cluster.create("virtualplcs", plc("twin", redundancy=HOT))
    first, second = scheduled_pair(cluster, "twin")
    assert {first.spec.node_name, second.spec.node_name} == REALTIME_NODES, "the two pods share no node"
    for pod in (first, second):
        terms = pod.spec.affinity.pod_anti_affinity.required_during_scheduling_ignored_during_execution
        assert [term.topology_key for term in terms] == ["kubernetes.io/hostname"]
        assert terms[0].label_selector.match_labels["app.kubernetes.io/instance"] == "twin"
        env = {variable.name: variable.value for variable in pod.spec.containers[0].env}
        assert env["SHOPFLOOR_REDUNDANCY"] == "HotStandby" and env["SHOPFLOOR_TAKEOVER_AFTER"] == "0.5"
        assert "sync" in {port.name for port in pod.spec.containers[0].ports}
        assert env[ENV_SYNC_KEY_FILE] == f"/etc/shopfloor/secrets/twin-sync/{SYNC_KEY}"
        volumes = {volume.name: volume for volume in pod.spec.volumes}
        assert volumes["sync-key"].secret.secret_name == "twin-sync"
    # The pair's key: created before the pods, owned by the PLC (it goes with it), 32 random bytes.
    secret = cluster.core.read_namespaced_secret("twin-sync", cluster.namespace)
    assert [owner.name for owner in secret.metadata.owner_references] == ["twin"] and secret.immutable
    assert len(base64.b64decode(secret.data[SYNC_KEY])) == 32

    # The runtime of one pod takes the Lease: it is the primary, the other its standby, not yet in sync.
    revision = source_revision(GOOD_SOURCE)
    primary, standby = first.metadata.name, second.metadata.name
    cluster.play_runtime("twin", primary, revision)
    wait_for(lambda: cluster.status("virtualplcs", "twin").get("phase") == "Running", what="twin Running")
    status = cluster.status("virtualplcs", "twin")
    assert status["podName"] == primary and status["nodeName"] == first.spec.node_name
    wait_for(lambda: redundancy(cluster, "twin").get("standby") == standby, what="status.redundancy.standby")
    assert redundancy(cluster, "twin") == {"standby": standby, "standbyNode": second.spec.node_name, "inSync": False}
    assert cluster.condition("virtualplcs", "twin", "Redundant")["reason"] == "StandbyNotInSync"
    assert cluster.condition("virtualplcs", "twin", "Ready")["status"] == "True", "a standby never makes it unready"

    # The primary reports its standby in sync.
    cluster.played["twin"].report({ANNOTATION_STANDBY: standby})
    wait_for(lambda: redundancy(cluster, "twin").get("inSync") is True, what="standby in sync")
    wait_for(lambda: cluster.condition("virtualplcs", "twin", "Redundant").get("status") == "True", what="Redundant")
    assert cluster.condition("virtualplcs", "twin", "Redundant")["reason"] == "InSync"

    # The primary goes silent and the standby takes the Lease over by itself.
    cluster.played["twin"].stop()
    epoch = take_over(cluster, "twin", standby)
    cluster.play_runtime("twin", standby, revision)

    def new_primary() -> dict | None:
        status = cluster.status("virtualplcs", "twin")
        return status if status.get("podName") == standby and status["lock"]["epoch"] == epoch else None

    status = wait_for(new_primary, timeout=60, what="the former standby reported as the primary")
    assert isinstance(status, dict) and status["nodeName"] == second.spec.node_name

    # The former primary is superseded: it goes, and a new standby takes its slot (its node is free again).
    def replacement() -> client.V1Pod | None:
        pods = [p for p in cluster.live_pods("twin") if p.metadata.name not in (primary, standby)]
        return pods[0] if pods and pods[0].spec.node_name else None

    fresh = wait_for(replacement, timeout=60, what="a new standby")
    assert isinstance(fresh, client.V1Pod) and fresh.spec.node_name == first.spec.node_name
    wait_for(lambda: primary not in {p.metadata.name for p in cluster.pods("twin")}, what=f"{primary} gone")
    wait_for(lambda: redundancy(cluster, "twin").get("standby") == fresh.metadata.name, what="the new standby")
    assert cluster.status("virtualplcs", "twin")["podName"] == standby
    assert len(cluster.live_pods("twin")) == 2
    assert cluster.core.read_namespaced_secret("twin-sync", cluster.namespace).data == secret.data, "never rotated"

    # Back to a single runtime: the key goes.
    cluster.patch_spec("virtualplcs", "twin", {"redundancy": {"mode": "None"}})

    def key_gone() -> bool:
        try:
            cluster.core.read_namespaced_secret("twin-sync", cluster.namespace)
        except client.ApiException as error:
            return error.status == 404
        return False

    wait_for(key_gone, timeout=60, what="twin-sync deleted")


@pytest.mark.timeout(60)
def test_the_api_server_checks_the_standby_timing(cluster: Cluster, crds: None) -> None:
    bad = plc("twin-bad", redundancy={"mode": "HotStandby", "takeoverAfter": "500ms", "syncInterval": "200ms"})
    with pytest.raises(client.ApiException) as caught:
        cluster.create("virtualplcs", bad)
    assert caught.value.status == 422
    assert "spec.redundancy.syncInterval" in caught.value.body and "takeoverAfter/5" in caught.value.body
    with pytest.raises(client.ApiException) as caught:
        cluster.create("virtualplcs", plc("twin-fast", redundancy={"takeoverAfter": "10ms"}))
    assert caught.value.status == 422 and "spec.redundancy.takeoverAfter" in caught.value.body
