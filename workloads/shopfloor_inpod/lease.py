"""The workload's Lease as a lock: one holder drives the process; a holder that cannot renew fences itself.

Semantics follow client-go's leader election with a LeaseLock (tryAcquireOrRenew): every write is an update guarded
by the resourceVersion last read, so a stale renewal (one that reaches the API server late, after a partition
healed) is refused with 409 instead of taking the Lease back; `leaseTransitions` counts holders and is the fencing
epoch. The holder never decides that someone else's Lease expired: the operator does that on its own clock and
hands the Lease to the next pod by name (docs/failover.md).

The fence is a deadline on this process' monotonic clock: `lease_duration - fence_margin` after the *start* of the
last renewal that succeeded. Before each field write the runtime asks `may_drive()`. When a renewal fails, the
operator's witness is asked whether the API server is unreachable for the operator too: then nobody can replace
this runtime and the answer extends the deadline like a renewal would (the operator promises not to hand the Lease
over for a lease period after answering so).

A hot standby adds two things (shopfloor_vplc.hot_standby): `gates`, further conditions the holder must meet to
drive (its standby's acknowledgements), and `take_over`, the standby's own acquisition from a silent primary, allowed
only while the Lease names it as the standby.

All API calls run in a worker thread with request timeouts; failures are counted and retried, never raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from shopfloor_api.runtime_contract import ANNOTATION_MAX_LENGTH, LockTiming

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Witness = Callable[[], Awaitable[bool | None]]  # True: the API is reachable for the operator; None: no answer


def micro_time(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _without_retries(api: client.ApiClient) -> client.ApiClient:
    """A client of its own, on the same credentials, whose requests are never retried by urllib3: an attempt must
    take at most its timeout, or the deadline passes before the witness can be asked."""
    configuration = copy.copy(api.configuration)
    configuration.retries = False
    return client.ApiClient(configuration)


def _transitions(record: Mapping[str, Any]) -> int:
    """The Lease's `leaseTransitions` (0 when unset): the epoch of its holder."""
    return int((record.get("spec") or {}).get("leaseTransitions") or 0)


class LockState(StrEnum):
    WAITING = "Waiting"  # not the holder (yet): outputs are not driven
    HOLDING = "Holding"  # the holder, renewed in time: drives the outputs
    FENCED = "Fenced"  # was the holder, could not renew in time: outputs stopped; regained by a renewal
    SUPERSEDED = "Superseded"  # the Lease went to another holder: outputs stopped for good


@dataclass
class FenceClock:
    """Deadline arithmetic on one monotonic clock (pure: the times are passed in)."""

    timing: LockTiming
    base: float | None = None  # start of the last successful renewal (or witness answer), monotonic seconds

    def extend(self, started_at: float) -> None:
        self.base = started_at if self.base is None else max(self.base, started_at)

    def drive_deadline(self) -> float | None:
        return None if self.base is None else self.base + self.timing.lease_duration_s - self.timing.fence_margin_s

    def safe_state_deadline(self) -> float | None:
        if self.base is None:
            return None
        return self.base + self.timing.lease_duration_s - self.timing.safe_state_margin_s

    def may_drive(self, now: float) -> bool:
        deadline = self.drive_deadline()
        return deadline is not None and now < deadline

    def may_write_safe_state(self, now: float) -> bool:
        deadline = self.safe_state_deadline()
        return deadline is not None and now < deadline


StateListener = Callable[[LockState, str], None]
WrittenListener = Callable[[Mapping[str, str]], None]  # the annotations of a write that succeeded
Gate = Callable[[float], bool]  # may the holder drive at this monotonic time, as far as this gate is concerned


