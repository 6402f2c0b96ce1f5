"""The glue between kopf's watches and the reconcilers: fresh inputs, one reconcile at a time per object, metrics,
and wake-ups when something an object depends on changes."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from asyncio import FIRST_COMPLETED
from typing import Any

from kubernetes import client

from shopfloor_operator.bridge import BridgeReconciler
from shopfloor_operator.children import ChildApplier
from shopfloor_operator.kube import Kube, KubeError, object_path
from shopfloor_operator.leases import LeaseObservations
from shopfloor_operator.metrics import OperatorMetrics
from shopfloor_operator.passes import DEFAULT_RECHECK, Observed, Outcome
from shopfloor_operator.plc import PlcReconciler
from shopfloor_operator.settings import OperatorSettings
from shopfloor_operator.sources import ProgramSources

log = logging.getLogger(__name__)

Key = tuple[str, str, str]  # (kind, namespace, name)
CONTROLLERS = {"VirtualPLC": "virtualplc", "ProtocolBridge": "protocolbridge"}
ERROR_RECHECK = 5.0


def _version(body: dict[str, Any]) -> int:
    text = str((body.get("metadata") or {}).get("resourceVersion", "0"))
    return int(text) if text.isdigit() else 0


class Controller:
    def __init__(self, api_client: client.ApiClient, settings: OperatorSettings) -> None:
        self.settings = settings
        self.metrics = OperatorMetrics()
        self.kube = Kube(
            api_client, lambda verb, resource: self.metrics.api_requests_total.labels(verb, resource).inc()
        )
        self.applier = ChildApplier(self.kube)
        self.sources = ProgramSources(api_client, self._wake_from_thread)
        self.reconcilers: dict[str, PlcReconciler | BridgeReconciler] = {
            "VirtualPLC": PlcReconciler(self.kube, settings, self.applier, self.sources),
            "ProtocolBridge": BridgeReconciler(self.kube, settings, self.applier),
        }
        self._loop: asyncio.AbstractEventLoop | None = None
        self.leases = LeaseObservations()
        self._expiry_timers: dict[Key, asyncio.TimerHandle] = {}
        self._lease_reports: dict[Key, tuple[str, str]] = {}  # holder and annotations last seen, per object
        self._wakeups: dict[Key, asyncio.Event] = {}
        self._latest: dict[Key, dict[str, Any]] = {}  # the newest body seen or written, per object
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ wake-ups (event loop only)

    def wakeup_event(self, key: Key) -> asyncio.Event:
        return self._wakeups.setdefault(key, asyncio.Event())

    def wake(self, key: Key, body: dict[str, Any] | None = None) -> None:
        """Look at `key` again now; `body` is the object as the watch just delivered it."""
        if body is not None:
            self._remember(key, body)
        event = self._wakeups.get(key)
        if event is not None:
            event.set()

    def _wake_from_thread(self, key: Key) -> None:
        """A referenced ConfigMap changed (seen by a watch thread): look at `key` again, on the event loop."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.wake, key)

    def close(self) -> None:
        self.sources.stop()
        self.applier.close()

    def lease_changed(self, key: Key, lease: dict[str, Any]) -> None:
        """A watch event of the workload's Lease: note the version at once (the expiry clock restarts) and look at
        the object again when the holder or its report changed, or when the Lease would expire unrenewed. Plain
        renewals wake nothing: at three per lease period they would keep every daemon busy."""
        if not self.leases.observe(key, lease):
            return
        view = self.leases.view(key, lease)
        timer = self._expiry_timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        if view is not None and view.holder:
            loop = asyncio.get_running_loop()
            self._expiry_timers[key] = loop.call_later(view.expires_in + 0.05, self.wake, key)
        report = (
            str((lease.get("spec") or {}).get("holderIdentity") or ""),
            repr(sorted(((lease.get("metadata") or {}).get("annotations") or {}).items())),
        )
        if self._lease_reports.get(key) != report:
            self._lease_reports[key] = report
            self.wake(key)

    def forget(self, key: Key, uid: str) -> None:
        self._wakeups.pop(key, None)
        timer = self._expiry_timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        self._lease_reports.pop(key, None)
        self.leases.forget(key)
        with self._lock:
            self._latest.pop(key, None)
        self.metrics.forget(CONTROLLERS[key[0]], uid)
        self.reconcilers[key[0]].forget(key)

    async def run_object(self, key: Key, inputs: Any, stopped: Any) -> None:
        """Reconcile `key` until kopf stops its daemon: at once, then whenever woken or due again."""
        self._loop = asyncio.get_running_loop()
        wakeup = self.wakeup_event(key)
        while not stopped:
            wakeup.clear()
            observed = inputs()
            outcome = await asyncio.to_thread(self.reconcile, key, observed)
            next_look = min(outcome.recheck_after, self.settings.resync_seconds)
            log.debug("%s %s/%s: phase %s, next look in %.1fs", *key, outcome.phase, next_look)
            woken = asyncio.ensure_future(wakeup.wait())
            stopping = asyncio.ensure_future(stopped.wait())
            try:
                await asyncio.wait({woken, stopping}, timeout=next_look, return_when=FIRST_COMPLETED)
            finally:
                woken.cancel()
                stopping.cancel()

    # ------------------------------------------------------------------ reconcile (worker thread)

    def reconcile(self, key: Key, observed: Observed) -> Outcome:
        kind, namespace, name = key
        controller = CONTROLLERS[kind]
        with self._lock:
            latest = self._latest.get(key)
        if latest is not None and _version(latest) > _version(observed.body):
            observed.body = latest  # our own status write is not in the watch yet
        if observed.body["metadata"].get("deletionTimestamp"):
            return Outcome("", DEFAULT_RECHECK)  # being deleted: garbage collection removes the children
        self._confirm_pods(observed, namespace)
        started = time.perf_counter()
        try:
            self._judge_lease(key, observed)
            outcome = self.reconcilers[kind].reconcile(observed)
        except KubeError as error:
            # Conflicts and transient API errors: look again shortly, level-based.
            result = "requeue_after" if error.status in (409, 429) or error.status >= 500 else "error"
            log.warning("%s %s/%s: %s", kind, namespace, name, error)
            self.metrics.reconcile_total.labels(controller, result).inc()
            return Outcome("", ERROR_RECHECK)
        except Exception:
            log.exception("%s %s/%s: reconcile failed", kind, namespace, name)
            self.metrics.reconcile_total.labels(controller, "error").inc()
            return Outcome("", ERROR_RECHECK)
        finally:
            self.metrics.reconcile_time.labels(controller).observe(time.perf_counter() - started)
        self.metrics.reconcile_total.labels(controller, "success").inc()
        if outcome.replaced:
            self.metrics.replacements_total.labels(controller).inc()
        if outcome.rolled_back:
            self.metrics.rollbacks_total.inc()
        metadata = observed.body["metadata"]
        self.metrics.observe(
            controller, metadata.get("uid", ""), int(metadata.get("generation", 0)), outcome.phase, outcome.ready
        )
        self._remember(key, observed.body)
        return outcome

    def _judge_lease(self, key: Key, observed: Observed) -> None:
        observed.lock = self.leases.view(key, observed.lease)
        if observed.lock is not None and observed.lock.expired:
            # Confirm with the API before acting: a watch that lags (after an API outage) shows an old version,
            # and every hand-over guarded by it would fail.
            fresh = self.kube.get(object_path("coordination.k8s.io/v1", "Lease", key[1], key[2]))
            if fresh is not None:
                observed.lease, observed.lock = fresh, self.leases.view(key, fresh)

    def _remember(self, key: Key, body: dict[str, Any]) -> None:
        """Keep the newest version seen of an object: kopf's live body can lag behind its own events and our
        status writes."""
        with self._lock:
            known = self._latest.get(key)
            if known is None or _version(body) >= _version(known):
                self._latest[key] = body

    def _confirm_pods(self, observed: Observed, namespace: str) -> None:
        """The status names a pod the watch has not shown yet (just created): ask, so no second pod is made."""
        status = observed.body.get("status") or {}
        expected = [status.get("podName"), (status.get("redundancy") or {}).get("standby")]
        for name in expected:
            if not name or any(p["metadata"]["name"] == name for p in observed.pods):
                continue
            found = self.kube.get(object_path("v1", "Pod", namespace, name))
            if found is not None:
                observed.pods = [*observed.pods, found]
