"""Applying a workload's child objects, skipping those already applied unchanged (one request per change, not per
reconcile); a periodic full re-apply repairs children edited by hand."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from typing import Any

from shopfloor_operator.kube import Kube, KubeError, path_of

REAPPLY_AFTER_SECONDS = 600.0


class ChildApplier:
    def __init__(self, kube: Kube, clock: Any = time.monotonic) -> None:
        self.kube = kube
        self.clock = clock
        self._applied: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(manifest: dict[str, Any]) -> str:
        metadata = manifest["metadata"]
        return f"{manifest['kind']}/{metadata['namespace']}/{metadata['name']}"

    def _fresh(self, key: str, digest: str) -> bool:
        with self._lock:
            seen = self._applied.get(key)
        return seen is not None and seen[0] == digest and self.clock() - seen[1] < REAPPLY_AFTER_SECONDS

    def _remember(self, key: str, digest: str) -> None:
        with self._lock:
            self._applied[key] = (digest, self.clock())

    def apply(self, manifest: dict[str, Any]) -> None:
        """Server-side apply unless this exact manifest was applied recently."""
        key = self._key(manifest)
        digest = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()
        if self._fresh(key, digest):
            return
        self.kube.apply(manifest)
        self._remember(key, digest)

    def ensure_exists(self, manifest: dict[str, Any]) -> None:
        """Create once (objects the workload writes afterwards)."""
        key = self._key(manifest)
        if self._fresh(key, "exists"):
            return
        self.kube.create(manifest)
        self._remember(key, "exists")

    def ensure_absent(self, manifest: dict[str, Any]) -> None:
        """Delete once (a child the workload no longer wants); gone already is fine."""
        key = self._key(manifest)
        if self._fresh(key, "absent"):
            return
        self.kube.delete(path_of(manifest))
        self._remember(key, "absent")

    def forget(self, manifest: dict[str, Any]) -> None:
        with self._lock:
            self._applied.pop(self._key(manifest), None)


__all__ = ["ChildApplier", "KubeError"]
