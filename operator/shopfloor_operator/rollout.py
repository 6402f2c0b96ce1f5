"""Pure planner of program updates of one PLC: deploy, wait for the runtime, verify, promote or roll back.

State in, the next single action out; the clock is passed in, so tests step through time without sleeping.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from shopfloor_operator.health import RuntimeReport

ACTIVATION_TIMEOUT = timedelta(seconds=60)
# What a runtime reports while it (re)starts: after a failover or a pod replacement nothing is known yet about the
# program, so verification waits instead of blaming it. A fault, a stale report or a failing probe still count.
RESTARTING = ("NoReport", "RuntimeUnknown", "RuntimeLoading", "RuntimeStopped")


@dataclass(frozen=True)
class ProgramState:
    desired: str | None  # revision of the spec's program; None while it does not compile
    deployed: str  # revision in the runtime ConfigMap
    deployed_at: datetime | None
    last_known_good: str
    failed: str  # revision rolled back; not deployed again until the spec changes
    switched_at: datetime | None  # when the runtime first reported `deployed` active
    restart: bool  # updateStrategy Restart: a new revision replaces the pod
    verify_for: timedelta
    report: RuntimeReport
    pod_ready: bool
    pod_ready_since: datetime | None = None  # the activation clock starts when both deploy and pod are there
    activation_timeout: timedelta = ACTIVATION_TIMEOUT


@dataclass(frozen=True)
class Deploy:
    revision: str
    restart: bool
    reason: str


@dataclass(frozen=True)
class Switched:
    """The runtime reports the deployed revision: start the verification period."""

    at: datetime


@dataclass(frozen=True)
class Reactivated:
    """A first revision marked failed (it was not activated in time, or faulted on loading) that its runtime now runs
    healthy after all, in a ready pod, e.g. a pod that started late after an API server outage: verified again from
    `at`, instead of staying Faulted until the spec changes."""

    revision: str
    at: datetime


@dataclass(frozen=True)
class Promote:
    """Verified: the deployed revision becomes the last known good."""

    revision: str


@dataclass(frozen=True)
class Rollback:
    to_revision: str
    failed_revision: str
    reason: str


@dataclass(frozen=True)
class Fail:
    """Verification failed and there is nothing to roll back to (the first revision)."""

    failed_revision: str
    reason: str


@dataclass(frozen=True)
class Wait:
    reason: str
    recheck_after: float  # seconds


@dataclass(frozen=True)
class Steady:
    """Nothing to do: the deployed revision is verified, or failed and waits for a new spec."""


Action = Deploy | Switched | Reactivated | Promote | Rollback | Fail | Wait | Steady


def plan(state: ProgramState, now: datetime) -> Action:
    if state.desired and state.desired not in (state.deployed, state.failed):
        restart = state.restart and bool(state.deployed)
        if not state.deployed:
            return Deploy(state.desired, False, f"first program revision {state.desired}")
        how = "replacing the pod" if restart else "online change"
        return Deploy(state.desired, restart, f"new program revision {state.desired} ({how})")
    if not state.deployed:
        return Wait("no valid program to deploy", 30.0)
    report = state.report
    first_failed = state.deployed == state.failed and not state.last_known_good and state.switched_at is None
    if first_failed and report.active_revision == state.deployed and report.healthy and state.pod_ready:
        return Reactivated(state.deployed, now)
    if state.deployed in (state.last_known_good, state.failed):
        return Steady()  # verified, or failed with nothing to roll back to: waits for a new spec (or a late start)
    if state.switched_at is None:
        # A runtime reports through its Lease before the kubelet's first readiness probe passes: verification
        # starts once both say so, or a new pod would fail "its readiness probe" before one was run.
        if report.active_revision == state.deployed and report.healthy and state.pod_ready:
            return Switched(now)
        if report.state == "Faulted":
            return _failed(state, f"revision {state.deployed} faulted on loading: {report.fault or 'no detail'}")
        if report.refused_revision and report.refused_revision == state.deployed:
            # Refused by the runtime itself (incompatible online change): known now, no need to wait for a timeout.
            return _failed(state, f"the runtime refused {state.deployed}: {report.refused_reason or 'no reason given'}")
        if not state.pod_ready or state.pod_ready_since is None:
            return Wait(f"waiting for a ready pod to activate {state.deployed}", 2.0)
        waited = now - max(state.deployed_at or now, state.pod_ready_since)
        if waited > state.activation_timeout:
            seconds = int(state.activation_timeout.total_seconds())
            return _failed(state, f"the runtime did not activate {state.deployed} within {seconds}s ({report.message})")
        remaining = (state.activation_timeout - waited).total_seconds()
        return Wait(f"waiting for the runtime to activate {state.deployed}", max(1.0, min(remaining, 5.0)))
    if report.reason in RESTARTING:
        return Wait(f"verifying {state.deployed}: waiting for the runtime ({report.message})", 1.0)
    if not report.healthy:
        return _failed(state, report.message)
    if not state.pod_ready:
        return _failed(state, "the pod failed its readiness probe")
    verified = now - state.switched_at
    if verified >= state.verify_for:
        return Promote(state.deployed)
    return Wait(f"verifying {state.deployed}", max(0.5, min((state.verify_for - verified).total_seconds(), 5.0)))


def _failed(state: ProgramState, reason: str) -> Rollback | Fail:
    if state.last_known_good:
        return Rollback(state.last_known_good, state.deployed, reason)
    return Fail(state.deployed, reason)
