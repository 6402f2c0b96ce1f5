"""The pod planner with hot standby: two live pods, the Lease holder is the primary, the operator never chooses it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shopfloor_operator.leases import LeaseView
from shopfloor_operator.podplan import (
    CreatePod,
    DeletePod,
    HandOver,
    KeepPod,
    NodeView,
    PodAction,
    PodView,
    WaitPod,
    plan_pod,
    primary_of,
)
from tests.unit.operator.pod_views import running_pod

NOW = datetime(2026, 1, 1, tzinfo=UTC)
GRACE = timedelta(seconds=10)


def nodes(**lost_for: float | None) -> dict[str, NodeView]:
    """Both real-time nodes Ready, unless given how long each has been NotReady."""
    found = {}
    for name in ("edge-rt-1", "edge-rt-2"):
        seconds = lost_for.get(name.replace("-", "_"))
        if seconds is None:
            found[name] = NodeView(name, True, NOW - timedelta(hours=1))
        else:
            found[name] = NodeView(name, False, NOW - timedelta(seconds=seconds))
    return found


READY = nodes()


def pod(name: str, incarnation: int, node: str, **changes: Any) -> PodView:
    return running_pod(name, incarnation, node, **{"hot_standby": True, **changes})


PRIMARY = pod("p-0", 0, "edge-rt-1")
STANDBY = pod("p-1", 1, "edge-rt-2", ready=False)  # the standby fails its readiness probe by design


def lease(
    holder: str = "p-0", standby: str = "p-1", *, expired: bool = False, taken: bool = True, expires_in: float = 2.0
) -> LeaseView:
    return LeaseView(holder, 3, 3.0, "7", taken, expired, 0.0 if expired else expires_in, standby)


def plan(
    pods: list[PodView],
    lease_view: LeaseView | None = None,
    node_views: dict[str, NodeView] = READY,
    **options: Any,
) -> PodAction:
    options.setdefault("next_pod_name", "p-2")
    return plan_pod(pods, node_views, 2, NOW, GRACE, lease=lease_view, desired=2, **options)


# -- slots -----------------------------------------------------------------------------------------------------------


def test_each_missing_slot_gets_a_pod_one_per_pass() -> None:
    assert plan([], lease("")) == CreatePod(2)
    assert plan([PRIMARY], lease("p-0", "")) == CreatePod(2)
    assert plan([PRIMARY, STANDBY], lease()) == KeepPod(PRIMARY)


def test_the_lease_holder_is_the_primary_whatever_the_age_of_the_pods() -> None:
    assert plan([PRIMARY, STANDBY], lease("p-1", "p-0")) == KeepPod(STANDBY)
    assert primary_of([PRIMARY, STANDBY], "") == PRIMARY, "nobody holds it yet: the oldest"
    assert primary_of([STANDBY, PRIMARY], "p-1") == STANDBY


def test_the_holder_is_never_deleted_to_make_room() -> None:
    third = pod("p-2", 2, "edge-1")
    action = plan([PRIMARY, STANDBY, third], lease("p-1", "p-2"))
    assert action == DeletePod("p-0", "3 pods, 2 wanted")
    action = plan([PRIMARY, STANDBY, third], lease("p-0", "p-1"))
    assert isinstance(action, DeletePod) and action.name == "p-1"


# -- the primary's Lease expired: the operator hands it to the standby -----------------------------------------------


def test_an_expired_primary_lease_goes_to_the_standby_and_the_victim_is_force_deleted() -> None:
    for node_views in (READY, nodes(edge_rt_1=60)):
        action = plan([PRIMARY, STANDBY], lease(expired=True), node_views)
        assert isinstance(action, HandOver)
        assert (action.to_incarnation, action.holder, action.victim, action.create) == (1, "p-0", "p-0", False)
    # Then the standby holds the Lease (just handed over) and the next pass creates a new standby.
    assert plan([STANDBY], lease("p-1", "", taken=False)) == CreatePod(2)


def test_the_standby_in_sync_is_preferred_for_the_hand_over() -> None:
    other = pod("p-2", 2, "edge-1")  # a pod that is not in sync, listed first
    action = plan_pod([PRIMARY, other, STANDBY], READY, 3, NOW, GRACE, lease=lease(expired=True), desired=3)
    assert isinstance(action, HandOver) and action.to_incarnation == 1


def test_a_primary_on_a_lost_node_with_a_live_lease_is_only_waited_for() -> None:
    action = plan([PRIMARY, STANDBY], lease(expires_in=1.2), nodes(edge_rt_1=60))
    assert isinstance(action, WaitPod) and action.recheck_after == 1.2
    assert "waiting for the Lease of p-0" in action.reason


# -- the standby took over by itself ------------------------------------------------------------------------------


def test_a_former_primary_on_a_lost_node_is_force_deleted_after_the_grace() -> None:
    taken_over = lease("p-1", "", expires_in=2.5)  # holder = the former standby, a new epoch
    action = plan([PRIMARY, STANDBY], taken_over, nodes(edge_rt_1=4), previous_holder="p-0")
    assert isinstance(action, WaitPod) and 5.5 < action.recheck_after <= 6.0
    action = plan([PRIMARY, STANDBY], taken_over, nodes(edge_rt_1=11), previous_holder="p-0")
    assert isinstance(action, DeletePod) and action.name == "p-0" and action.force and action.replacement
    assert plan([STANDBY], taken_over) == CreatePod(2)


def test_a_former_primary_on_a_removed_node_is_force_deleted_at_once() -> None:
    gone = {"edge-rt-2": READY["edge-rt-2"]}
    action = plan([PRIMARY, STANDBY], lease("p-1", ""), gone)
    assert isinstance(action, DeletePod) and action.name == "p-0" and action.force and "removed" in action.reason


def test_a_superseded_former_primary_on_a_healthy_node_is_stopped() -> None:
    """Its runtime never takes a Lease again, so it is no standby: replaced, gracefully."""
    action = plan([PRIMARY, STANDBY], lease("p-1", ""), previous_holder="p-0")
    assert isinstance(action, DeletePod) and action.name == "p-0" and not action.force and action.replacement
    # Also before the new holder renewed: the takeover itself superseded the old one.
    action = plan([PRIMARY, STANDBY], lease("p-1", "", taken=False), previous_holder="p-0")
    assert isinstance(action, DeletePod) and action.name == "p-0" and not action.force
    # The previous pass already saw the same holder: nothing was superseded.
    assert plan([PRIMARY, STANDBY], lease(), previous_holder="p-0") == KeepPod(PRIMARY)


# -- a lost or failed standby ----------------------------------------------------------------------------------------


def test_a_standby_on_a_lost_node_is_replaced_after_the_grace() -> None:
    action = plan([PRIMARY, STANDBY], lease(), nodes(edge_rt_2=3))
    assert isinstance(action, WaitPod) and "NotReady" in action.reason
    action = plan([PRIMARY, STANDBY], lease(), nodes(edge_rt_2=30))
    assert isinstance(action, DeletePod) and action.name == "p-1" and action.force and action.replacement


def test_a_failed_standby_is_replaced_at_once() -> None:
    action = plan([PRIMARY, pod("p-1", 1, "edge-rt-2", phase="Failed")], lease())
    assert action == DeletePod("p-1", "pod p-1 failed", replacement=True)


def test_a_terminating_standby_is_not_waited_for() -> None:
    action = plan([PRIMARY, pod("p-1", 1, "edge-rt-2", deleting=True)], lease("p-0", ""))
    assert action == DeletePod("p-1", "pod p-1 does not hold the Lease", force=True)


# -- replacing both (spec drift, a Restart rollout) -------------------------------------------------------------------


def test_drift_replaces_the_standby_first() -> None:
    drift = {"p-0": "spec.x: 1 -> 2", "p-1": "spec.x: 1 -> 2"}
    action = plan([PRIMARY, STANDBY], lease(), drift=drift)
    assert isinstance(action, DeletePod) and action.name == "p-1" and not action.force
    action = plan([PRIMARY, STANDBY], lease(), replace_reason="new program revision (replacing the pod)")
    assert isinstance(action, DeletePod) and action.name == "p-1"


def test_then_a_new_standby_then_the_primary_once_the_new_standby_is_in_sync() -> None:
    drift = {"p-0": "spec.x: 1 -> 2"}
    assert plan([PRIMARY], lease("p-0", ""), drift=drift) == CreatePod(2)
    fresh = pod("p-2", 2, "edge-rt-2", ready=False)
    action = plan([PRIMARY, fresh], lease("p-0", ""), drift=drift)
    assert isinstance(action, WaitPod) and "waiting for standby p-2 to be in sync" in action.reason
    action = plan([PRIMARY, fresh], lease("p-0", "p-1"), drift=drift)  # in sync is the new pod, not any standby
    assert isinstance(action, WaitPod)
    action = plan([PRIMARY, fresh], lease("p-0", "p-2"), drift=drift)
    assert isinstance(action, DeletePod) and action.name == "p-0" and not action.force, "graceful: it hands over"


def test_the_replaced_primary_hands_over_and_its_pod_is_removed_then_a_new_standby_comes() -> None:
    fresh = pod("p-2", 2, "edge-rt-2")
    terminating = pod("p-0", 0, "edge-rt-1", deleting=True)
    action = plan([terminating, fresh], lease("p-0", "p-2"))
    assert isinstance(action, WaitPod) and "p-0 to terminate" in action.reason
    action = plan([terminating, fresh], lease("p-2", ""))  # the runtime handed the Lease to its standby
    assert action == DeletePod("p-0", "pod p-0 does not hold the Lease", force=True)
    assert plan([fresh], lease("p-2", ""), next_pod_name="p-3") == CreatePod(2)


# -- switching the mode --------------------------------------------------------------------------------------------


def test_none_to_hot_standby_adds_a_standby_then_restarts_the_primary_in_the_new_mode() -> None:
    single = pod("p-0", 0, "edge-rt-1", hot_standby=False)
    drift = {"p-0": "spec.containers[0].env[11]: None -> {...}"}
    assert plan([single], lease("p-0", ""), drift=drift) == CreatePod(2)
    # The old runtime never reports a standby in sync: it is stopped plainly and gives its Lease up.
    action = plan([single, pod("p-2", 2, "edge-rt-2")], lease("p-0", ""), drift=drift)
    assert isinstance(action, DeletePod) and action.name == "p-0" and not action.force


def test_hot_standby_to_none_deletes_the_pod_that_does_not_hold_the_lease() -> None:
    for holder, extra in (("p-0", "p-1"), ("p-1", "p-0")):
        action = plan_pod([PRIMARY, STANDBY], READY, 2, NOW, GRACE, lease=lease(holder, ""), next_pod_name="p-2")
        assert isinstance(action, DeletePod) and action.name == extra and not action.force


def test_a_single_runtime_is_planned_as_before() -> None:
    assert plan_pod([PRIMARY], READY, 1, NOW, GRACE, lease=lease("p-0", "")) == KeepPod(PRIMARY)
    assert plan_pod([], READY, 1, NOW, GRACE, lease=lease("", "")) == CreatePod(1)
    action = plan_pod([PRIMARY], READY, 1, NOW, GRACE, replace_reason="r", lease=lease("p-0", ""))
    assert action == DeletePod("p-0", "r")
