"""The program rollout planner, stepped through time with an injected clock."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from shopfloor_operator.health import RuntimeReport
from shopfloor_operator.rollout import (
    Deploy,
    Fail,
    ProgramState,
    Promote,
    Reactivated,
    Rollback,
    Steady,
    Switched,
    Wait,
    plan,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
GOOD, NEW = "sha256:" + "1" * 64, "sha256:" + "2" * 64
HEALTHY_OLD = RuntimeReport(True, "Running", "", GOOD, "Running")
HEALTHY_NEW = RuntimeReport(True, "Running", "", NEW, "Running")
STEADY = ProgramState(
    desired=GOOD,
    deployed=GOOD,
    deployed_at=T0,
    last_known_good=GOOD,
    failed="",
    switched_at=T0,
    restart=False,
    verify_for=timedelta(seconds=30),
    report=HEALTHY_OLD,
    pod_ready=True,
    pod_ready_since=T0,
)


def test_steady() -> None:
    assert plan(STEADY, T0) == Steady()


def test_new_revision_deploys_online_or_by_restart() -> None:
    assert plan(replace(STEADY, desired=NEW), T0) == Deploy(NEW, False, f"new program revision {NEW} (online change)")
    action = plan(replace(STEADY, desired=NEW, restart=True), T0)
    assert isinstance(action, Deploy) and action.restart


def test_the_first_revision_is_called_so_and_a_fault_on_loading_is_told_once() -> None:
    first = replace(STEADY, deployed="", last_known_good="", switched_at=None)
    assert plan(first, T0) == Deploy(GOOD, False, f"first program revision {GOOD}")
    faulted = RuntimeReport(False, "RuntimeFaulted", "the runtime faulted: 3:10: x", GOOD, "Faulted", fault="3:10: x")
    loading = replace(STEADY, last_known_good="", switched_at=None, report=faulted)
    assert plan(loading, T0) == Fail(GOOD, f"revision {GOOD} faulted on loading: 3:10: x")


def test_invalid_program_keeps_running_revision() -> None:
    assert plan(replace(STEADY, desired=None), T0) == Steady()


def test_verify_then_promote() -> None:
    deployed = replace(STEADY, desired=NEW, deployed=NEW, deployed_at=T0, switched_at=None)
    assert isinstance(plan(deployed, T0 + timedelta(seconds=1)), Wait)
    switching = replace(deployed, report=HEALTHY_NEW)
    assert plan(switching, T0 + timedelta(seconds=2)) == Switched(T0 + timedelta(seconds=2))
    verifying = replace(switching, switched_at=T0 + timedelta(seconds=2))
    assert isinstance(plan(verifying, T0 + timedelta(seconds=20)), Wait)
    assert plan(verifying, T0 + timedelta(seconds=32)) == Promote(NEW)


def test_a_new_pod_reporting_before_its_first_readiness_probe_waits_instead_of_failing() -> None:
    """A real kubelet marks a pod Ready only after its readiness probe passes; the runtime may report first."""
    first = replace(STEADY, desired=NEW, deployed=NEW, last_known_good="", switched_at=None, report=HEALTHY_NEW)
    not_probed_yet = replace(first, pod_ready=False, pod_ready_since=None)
    assert isinstance(plan(not_probed_yet, T0 + timedelta(seconds=1)), Wait)
    probed = replace(first, pod_ready=True, pod_ready_since=T0 + timedelta(seconds=2))
    assert plan(probed, T0 + timedelta(seconds=2)) == Switched(T0 + timedelta(seconds=2))


def test_fault_during_verification_rolls_back() -> None:
    faulted = RuntimeReport(False, "RuntimeFaulted", "the runtime faulted: divide by zero", NEW, "Faulted")
    state = replace(STEADY, desired=NEW, deployed=NEW, switched_at=T0, report=faulted)
    action = plan(state, T0 + timedelta(seconds=5))
    assert action == Rollback(GOOD, NEW, "the runtime faulted: divide by zero")


def test_stale_report_and_readiness_roll_back() -> None:
    stale = RuntimeReport(False, "ReportStale", "the runtime stopped reporting", NEW, "Running")
    state = replace(STEADY, desired=NEW, deployed=NEW, switched_at=T0, report=stale)
    assert isinstance(plan(state, T0 + timedelta(seconds=5)), Rollback)
    unready = replace(STEADY, desired=NEW, deployed=NEW, switched_at=T0, report=HEALTHY_NEW, pod_ready=False)
    assert plan(unready, T0 + timedelta(seconds=5)) == Rollback(GOOD, NEW, "the pod failed its readiness probe")


def test_never_activated_rolls_back_after_timeout() -> None:
    state = replace(STEADY, desired=NEW, deployed=NEW, deployed_at=T0, switched_at=None)
    assert isinstance(plan(state, T0 + timedelta(seconds=59)), Wait)
    action = plan(state, T0 + timedelta(seconds=61))
    assert isinstance(action, Rollback) and "did not activate" in action.reason


def test_activation_clock_waits_for_a_ready_pod() -> None:
    state = replace(STEADY, desired=NEW, deployed=NEW, deployed_at=T0, switched_at=None, pod_ready=False)
    assert isinstance(plan(state, T0 + timedelta(minutes=10)), Wait), "a pod still pulling its image is not a fault"
    ready_late = replace(state, pod_ready=True, pod_ready_since=T0 + timedelta(minutes=9))
    assert isinstance(plan(ready_late, T0 + timedelta(minutes=9, seconds=30)), Wait)
    assert isinstance(plan(ready_late, T0 + timedelta(minutes=10, seconds=1)), Rollback)


def test_failed_revision_not_redeployed_and_first_failure_has_nothing_to_roll_back() -> None:
    rolled_back = replace(STEADY, desired=NEW, failed=NEW)
    assert plan(rolled_back, T0) == Steady()
    faulted = RuntimeReport(False, "RuntimeFaulted", "boom", NEW, "Faulted")
    first = replace(STEADY, desired=NEW, deployed=NEW, last_known_good="", switched_at=T0, report=faulted)
    assert plan(first, T0) == Fail(NEW, "boom")
    assert plan(replace(first, failed=NEW), T0) == Steady()


def test_a_failover_during_verification_waits_for_the_new_runtime_instead_of_blaming_the_program() -> None:
    for restarting in (
        RuntimeReport(False, "NoReport", "Lease held by p-1, not by pod p-0"),
        RuntimeReport(False, "RuntimeUnknown", "the runtime reports no state"),
        RuntimeReport(False, "RuntimeLoading", "the runtime reports Loading", "", "Loading"),
    ):
        state = replace(STEADY, desired=NEW, deployed=NEW, switched_at=T0, report=restarting, pod_ready=False)
        assert isinstance(plan(state, T0 + timedelta(seconds=5)), Wait)
    back = replace(STEADY, desired=NEW, deployed=NEW, switched_at=T0, report=HEALTHY_NEW)
    assert plan(back, T0 + timedelta(seconds=31)) == Promote(NEW)


def test_a_revision_the_runtime_refused_fails_at_once_not_after_the_activation_timeout() -> None:
    refused = RuntimeReport(
        True, "Running", "", GOOD, "Running", refused_revision=NEW, refused_reason="VAR Level removed"
    )
    state = replace(STEADY, desired=NEW, deployed=NEW, deployed_at=T0, switched_at=None, report=refused)
    assert plan(state, T0 + timedelta(seconds=1)) == Rollback(
        GOOD, NEW, f"the runtime refused {NEW}: VAR Level removed"
    )


def test_a_first_revision_failed_for_a_late_start_is_verified_again_once_it_runs() -> None:
    late = replace(
        STEADY, last_known_good="", failed=GOOD, switched_at=None, report=RuntimeReport(False, "NoReport", "")
    )
    assert plan(late, T0) == Steady()  # failed, and nothing runs it: waits for a new spec
    assert plan(replace(late, report=HEALTHY_OLD, pod_ready=False), T0) == Steady()
    assert plan(replace(late, report=HEALTHY_OLD), T0) == Reactivated(GOOD, T0)
    verified = replace(STEADY, last_known_good="", failed=GOOD, switched_at=T0)  # failed during its verification
    assert plan(verified, T0) == Steady()