class LeaseLock:
    """Acquire, renew and report through the Lease `name`; `holder` is this pod's name."""

    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        name: str,
        holder: str,
        timing: LockTiming | None = None,
        *,
        witness: Witness | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.coordination = client.CoordinationV1Api(_without_retries(api))
        self.namespace, self.name, self.holder = namespace, name, holder
        self.timing = timing or LockTiming()
        self.witness = witness
        self.clock = clock
        self.fence = FenceClock(self.timing)
        self.state = LockState.WAITING
        self.state_reason = "not acquired yet"
        self.epoch = 0  # leaseTransitions when this holder took the Lease
        self.listeners: list[StateListener] = []
        self.written_listeners: list[WrittenListener] = []
        self.gates: list[Gate] = []
        self.renewals = 0
        self.failures = 0
        self.conflicts = 0
        self.witness_extensions = 0
        self._annotations: dict[str, str] = {}
        self._record: dict[str, Any] | None = None  # the Lease as last read or written (with its resourceVersion)
        self._held_once = False
        self._lock = threading.Lock()
        self._attempt = threading.Lock()  # one API attempt at a time: the loop's, a take-over, a release
        self._changed: asyncio.Event | None = None
        self._extended: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- what the runtime asks ---------------------------------------------------------------------------------

    def may_drive(self) -> bool:
        """True while this runtime may write its field outputs and accept client writes."""
        now = self.clock()
        return self.state is LockState.HOLDING and self.fence.may_drive(now) and all(gate(now) for gate in self.gates)

    def holds_in_time(self) -> bool:
        """Holding and renewed in time, whatever the gates say (a primary keeps its standby in sync while gated)."""
        return self.state is LockState.HOLDING and self.fence.may_drive(self.clock())

    def may_write_safe_state(self) -> bool:
        """The one safe-state write on fencing still leaves in time (not at all once superseded)."""
        return (
            self.state is not LockState.SUPERSEDED and self._held_once and self.fence.may_write_safe_state(self.clock())
        )

    def update(self, annotations: Mapping[str, str]) -> None:
        """Set report annotations (from any thread); a change is written at once while holding."""
        trimmed = {key: value[:ANNOTATION_MAX_LENGTH] for key, value in annotations.items()}
        with self._lock:
            merged = {**self._annotations, **trimmed}
            if merged == self._annotations:
                return
            self._annotations = merged
        if self._loop is not None and self._changed is not None:
            self._loop.call_soon_threadsafe(self._changed.set)

    # -- the loop ----------------------------------------------------------------------------------------------

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._changed, self._extended = asyncio.Event(), asyncio.Event()
        watcher = asyncio.create_task(self._watch_deadline(), name="lease-deadline")
        try:
            while True:
                self._changed.clear()
                started = self.clock()
                attempt = asyncio.ensure_future(asyncio.to_thread(self.try_acquire_or_renew))
                asked = False
                if self.witness is not None and self.state is LockState.HOLDING:
                    # A renewal that hangs (a cut-off node) would leave too little of the lease period to ask after it.
                    done, _ = await asyncio.wait({attempt}, timeout=self.timing.witness_after_s)
                    if not done:
                        await self._ask_witness()
                        asked = True
                ok = await attempt
                if ok:
                    self._extend(started)
                    wait = self.timing.renew_interval_s
                else:
                    if not asked and self.witness is not None:
                        await self._ask_witness()
                    wait = self.timing.retry_interval_s if self._held_once else self.timing.renew_interval_s
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), wait)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _ask_witness(self) -> None:
        """An answer may only prolong an unbroken hold: once the deadline has passed, the Lease may have been handed
        over before the operator lost the API server, and only a renewal (guarded by version) proves it is ours."""
        assert self.witness is not None
        started = self.clock()
        if self.state is not LockState.HOLDING or not self.fence.may_drive(started):
            return
        try:
            reachable = await asyncio.wait_for(self.witness(), self.timing.witness_timeout_s)
        except (TimeoutError, OSError):
            reachable = None
        if reachable is False:
            # The operator cannot reach the API either: nobody can be handed the Lease, so keep driving.
            self.witness_extensions += 1
            if self.witness_extensions == 1 or self.witness_extensions % 20 == 0:
                log.warning("Lease %s/%s: API server unreachable for the operator too; outputs held", *self._key)
            self._extend(started)
        elif reachable is True and self.state is LockState.HOLDING:
            log.warning("Lease %s/%s: this node is cut off from the API server (the operator reaches it)", *self._key)

    def _extend(self, started_at: float) -> None:
        self.fence.extend(started_at)
        if self.state is not LockState.SUPERSEDED and self.fence.may_drive(self.clock()):
            self._set_state(LockState.HOLDING, f"holder at epoch {self.epoch}")
        if self._extended is not None:
            self._extended.set()

    async def _watch_deadline(self) -> None:
        """Fence at the deadline itself, not at the next loop turn (a renewal may be hanging in its thread)."""
        assert self._extended is not None
        while True:
            self._extended.clear()
            deadline = self.fence.drive_deadline()
            if self.state is LockState.HOLDING and deadline is not None:
                delay = deadline - self.clock()
                if delay <= 0:
                    self._set_state(LockState.FENCED, "Lease not renewed in time")
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._extended.wait(), delay)
            else:
                await self._extended.wait()

    def _set_state(self, state: LockState, reason: str) -> None:
        if state is self.state:
            return
        previous, self.state, self.state_reason = self.state, state, reason
        level = logging.INFO if state is LockState.HOLDING else logging.WARNING
        log.log(level, "Lease %s/%s: %s -> %s (%s)", *self._key, previous.value, state.value, reason)
        for listener in self.listeners:
            listener(state, reason)

    @property
    def _key(self) -> tuple[str, str]:
        return self.namespace, self.name

    # -- one attempt (worker thread) ---------------------------------------------------------------------------

    def try_acquire_or_renew(self) -> bool:
        """One renewal (or acquisition). True when this pod holds the Lease afterwards."""
        with self._attempt:
            return self._try_acquire_or_renew()

    def _try_acquire_or_renew(self) -> bool:
        try:
            for _ in range(2):  # a conflict means our copy is stale: read it once more and decide again
                record = self._record if self._record is not None else self._read()
                spec = record.get("spec") or {}
                current = spec.get("holderIdentity") or ""
                if current and current != self.holder:
                    self._record = None
                    self._lost_to(current, _transitions(record))
                    return False
                try:
                    self._record = self._write(record, acquire=current != self.holder)
                except ApiException as exc:
                    if exc.status != 409:
                        raise
                    self.conflicts += 1
                    self._record = None
                    continue
                self._held_once = True
                self.epoch = _transitions(self._record)
                self.renewals += 1
                return True
        except (ApiException, HTTPError, OSError) as exc:
            self._record = None if isinstance(exc, ApiException) else self._record
            self.failures += 1
            if self.failures == 1 or self.failures % 20 == 0:
                log.warning("Lease %s/%s not renewed: %s", *self._key, getattr(exc, "reason", exc))
        return False

    def _lost_to(self, holder: str, transitions: int) -> None:
        if self._held_once:
            reason = f"the Lease went to {holder} (epoch {transitions}); this runtime stops for good"
            self._call_soon(self._set_state, LockState.SUPERSEDED, reason)
        else:
            self._call_soon(self._set_state, LockState.WAITING, f"the Lease is held by {holder}")

    def _call_soon(self, function: Callable[..., None], *args: Any) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(function, *args)
        else:
            function(*args)

    def _read(self) -> dict[str, Any]:
        try:
            lease = self.coordination.read_namespaced_lease(
                self.name, self.namespace, _request_timeout=self.timing.request_timeout_s
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
            return self._create()
        return dict(self.coordination.api_client.sanitize_for_serialization(lease))

    def _create(self) -> dict[str, Any]:
        """The Lease is the operator's child; a runtime creates it only when it runs without one (tests, laptops)."""
        body = {"metadata": {"name": self.name, "namespace": self.namespace}, "spec": {}}
        try:
            created = self.coordination.create_namespaced_lease(
                self.namespace, body, _request_timeout=self.timing.request_timeout_s
            )
        except ApiException as exc:
            if exc.status != 409:
                raise
            created = self.coordination.read_namespaced_lease(
                self.name, self.namespace, _request_timeout=self.timing.request_timeout_s
            )
        return dict(self.coordination.api_client.sanitize_for_serialization(created))

    def _with_report(self, record: dict[str, Any], **spec: Any) -> dict[str, Any]:
        """`record` with this runtime's report merged into its annotations and `spec` set (still guarded by the
        record's resourceVersion)."""
        with self._lock:
            annotations = dict(self._annotations)
        body = copy.deepcopy(record)
        metadata = body.setdefault("metadata", {})
        metadata["annotations"] = {**(metadata.get("annotations") or {}), **annotations}
        body.setdefault("spec", {}).update(spec)
        return body

    def _write(self, record: dict[str, Any], *, acquire: bool) -> dict[str, Any]:
        now = micro_time(datetime.datetime.now(datetime.UTC))
        spec: dict[str, Any] = {
            "holderIdentity": self.holder,
            "renewTime": now,
            "leaseDurationSeconds": self.timing.lease_duration_seconds,
        }
        if acquire:
            spec.update(acquireTime=now, leaseTransitions=_transitions(record) + 1)
        written = self.coordination.replace_namespaced_lease(
            self.name, self.namespace, self._with_report(record, **spec), _request_timeout=self.timing.request_timeout_s
        )
        result = dict(self.coordination.api_client.sanitize_for_serialization(written))
        annotations = dict((result.get("metadata") or {}).get("annotations") or {})
        for listener in self.written_listeners:
            self._call_soon(listener, annotations)
        return result

    def read(self) -> dict[str, Any]:
        """The Lease as it is now (worker thread; raises the API's errors)."""
        with self._attempt:
            return self._read()

    def take_over(self, previous: str, standby_annotation: str) -> bool:
        """A hot standby's own acquisition from a primary it has stopped hearing from (worker thread). Only while
        the Lease is still held by `previous` and its annotation `standby_annotation` names this pod: the primary
        writes that name only while its outputs wait for this standby's acknowledgements, so it has stopped
        driving by now. Guarded by the version read here, like every write. True when this pod holds the Lease."""
        started = self.clock()
        if self.state is LockState.SUPERSEDED:  # it held the Lease once and lost it: never again
            return False
        with self._attempt:
            try:
                record = self._read()
                spec = record.get("spec") or {}
                annotations = (record.get("metadata") or {}).get("annotations") or {}
                if spec.get("holderIdentity") != previous or annotations.get(standby_annotation) != self.holder:
                    return False
                self._record = self._write(record, acquire=True)
            except (ApiException, HTTPError, OSError) as exc:
                self.failures += 1
                log.warning("Lease %s/%s not taken over: %s", *self._key, getattr(exc, "reason", exc))
                return False
            self._held_once = True
            self.epoch = _transitions(self._record)
        self._call_soon(self._extend, started)
        self.poke()  # renew on the holder's rhythm from now on
        return True

    def hand_to(self, successor: str) -> bool:
        """A planned switchover (worker thread): give the Lease to `successor` by name (a new epoch), guarded by the
        version this holder last wrote. This runtime is superseded from then on. True when handed over."""
        if self.state is not LockState.HOLDING:
            return False
        with self._attempt:
            if self._record is None:
                return False
            now = micro_time(datetime.datetime.now(datetime.UTC))
            transitions = _transitions(self._record) + 1
            body = self._with_report(
                self._record, holderIdentity=successor, acquireTime=now, renewTime=now, leaseTransitions=transitions
            )
            try:
                self.coordination.replace_namespaced_lease(
                    self.name, self.namespace, body, _request_timeout=self.timing.request_timeout_s
                )
            except (ApiException, HTTPError, OSError) as exc:
                log.warning("Lease %s/%s not handed to %s: %s", *self._key, successor, getattr(exc, "reason", exc))
                return False
            self._record = None
        self._call_soon(self._set_state, LockState.SUPERSEDED, f"handed over to {successor} (epoch {transitions})")
        return True

    def poke(self) -> None:
        """Try to acquire or renew now instead of at the next interval (from any thread): the Lease was just handed
        to this pod, or taken over by it."""
        if self._loop is not None and self._changed is not None:
            self._loop.call_soon_threadsafe(self._changed.set)

    def release(self) -> bool:
        """On a clean shutdown: give the Lease up (holder empty) with the final report, so the next pod takes it at
        once instead of waiting for it to expire. Only while holding; True when released."""
        if self.state is not LockState.HOLDING or self._record is None:
            return False
        now = micro_time(datetime.datetime.now(datetime.UTC))
        body = self._with_report(self._record, holderIdentity="", leaseDurationSeconds=1, renewTime=now)
        with self._attempt:
            try:
                self.coordination.replace_namespaced_lease(
                    self.name, self.namespace, body, _request_timeout=self.timing.request_timeout_s
                )
            except (ApiException, HTTPError, OSError) as exc:
                log.warning("Lease %s/%s not released: %s", *self._key, getattr(exc, "reason", exc))
                return False
        self._set_state(LockState.WAITING, "released")
        return True
