"""The operator-runtime contract, defined once: what the operator's pod builder, the runtimes (vPLC and bridge), the
operator's readers of their Leases and the local edge site all rely on.

- **Lease** `<workload>` (coordination.k8s.io/v1): the lock that decides which runtime drives the process.
  `holderIdentity` is the pod name, `leaseTransitions` the fencing epoch (it grows with every new holder),
  `leaseDurationSeconds` how long a holder that stopped renewing keeps it. Annotations carry the runtime's report.
- **Environment** of the workload container (`SHOPFLOOR_*`).
- **ConfigMaps**: `<workload>-runtime` (the manifest the runtime runs) and `<workload>-retain` (retained values).

Timing of the lock (docs/failover.md explains every case): a holder renews every `renew_interval`; one that has not
renewed for `lease_duration - fence_margin` stops driving its outputs; nobody else is handed the Lease before it was
observed unchanged for `lease_duration + takeover_margin` on the operator's own clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# ---------------------------------------------------------------------------------------------- Lease annotations
ANNOTATION_STATE = "shopfloor.io/state"  # Loading | Running | Faulted | Stopped (the runtime's own state)
ANNOTATION_ACTIVE_REVISION = "shopfloor.io/active-revision"
ANNOTATION_FAULT = "shopfloor.io/fault"
ANNOTATION_REALTIME = "shopfloor.io/realtime"  # "granted" or "refused: <why>"
# The last revision an online change refused, and why: the running revision stays in active-revision.
ANNOTATION_REFUSED_REVISION = "shopfloor.io/refused-revision"
ANNOTATION_REFUSED_REASON = "shopfloor.io/refused-reason"
# Written by the operator when it hands an expired Lease to a new pod: who held it and why it was taken.
ANNOTATION_HANDOVER = "shopfloor.io/handover"
ANNOTATION_MAX_LENGTH = 1024

# ---------------------------------------------------------------------------------------------- environment
ENV_KIND = "SHOPFLOOR_KIND"
ENV_NAME = "SHOPFLOOR_NAME"
ENV_NAMESPACE = "SHOPFLOOR_NAMESPACE"
ENV_POD_NAME = "SHOPFLOOR_POD_NAME"
ENV_POD_IP = "SHOPFLOOR_POD_IP"  # field-device connections leave from this address (the writer's identity)
ENV_CONFIGMAP = "SHOPFLOOR_CONFIGMAP"
ENV_LEASE = "SHOPFLOOR_LEASE"
ENV_LEASE_DURATION = "SHOPFLOOR_LEASE_DURATION"  # seconds, decimal
ENV_WITNESS_URL = "SHOPFLOOR_WITNESS_URL"  # the operator's witness (docs/failover.md); empty: no witness
ENV_RETAIN_CONFIGMAP = "SHOPFLOOR_RETAIN_CONFIGMAP"
ENV_HTTP_PORT = "SHOPFLOOR_HTTP_PORT"
ENV_SECRETS_DIR = "SHOPFLOOR_SECRETS_DIR"
ENV_KUBECONFIG = "SHOPFLOOR_KUBECONFIG"

# ---------------------------------------------------------------------------------------------- ConfigMaps
PLC_MANIFEST_KEY = "virtualplc.yaml"
BRIDGE_MANIFEST_KEY = "protocolbridge.yaml"
RETAIN_KEY = "retain.json"

# ---------------------------------------------------------------------------------------------- the witness
WITNESS_PATH = "/witness"
WITNESS_API_REACHABLE = "apiReachable"  # the JSON key of the witness' answer

# ---------------------------------------------------------------------------------------------- lock timing
DEFAULT_LEASE_DURATION_S = 3.0
MIN_LEASE_DURATION_S = 1.0


@dataclass(frozen=True)
class LockTiming:
    """Every interval of the lock, derived from the one the user sets (`spec.failover.leaseDuration`).

    Three renewals per lease period leave room for one lost renewal and a retry before the holder fences itself; the
    two margins keep the holder's last write and the next holder's first write apart even when the holder's clock is
    checked late (a busy node) and the next holder's clock early."""

    lease_duration_s: float = DEFAULT_LEASE_DURATION_S

    @property
    def renew_interval_s(self) -> float:
        return self.lease_duration_s / 3

    @property
    def request_timeout_s(self) -> float:
        return self.lease_duration_s / 3

    @property
    def retry_interval_s(self) -> float:
        return min(0.25, self.lease_duration_s / 12)

    @property
    def witness_after_s(self) -> float:
        """A renewal still pending this long makes the holder ask the witness meanwhile."""
        return self.lease_duration_s / 6

    @property
    def witness_timeout_s(self) -> float:
        return self.lease_duration_s / 6

    @property
    def fence_margin_s(self) -> float:
        """Before the end of the lease period the holder stops driving its outputs."""
        return self.lease_duration_s / 6

    @property
    def safe_state_margin_s(self) -> float:
        """The safe state, written once on fencing, must leave before this much is left of the lease period."""
        return self.lease_duration_s / 12

    @property
    def takeover_margin_s(self) -> float:
        """After the end of the lease period the operator (or a standby) waits this long more."""
        return self.lease_duration_s / 6

    @property
    def lease_duration_seconds(self) -> int:
        """The Lease's `leaseDurationSeconds` (whole seconds, rounded up: the operator reads the longer one)."""
        return max(1, math.ceil(self.lease_duration_s))

    @classmethod
    def from_env_value(cls, text: str | None) -> LockTiming:
        if not text or not text.strip():
            return cls()
        seconds = float(text)
        if not math.isfinite(seconds) or seconds < MIN_LEASE_DURATION_S:
            raise ValueError(f"{ENV_LEASE_DURATION}: {text!r} is not a duration of at least {MIN_LEASE_DURATION_S}s")
        return cls(seconds)
