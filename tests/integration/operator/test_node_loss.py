"""A PLC whose node goes NotReady moves to another eligible node within the grace, and never runs twice."""

from __future__ import annotations

import threading
import time

from kubernetes import client

from tests.support.waiting import wait_for

from .conftest import Cluster, OperatorFactory
from .manifests import plc

REALTIME_NODES = {"edge-rt-1", "edge-rt-2"}


class LivePodWatch:
    """Samples the PLC's live, scheduled pods all along, to catch a moment with two."""

    def __init__(self, cluster: Cluster, name: str) -> None:
        self.cluster, self.name = cluster, name
        self.most = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            pods = [p for p in self.cluster.live_pods(self.name) if p.status.phase in ("Pending", "Running")]
            self.most = max(self.most, len(pods))
            time.sleep(0.05)

    def __enter__(self) -> LivePodWatch:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()


def test_node_not_ready_moves_the_plc(start_operator: OperatorFactory, cluster: Cluster, edge_site) -> None:  # type: ignore[no-untyped-def]
    start_operator(node_lost_grace="2s")
    cluster.create("virtualplcs", plc("mover"))

    def scheduled() -> client.V1Pod | None:
        pods = [p for p in cluster.live_pods("mover") if p.spec.node_name]
        return pods[0] if len(pods) == 1 else None

    first = wait_for(scheduled, what="first pod")
    assert isinstance(first, client.V1Pod) and first.spec.node_name in REALTIME_NODES
    lost = first.spec.node_name
    with LivePodWatch(cluster, "mover") as watch:
        edge_site.set_node_ready(lost, False)
        try:
            started = time.monotonic()

            def moved() -> client.V1Pod | None:
                pod = scheduled()
                return pod if pod is not None and pod.spec.node_name not in (None, lost) else None

            second = wait_for(moved, timeout=60, what="the PLC on another node")
            moved_after = time.monotonic() - started
        finally:
            edge_site.set_node_ready(lost, True)
    assert isinstance(second, client.V1Pod) and second.spec.node_name in REALTIME_NODES - {lost}
    assert watch.most == 1, "two pods of one PLC were alive at the same time"
    # Node monitor grace (8 s in the local control plane) + the operator's grace (2 s) + slack.
    assert moved_after < 30, moved_after
    wait_for(lambda: cluster.status("virtualplcs", "mover").get("nodeName") == second.spec.node_name)
    events = [e.message for e in cluster.events("mover") if e.reason == "Replacing"]
    assert any(f"node {lost} NotReady" in message for message in events), events

    def node_ready() -> bool:
        node = client.CoreV1Api(cluster.api).read_node(lost)
        return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)

    wait_for(node_ready, timeout=60, what=f"{lost} Ready again")
