"""ConfigMaps the workload reads and writes by name: a watcher for its runtime ConfigMap, a small key/value store.

The watcher lists then watches the one ConfigMap (field selector on its name) in a worker thread, with a server-side
timeout and a client-side read timeout so a silent connection cannot hang it; it relists after errors. The callback
gets the ConfigMap's data on the event loop whenever it changed.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

log = logging.getLogger(__name__)

WATCH_TIMEOUT_S = 30
READ_TIMEOUT_S = WATCH_TIMEOUT_S + 15
CONNECT_TIMEOUT_S = 5
RETRY_AFTER_FAILURE_S = 2.0

DataCallback = Callable[[dict[str, str]], Coroutine[Any, Any, None]]


class ConfigMapWatcher:
    def __init__(self, api: client.ApiClient, namespace: str, name: str, on_data: DataCallback) -> None:
        self.core = client.CoreV1Api(api)
        self.namespace, self.name = namespace, name
        self.on_data = on_data
        self._stop = threading.Event()
        self._last: dict[str, str] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name=f"watch-{name}", daemon=True)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _deliver(self, data: dict[str, str]) -> None:
        if data == self._last or self._loop is None:
            return
        self._last = data
        future = asyncio.run_coroutine_threadsafe(self.on_data(dict(data)), self._loop)
        try:
            future.result()
        except Exception as exc:  # the workload's handling failed; the next change is delivered all the same
            log.error("handling ConfigMap %s failed: %s", self.name, exc)

    def _run(self) -> None:
        selector = f"metadata.name={self.name}"
        while not self._stop.is_set():
            try:
                listed = self.core.list_namespaced_config_map(
                    self.namespace, field_selector=selector, _request_timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S)
                )
                for item in listed.items:
                    self._deliver(dict(item.data or {}))
                stream = watch.Watch()
                for event in stream.stream(
                    self.core.list_namespaced_config_map,
                    self.namespace,
                    field_selector=selector,
                    resource_version=listed.metadata.resource_version,
                    timeout_seconds=WATCH_TIMEOUT_S,
                    _request_timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S),
                ):
                    if self._stop.is_set():
                        stream.stop()
                        break
                    if event["type"] in ("ADDED", "MODIFIED"):
                        self._deliver(dict(event["object"].data or {}))
            except (ApiException, HTTPError, OSError, ValueError) as exc:
                log.warning("watching ConfigMap %s/%s: %s", self.namespace, self.name, getattr(exc, "reason", exc))
                self._stop.wait(RETRY_AFTER_FAILURE_S)


class ConfigMapStore:
    """One key of one ConfigMap, read and written by name (patch, or create when absent)."""

    def __init__(self, api: client.ApiClient, namespace: str, name: str, key: str, timeout_s: float = 5.0) -> None:
        self.core = client.CoreV1Api(api)
        self.namespace, self.name, self.key = namespace, name, key
        self.timeout_s = timeout_s

    def read(self) -> str | None:
        try:
            found = self.core.read_namespaced_config_map(self.name, self.namespace, _request_timeout=self.timeout_s)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return (found.data or {}).get(self.key)

    def write(self, text: str) -> None:
        body = {"data": {self.key: text}}
        try:
            self.core.patch_namespaced_config_map(self.name, self.namespace, body, _request_timeout=self.timeout_s)
        except ApiException as exc:
            if exc.status != 404:
                raise
            created = {"metadata": {"name": self.name}, **body}
            self.core.create_namespaced_config_map(self.namespace, created, _request_timeout=self.timeout_s)
