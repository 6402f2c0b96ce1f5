"""When a workload's Lease has expired, judged on the operator's own clock (client-go's rule, not the holder's
`renewTime`): a Lease expires once the operator has seen it unchanged for `leaseDuration + takeover margin`.

Two more things start that clock again, because during them the operator could not see renewals:
- the operator's start (it never saw the Lease before);
- every moment the operator could not reach the API server, including each "unreachable" answer its witness gave
  to a runtime (that runtime keeps driving on the strength of the answer, so no Lease may be handed over for a
  whole lease period after it).

Pure apart from the lock that makes it safe to use from the event loop and the reconcile threads; the clock is
injected.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shopfloor_api.runtime_contract import ANNOTATION_STANDBY, LockTiming

Key = tuple[str, str, str]  # (kind, namespace, name)


@dataclass(frozen=True)
class LeaseView:
    """The Lease of one workload as the operator judges it now."""

    holder: str  # pod name; empty when free
    epoch: int  # leaseTransitions
    duration_s: float
    version: str  # resourceVersion the judgement is about (hand-overs are guarded by it)
    taken: bool  # the holder renewed since it was given the Lease (not just handed over and still starting)
    expired: bool
    expires_in: float  # seconds until it would expire if not renewed; 0 when expired or free
    standby: str = ""  # hot standby: the pod the holder reports in sync (only that one may take the Lease over)

    @property
    def free(self) -> bool:
        return not self.holder


@dataclass
class _Seen:
    version: str
    at: float


class LeaseObservations:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._seen: dict[Key, _Seen] = {}
        self._blind_at = clock()  # the operator's start: no Lease was seen before it
        self._lock = threading.Lock()

    def mark_blind(self) -> None:
        """The operator cannot see renewals now (API unreachable), or promised a runtime it cannot act."""
        now = self.clock()
        with self._lock:
            self._blind_at = max(self._blind_at, now)

    def observe(self, key: Key, lease: dict[str, Any]) -> bool:
        """Record the version seen; True when it is new (the holder renewed, or something else changed)."""
        version = str((lease.get("metadata") or {}).get("resourceVersion", ""))
        now = self.clock()
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None and seen.version == version:
                return False
            self._seen[key] = _Seen(version, now)
            return True

    def view(self, key: Key, lease: dict[str, Any] | None) -> LeaseView | None:
        if lease is None:
            return None
        self.observe(key, lease)
        spec = lease.get("spec") or {}
        holder = str(spec.get("holderIdentity") or "")
        duration = float(spec.get("leaseDurationSeconds") or 0) or LockTiming().lease_duration_s
        version = str((lease.get("metadata") or {}).get("resourceVersion", ""))
        taken = bool(holder) and spec.get("renewTime") != spec.get("acquireTime")
        epoch = int(spec.get("leaseTransitions") or 0)
        standby = str(((lease.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_STANDBY) or "")
        with self._lock:
            seen = self._seen[key]
            since = max(seen.at, self._blind_at)
        remaining = since + duration + LockTiming(duration).takeover_margin_s - self.clock()
        expired = bool(holder) and remaining <= 0
        expires_in = 0.0 if expired or not holder else remaining
        return LeaseView(holder, epoch, duration, version, taken, expired, expires_in, standby)

    def forget(self, key: Key) -> None:
        with self._lock:
            self._seen.pop(key, None)
