"""Reporting through a coordination.k8s.io/v1 Lease: holderIdentity = this pod, state in annotations.

Generic: the workload sets annotations (`update`), the reporter renews every `renew_interval_s` and at once when
they change. All API calls run in a worker thread with request timeouts; failures are logged and retried, never
raised, so a lost API connection changes nothing in the workload.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import threading
from collections.abc import Mapping

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

log = logging.getLogger(__name__)

RENEW_INTERVAL_S = 10.0
REQUEST_TIMEOUT_S = 5.0
RETRY_AFTER_FAILURE_S = 2.0


def micro_time(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseReporter:
    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        name: str,
        holder: str,
        *,
        renew_interval_s: float = RENEW_INTERVAL_S,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> None:
        self.coordination = client.CoordinationV1Api(api)
        self.namespace, self.name, self.holder = namespace, name, holder
        self.renew_interval_s = renew_interval_s
        self.request_timeout_s = request_timeout_s
        self._annotations: dict[str, str] = {}
        self._lock = threading.Lock()
        self._changed: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._acquired = False
        self.renewals = 0
        self.failures = 0

    def update(self, annotations: Mapping[str, str]) -> None:
        """Set annotations (from any thread); a change is reported at once."""
        with self._lock:
            merged = {**self._annotations, **annotations}
            if merged == self._annotations:
                return
            self._annotations = merged
        if self._loop is not None and self._changed is not None:
            self._loop.call_soon_threadsafe(self._changed.set)

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        while True:
            self._changed.clear()
            ok = await asyncio.to_thread(self.renew_once)
            wait = self.renew_interval_s if ok else RETRY_AFTER_FAILURE_S
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), wait)

    def renew_once(self) -> bool:
        with self._lock:
            annotations = dict(self._annotations)
        now = micro_time(datetime.datetime.now(datetime.UTC))
        spec: dict[str, object] = {
            "holderIdentity": self.holder,
            "renewTime": now,
            "leaseDurationSeconds": int(self.renew_interval_s * 3),
        }
        if not self._acquired:
            spec["acquireTime"] = now
        body = {"metadata": {"annotations": annotations}, "spec": spec}
        try:
            try:
                self.coordination.patch_namespaced_lease(
                    self.name, self.namespace, body, _request_timeout=self.request_timeout_s
                )
            except ApiException as exc:
                if exc.status != 404:
                    raise
                body["metadata"] = {"name": self.name, "annotations": annotations}
                self.coordination.create_namespaced_lease(self.namespace, body, _request_timeout=self.request_timeout_s)
        except (ApiException, HTTPError, OSError) as exc:
            self.failures += 1
            log.warning("Lease %s/%s not renewed: %s", self.namespace, self.name, getattr(exc, "reason", exc))
            return False
        self._acquired = True
        self.renewals += 1
        return True
