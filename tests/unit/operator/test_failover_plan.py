"""The Lease decides failover: expiry on the operator's clock, hand-over to the next pod, the node only a hint."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shopfloor_operator.leases import LeaseObservations, LeaseView
from shopfloor_operator.podplan import CreatePod, DeletePod, HandOver, KeepPod, NodeView, PodView, WaitPod, plan_pod
from tests.unit.operator.pod_views import running_pod

NOW = datetime(2026, 1, 1, tzinfo=UTC)
GRACE = timedelta(seconds=10)
READY = {"edge-rt-1": NodeView("edge-rt-1", True, NOW - timedelta(hours=1))}
LOST = {"edge-rt-1": NodeView("edge-rt-1", False, NOW - timedelta(seconds=60))}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def lease(holder: str, version: str = "1", renewed: str = "t1", acquired: str = "t0") -> dict[str, Any]:
    return {
        "metadata": {"resourceVersion": version},
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": 3,
            "renewTime": renewed,
            "acquireTime": acquired,
            "leaseTransitions": 1,
        },
    }


def pod(name: str = "p-0", incarnation: int = 0, **changes: object) -> PodView:
    return running_pod(name, incarnation, **changes)


def view(holder: str = "p-0", *, expired: bool = False, taken: bool = True, expires_in: float = 2.0) -> LeaseView:
    return LeaseView(holder, 1, 3.0, "7", taken, expired, 0.0 if expired else expires_in)


# -- expiry on the operator's clock ----------------------------------------------------------------------------


def test_a_lease_expires_after_duration_and_margin_without_a_new_version() -> None:
    clock = Clock()
    leases = LeaseObservations(clock)
    key = ("VirtualPLC", "line-1", "mixer-1")
    clock.now += 100  # long after the operator's start
    first = leases.view(key, lease("p-0"))
    assert first is not None and not first.expired and abs(first.expires_in - 3.5) < 1e-9
    clock.now += 3.4
    assert not leases.view(key, lease("p-0")).expired  # type: ignore[union-attr]
    clock.now += 0.2
    assert leases.view(key, lease("p-0")).expired  # type: ignore[union-attr]


def test_a_renewal_restarts_the_clock() -> None:
    clock = Clock()
    leases = LeaseObservations(clock)
    key = ("VirtualPLC", "line-1", "mixer-1")
    clock.now += 100
    leases.view(key, lease("p-0", version="1"))
    clock.now += 3.0
    assert leases.observe(key, lease("p-0", version="2")) is True
    clock.now += 3.0
    assert not leases.view(key, lease("p-0", version="2")).expired  # type: ignore[union-attr]


def test_the_operators_start_and_blindness_restart_the_clock() -> None:
    """renewTime is never trusted: a Lease seen for the first time, or while the API was unreachable, gets a whole
    lease period from then."""
    clock = Clock()
    leases = LeaseObservations(clock)
    key = ("VirtualPLC", "line-1", "mixer-1")
    assert leases.view(key, lease("p-0", renewed="1999-01-01T00:00:00Z")).expired is False  # type: ignore[union-attr]
    clock.now += 10
    assert leases.view(key, lease("p-0")).expired  # type: ignore[union-attr]
    leases.mark_blind()  # e.g. the witness told a runtime "the API is unreachable for me too"
    assert not leases.view(key, lease("p-0")).expired  # type: ignore[union-attr]
    clock.now += 3.6
    assert leases.view(key, lease("p-0")).expired  # type: ignore[union-attr]


def test_a_free_lease_never_expires_and_a_fresh_hand_over_is_not_taken() -> None:
    leases = LeaseObservations(Clock())
    free = leases.view(("VirtualPLC", "n", "a"), lease(""))
    assert free is not None and free.free and not free.expired and free.expires_in == 0.0
    handed = leases.view(("VirtualPLC", "n", "b"), lease("p-1", renewed="t5", acquired="t5"))
    assert handed is not None and not handed.taken


# -- the planner ---------------------------------------------------------------------------------------------------


def test_a_lost_node_under_a_live_lease_only_waits_for_the_lease() -> None:
    action = plan_pod([pod()], LOST, 1, NOW, GRACE, lease=view(expires_in=1.2), next_pod_name="p-1")
    assert isinstance(action, WaitPod) and action.recheck_after == 1.2
    assert "waiting for the Lease of p-0" in action.reason


def test_an_expired_holder_is_handed_over_and_replaced_whatever_its_node_says() -> None:
    for nodes in (READY, LOST):
        action = plan_pod([pod()], nodes, 1, NOW, GRACE, lease=view(expired=True), next_pod_name="p-1")
        assert action == HandOver(1, "p-0", "7", "p-0", True, action.reason)  # type: ignore[union-attr]
        assert "Lease of p-0 expired" in action.reason  # type: ignore[union-attr]
    action = plan_pod([pod()], LOST, 1, NOW, GRACE, lease=view(expired=True), next_pod_name="p-1")
    assert "node edge-rt-1 NotReady" in action.reason  # type: ignore[union-attr]


def test_an_expired_lease_of_a_vanished_pod_goes_to_the_pod_waiting_for_it() -> None:
    action = plan_pod([pod("p-1", 1)], READY, 2, NOW, GRACE, lease=view("p-0", expired=True), next_pod_name="p-2")
    assert action == HandOver(1, "p-0", "7", None, False, action.reason)  # type: ignore[union-attr]


def test_no_pod_is_started_while_a_vanished_pods_lease_may_still_be_driving() -> None:
    action = plan_pod([], READY, 1, NOW, GRACE, lease=view("p-0", expires_in=0.8), next_pod_name="p-1")
    assert isinstance(action, WaitPod) and action.recheck_after == 0.8


def test_an_interrupted_hand_over_creates_the_pod_the_lease_was_given_to() -> None:
    action = plan_pod([], READY, 1, NOW, GRACE, lease=view("p-1", taken=False), next_pod_name="p-1")
    assert action == CreatePod(1)


def test_a_starting_pod_handed_the_lease_is_not_replaced_for_being_slow() -> None:
    action = plan_pod([pod("p-1", 1)], READY, 2, NOW, GRACE, lease=view("p-1", expired=True, taken=False))
    assert isinstance(action, KeepPod)


def test_a_released_lease_lets_the_pod_rules_decide() -> None:
    assert plan_pod([], READY, 1, NOW, GRACE, lease=view(""), next_pod_name="p-1") == CreatePod(1)
    assert isinstance(plan_pod([pod()], READY, 1, NOW, GRACE, lease=view("")), KeepPod)


def test_a_terminating_pod_that_holds_nothing_is_not_waited_for() -> None:
    pods = [pod(deleting=True), pod("p-1", 1)]
    action = plan_pod(pods, READY, 2, NOW, GRACE, lease=view("p-1", taken=False))
    assert action == DeletePod("p-0", "pod p-0 does not hold the Lease", force=True)


def test_an_interrupted_hand_over_creates_its_pod_while_the_old_one_terminates() -> None:
    action = plan_pod([pod(deleting=True)], READY, 1, NOW, GRACE, lease=view("p-1", taken=False), next_pod_name="p-1")
    assert action == CreatePod(1)
