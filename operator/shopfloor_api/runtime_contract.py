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
# Hot standby (docs/failover.md), written by the primary: the standby whose acknowledgements now gate its outputs
# (only that standby may take the Lease over by itself; "" for none), and where a standby reaches its state sync.
ANNOTATION_STANDBY = "shopfloor.io/standby"
ANNOTATION_SYNC_ENDPOINT = "shopfloor.io/sync-endpoint"  # host:port
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
ENV_LOG_LEVEL = "SHOPFLOOR_LOG_LEVEL"  # DEBUG|INFO|WARNING|ERROR: the default of the CLIs' --log-level
ENV_REDUNDANCY = "SHOPFLOOR_REDUNDANCY"  # "" (a single runtime) or REDUNDANCY_HOT_STANDBY
ENV_TAKEOVER_AFTER = "SHOPFLOOR_TAKEOVER_AFTER"  # seconds, decimal (StandbyTiming)
ENV_SYNC_INTERVAL = "SHOPFLOOR_SYNC_INTERVAL"  # seconds, decimal (StandbyTiming)
# Hot standby: the file holding the pair's shared key, which authenticates the sync link both ways (HMAC-SHA256).
ENV_SYNC_KEY_FILE = "SHOPFLOOR_SYNC_KEY_FILE"
REDUNDANCY_HOT_STANDBY = "HotStandby"

# ---------------------------------------------------------------------------------------------- ports
SYNC_PORT = 8093  # the primary's state-sync listener (hot standby)
SYNC_PORT_NAME = "sync"

# ---------------------------------------------------------------------------------------------- Secrets
# The operator's Secret `<plc>-sync` (hot standby only): one key, random bytes, created once and never rotated.
SYNC_SECRET_SUFFIX = "-sync"
SYNC_KEY = "sync.key"
SYNC_KEY_BYTES = 32
MIN_SYNC_KEY_BYTES = 16  # a shorter key is refused by the runtime

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


DEFAULT_TAKEOVER_AFTER_S = 0.5
DEFAULT_SYNC_INTERVAL_S = 0.02
MIN_TAKEOVER_AFTER_S = 0.1
MAX_TAKEOVER_AFTER_S = 10.0
SYNC_MESSAGES_PER_TAKEOVER = 5  # a standby hears from its primary at least this often per takeover period


@dataclass(frozen=True)
class StandbyTiming:
    """Hot standby: the primary sends its whole process state every `sync_interval`; a standby that has heard nothing
    for `takeover_after` may take the Lease over by itself (guarded by version, and only while the Lease names it as
    the standby). The primary drives its outputs only while a message it sent less than `takeover_after -
    ack_margin` ago was acknowledged, so it has stopped before a silent standby may take over (docs/failover.md)."""

    takeover_after_s: float = DEFAULT_TAKEOVER_AFTER_S
    sync_interval_s: float = DEFAULT_SYNC_INTERVAL_S

    def __post_init__(self) -> None:
        if not MIN_TAKEOVER_AFTER_S <= self.takeover_after_s <= MAX_TAKEOVER_AFTER_S:
            raise ValueError(
                f"takeoverAfter: {self.takeover_after_s:g}s is not between {MIN_TAKEOVER_AFTER_S:g}s and "
                f"{MAX_TAKEOVER_AFTER_S:g}s"
            )
        # Compared in whole microseconds: 70ms * 5 is exactly 350ms, as the CRD's rule (on durations) sees it.
        sync_us, takeover_us = round(self.sync_interval_s * 1e6), round(self.takeover_after_s * 1e6)
        if not sync_us > 0 or sync_us * SYNC_MESSAGES_PER_TAKEOVER > takeover_us:
            raise ValueError(
                f"syncInterval: {self.sync_interval_s:g}s must be above 0 and at most takeoverAfter/"
                f"{SYNC_MESSAGES_PER_TAKEOVER} ({self.takeover_after_s / SYNC_MESSAGES_PER_TAKEOVER:g}s)"
            )

    @property
    def ack_margin_s(self) -> float:
        """How long before a silent standby may take over the primary has stopped driving."""
        return self.takeover_after_s / 5

    @property
    def drive_window_s(self) -> float:
        """The primary drives while its newest acknowledged message was sent less than this long ago."""
        return self.takeover_after_s - self.ack_margin_s

    @classmethod
    def from_env_values(cls, takeover_after: str | None, sync_interval: str | None) -> StandbyTiming:
        def seconds(text: str | None, default: float, name: str) -> float:
            if not text or not text.strip():
                return default
            value = float(text)
            if not math.isfinite(value):
                raise ValueError(f"{name}: {text!r} is not a duration in seconds")
            return value

        return cls(
            seconds(takeover_after, DEFAULT_TAKEOVER_AFTER_S, ENV_TAKEOVER_AFTER),
            seconds(sync_interval, DEFAULT_SYNC_INTERVAL_S, ENV_SYNC_INTERVAL),
        )
