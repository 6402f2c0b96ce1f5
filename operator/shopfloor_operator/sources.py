"""ConfigMaps that VirtualPLCs take their program from (`spec.program.configMapRef`), kept in memory by a watch.

One list+watch per namespace that has such a PLC, leaving the operator's own ConfigMaps out by label selector (they
hold every deployed program twice over and would dominate the stream). A reconcile pass reads the source from
memory instead of asking the API server, and a change to the ConfigMap wakes every PLC that uses it at once, not at
its next periodic pass. A namespace's watch stops with the last PLC that uses one of its ConfigMaps.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable
from typing import Any

from kubernetes import client, watch

from shopfloor_operator.builders.workload import MANAGED_BY
from shopfloor_operator.kube import KubeError

log = logging.getLogger(__name__)

NOT_OURS = f"app.kubernetes.io/managed-by!={MANAGED_BY}"
WATCH_SECONDS = 300  # server-side watch timeout; the watch resumes from the last version seen
REQUEST_TIMEOUT = (5.0, WATCH_SECONDS + 30.0)
SYNC_WAIT_SECONDS = 10.0
RETRY_SECONDS = 1.0


class _NamespaceWatch:
    """The data of one namespace's ConfigMaps (those not made by the operator), from a list and then a watch."""

    def __init__(self, api_client: client.ApiClient, namespace: str, changed: Callable[[str, str], None]) -> None:
        self.core = client.CoreV1Api(api_client)
        self.namespace = namespace
        self.changed = changed  # (namespace, ConfigMap name) whose referenced data may have changed
        self.data: dict[str, dict[str, str]] = {}
        self.synced = threading.Event()
        self.stopped = threading.Event()
        self._lock = threading.Lock()
        self._watch: watch.Watch | None = None
        self._thread = threading.Thread(target=self._run, name=f"program-sources-{namespace}", daemon=True)
        self._thread.start()

    def value(self, name: str, key: str) -> str | None:
        with self._lock:
            return (self.data.get(name) or {}).get(key)

    def _keep(self, name: str, data: dict[str, str] | None) -> None:
        kept = dict(data or {})
        with self._lock:
            before = self.data.get(name)
            if data is None:
                self.data.pop(name, None)
            else:
                self.data[name] = kept
        if before != (None if data is None else kept):
            self.changed(self.namespace, name)

    def _run(self) -> None:
        while not self.stopped.is_set():
            try:
                listed = self.core.list_namespaced_config_map(
                    self.namespace, label_selector=NOT_OURS, _request_timeout=REQUEST_TIMEOUT[0] + 25
                )
                names = set()
                for item in listed.items:
                    names.add(item.metadata.name)
                    self._keep(item.metadata.name, item.data)
                for gone in set(self.data) - names:
                    self._keep(gone, None)
                self.synced.set()
                version = listed.metadata.resource_version
                while not self.stopped.is_set():
                    self._watch = watch.Watch()
                    for event in self._watch.stream(
                        self.core.list_namespaced_config_map,
                        self.namespace,
                        label_selector=NOT_OURS,
                        resource_version=version,
                        timeout_seconds=WATCH_SECONDS,
                        _request_timeout=REQUEST_TIMEOUT,
                    ):
                        item = event["object"]
                        version = item.metadata.resource_version
                        self._keep(item.metadata.name, None if event["type"] == "DELETED" else item.data)
            except client.ApiException as error:
                if error.status != 410:  # 410: the version is too old; list again
                    log.warning("ConfigMaps of %s: %s; watching again", self.namespace, error.reason)
                    self.stopped.wait(RETRY_SECONDS)
            except Exception as error:  # a dropped connection, the API server away: list again after a moment
                if not self.stopped.is_set():
                    log.debug("ConfigMaps of %s: %s; watching again", self.namespace, error)
                    self.stopped.wait(RETRY_SECONDS)

    def stop(self) -> None:
        self.stopped.set()
        if self._watch is not None:
            self._watch.stop()


class ProgramSources:
    """`lookup` for the reconcilers; `on_change(holder)` is called (from a watch thread) for every holder whose
    ConfigMap changed."""

    def __init__(self, api_client: client.ApiClient, on_change: Callable[[Any], None]) -> None:
        self.api_client = api_client
        self.on_change = on_change
        self._watches: dict[str, _NamespaceWatch] = {}
        self._references: dict[Hashable, tuple[str, str]] = {}  # holder -> (namespace, ConfigMap name)
        self._holders: dict[tuple[str, str], set[Hashable]] = {}  # (namespace, ConfigMap name) -> holders
        self._lock = threading.Lock()

    def lookup(self, holder: Hashable, namespace: str, name: str, key: str) -> str | None:
        """The text under `key` of ConfigMap `name`, None when either is missing. KubeError (503) while the
        namespace's ConfigMaps could not be listed yet."""
        with self._lock:
            if self._references.get(holder) != (namespace, name):
                self._unreference(holder)
                self._references[holder] = (namespace, name)
                self._holders.setdefault((namespace, name), set()).add(holder)
            found = self._watches.get(namespace)
            if found is None:
                found = self._watches[namespace] = _NamespaceWatch(self.api_client, namespace, self._changed)
        if not found.synced.wait(SYNC_WAIT_SECONDS):
            raise KubeError(503, f"the ConfigMaps of namespace {namespace} could not be listed yet")
        return found.value(name, key)

    def release(self, holder: Hashable) -> None:
        """`holder` reads no ConfigMap any more (inline source, or deleted)."""
        with self._lock:
            self._unreference(holder)

    def watched_namespaces(self) -> list[str]:
        with self._lock:
            return sorted(self._watches)

    def stop(self) -> None:
        with self._lock:
            watches, self._watches = list(self._watches.values()), {}
        for namespace_watch in watches:
            namespace_watch.stop()

    def _unreference(self, holder: Hashable) -> None:
        previous = self._references.pop(holder, None)
        if previous is None:
            return
        namespace = previous[0]
        holders = self._holders.get(previous, set())
        holders.discard(holder)
        if not holders:
            self._holders.pop(previous, None)
        if not any(ns == namespace for ns, _ in self._holders):
            namespace_watch = self._watches.pop(namespace, None)
            if namespace_watch is not None:
                namespace_watch.stop()

    def _changed(self, namespace: str, name: str) -> None:
        with self._lock:
            holders = list(self._holders.get((namespace, name), ()))
        for holder in holders:
            self.on_change(holder)
