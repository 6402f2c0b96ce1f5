"""The pod planner: never two pods, replacement after the grace, waiting otherwise."""

from datetime import UTC, datetime, timedelta

from shopfloor_operator.podplan import CreatePod, DeletePod, KeepPod, NodeView, WaitPod, plan_pod
from tests.unit.operator.pod_views import running_pod as running

NOW = datetime(2026, 1, 1, tzinfo=UTC)
GRACE = timedelta(seconds=10)
READY = {"edge-rt-1": NodeView("edge-rt-1", True, NOW - timedelta(hours=1))}


def test_create_when_none() -> None:
    assert plan_pod([], READY, 3, NOW, GRACE) == CreatePod(3)


def test_keep_healthy_pod() -> None:
    assert isinstance(plan_pod([running()], READY, 1, NOW, GRACE), KeepPod)


def test_wait_for_terminating_pod_before_creating() -> None:
    action = plan_pod([running(deleting=True)], READY, 1, NOW, GRACE)
    assert isinstance(action, WaitPod)


def test_extra_pod_deleted_oldest_first() -> None:
    action = plan_pod([running("p-0", 0), running("p-1", 1)], READY, 2, NOW, GRACE)
    assert action == DeletePod("p-0", "a newer pod p-1 exists")


def test_failed_pod_replaced() -> None:
    action = plan_pod([running(phase="Failed")], READY, 1, NOW, GRACE)
    assert isinstance(action, DeletePod) and action.replacement and not action.force


def test_not_ready_node_waits_for_grace_then_forces() -> None:
    within = {"edge-rt-1": NodeView("edge-rt-1", False, NOW - timedelta(seconds=4))}
    action = plan_pod([running()], within, 1, NOW, GRACE)
    assert isinstance(action, WaitPod) and 5.5 < action.recheck_after <= 6.0
    beyond = {"edge-rt-1": NodeView("edge-rt-1", False, NOW - timedelta(seconds=11))}
    action = plan_pod([running()], beyond, 1, NOW, GRACE)
    assert isinstance(action, DeletePod) and action.force and action.replacement
    assert "NotReady for 11s (grace 10s)" in action.reason


def test_removed_node_replaces_at_once() -> None:
    action = plan_pod([running(node="gone")], READY, 1, NOW, GRACE)
    assert isinstance(action, DeletePod) and action.force and "removed" in action.reason


def test_terminating_pod_on_lost_node_is_forced() -> None:
    lost = {"edge-rt-1": NodeView("edge-rt-1", False, NOW - timedelta(seconds=30))}
    action = plan_pod([running(deleting=True)], lost, 1, NOW, GRACE)
    assert isinstance(action, DeletePod) and action.force


def test_requested_replacement() -> None:
    action = plan_pod([running()], READY, 1, NOW, GRACE, replace_reason="spec.x: 1 -> 2")
    assert action == DeletePod("p-0", "spec.x: 1 -> 2")
