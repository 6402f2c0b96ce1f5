"""Applying a workload's child objects, skipping those already applied unchanged (one request per change, not per
reconcile). Every ten minutes or so (jittered per child) each child is read back and compared with what was applied;
only a child edited or deleted by hand is applied again, so settled workloads cost reads, never writes.

Children go out concurrently as a `Batch` (`start`), so a pass waits for the slowest request, not for their sum:
the reconcilers start what a pod needs first, create the pod once that is done, and let the rest run beside it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from shopfloor_operator.drift import first_difference
from shopfloor_operator.kube import Kube, KubeError, path_of

RECHECK_AFTER_SECONDS = 600.0  # read back after this (x 0.75-1.25, per child)
REQUEST_THREADS = 16  # requests in flight for all passes together (the client's connection pool is sized to match)

Mode = Literal["apply", "exists", "absent"]  # server-side apply | create once | delete once


@dataclass
class Batch:
    """Requests in flight; `wait` returns when all are done and raises the first failure."""

    futures: list[Future[None]] = field(default_factory=list)

    def wait(self) -> None:
        errors = []
        for future in self.futures:
            try:
                future.result()
            except Exception as error:  # every request finishes before the first error is raised
                errors.append(error)
        if errors:
            raise errors[0]


@contextlib.contextmanager
def alongside(batch: Batch) -> Iterator[None]:
    """Run the block while `batch` is in flight and wait for it after; the block's own failure comes first."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            batch.wait()
        raise
    batch.wait()


class ChildApplier:
    def __init__(self, kube: Kube, clock: Any = time.monotonic, threads: int = REQUEST_THREADS) -> None:
        self.kube = kube
        self.clock = clock
        self._applied: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="children")

    @staticmethod
    def _key(manifest: dict[str, Any]) -> str:
        metadata = manifest["metadata"]
        return f"{manifest['kind']}/{metadata['namespace']}/{metadata['name']}"

    @staticmethod
    def _digest(mode: Mode, manifest: dict[str, Any]) -> str:
        if mode != "apply":
            # Per owner: a workload deleted and made again under the same name gets its objects made again.
            owners = ",".join(ref.get("uid", "") for ref in manifest["metadata"].get("ownerReferences") or [])
            return f"{mode}:{owners}"
        return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()

    def _seen(self, key: str, digest: str) -> float | None:
        """How long ago this exact manifest was dealt with, None if never (or another version of it)."""
        with self._lock:
            seen = self._applied.get(key)
        return self.clock() - seen[1] if seen is not None and seen[0] == digest else None

    def _remember(self, key: str, digest: str) -> None:
        # A random age spreads the read-backs of children applied together over a few minutes.
        with self._lock:
            self._applied[key] = (digest, self.clock() - random.uniform(-0.25, 0.25) * RECHECK_AFTER_SECONDS)

    def _request(self, mode: Mode) -> Callable[[dict[str, Any]], Any]:
        if mode == "apply":
            return self.kube.apply
        if mode == "exists":
            return self.kube.create
        return lambda manifest: self.kube.delete(path_of(manifest))

    def _as_wanted(self, mode: Mode, manifest: dict[str, Any]) -> bool:
        """Read back: is the child still as this operator left it?"""
        live = self.kube.get(path_of(manifest))
        if mode == "absent" or live is None:
            return (mode == "absent") == (live is None)
        return mode == "exists" or first_difference(manifest, live) is None

    def _pending(self, mode: Mode, manifest: dict[str, Any]) -> Callable[[], None] | None:
        """The request(s) to send, or None when this exact manifest was dealt with recently."""
        key, digest = self._key(manifest), self._digest(mode, manifest)
        age = self._seen(key, digest)
        if age is not None and age < RECHECK_AFTER_SECONDS:
            return None
        request = self._request(mode)

        def send() -> None:
            if age is None or not self._as_wanted(mode, manifest):
                request(manifest)
            self._remember(key, digest)

        return send

    def start(self, *children: tuple[Mode, dict[str, Any]]) -> Batch:
        """Send every child's request concurrently; nothing is sent for children already up to date."""
        batch = Batch()
        for mode, manifest in children:
            send = self._pending(mode, manifest)
            if send is not None:
                batch.futures.append(self._pool.submit(send))
        return batch

    def submit(self, request: Callable[[], None]) -> None:
        """Send a request that nothing waits for (an Event): off the pass' critical path."""
        self._pool.submit(request)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


__all__ = ["Batch", "ChildApplier", "KubeError", "alongside"]
