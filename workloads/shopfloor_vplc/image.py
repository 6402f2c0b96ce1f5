"""What the scan shares with everything else: immutable snapshots out, queued writes in.

The scan is the only owner of the program instance. Servers read the latest `Snapshot` (a reference swap, no lock)
and hand writes to a `WriteQueue`, which the scan drains at the next scan boundary.
"""

from __future__ import annotations

import collections
import enum
import itertools
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


class PlcState(enum.StrEnum):
    LOADING = "Loading"
    RUNNING = "Running"
    FAULTED = "Faulted"
    STOPPED = "Stopped"


@dataclass(frozen=True)
class Snapshot:
    """The published variables after one scan. `values` is read-only; never mutate what it holds."""

    seq: int
    values: Mapping[str, Any]
    applied_write_id: int
    state: PlcState
    revision: str
    fault: str = ""
    taken_ns: int = 0

    @staticmethod
    def of(
        seq: int,
        values: dict[str, Any],
        applied_write_id: int,
        state: PlcState,
        revision: str,
        fault: str = "",
        taken_ns: int = 0,
    ) -> Snapshot:
        return Snapshot(seq, types.MappingProxyType(values), applied_write_id, state, revision, fault, taken_ns)


EMPTY_SNAPSHOT = Snapshot.of(0, {}, 0, PlcState.LOADING, "")


class WriteSink(Protocol):
    """Where servers put client writes: the scan's queue, or the pipe to a scan in its own process."""

    def put(self, path: str, value: Any) -> int: ...


class WriteRefused(RuntimeError):
    """A client write refused as a whole: this runtime does not hold its lock (fenced, or not yet the holder)."""


@dataclass
class WriteQueue:
    """Writes from servers (any thread) waiting for the next scan boundary. Each write gets an increasing id."""

    _pending: collections.deque[tuple[int, str, Any]] = field(default_factory=collections.deque)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def put(self, path: str, value: Any) -> int:
        write_id = next(self._ids)
        self._pending.append((write_id, path, value))
        return write_id

    def drain(self) -> list[tuple[int, str, Any]]:
        drained: list[tuple[int, str, Any]] = []
        while True:
            try:
                drained.append(self._pending.popleft())
            except IndexError:
                return drained


class EngineView:
    """What everyone may read of a scan engine, wherever its scan runs (the engine updates the fields)."""

    _snapshot: Snapshot = EMPTY_SNAPSHOT
    _state: PlcState = PlcState.LOADING
    _fault: str = ""
    _retained_values: dict[str, Any]
    _following: bool = False
    images_applied: int = 0  # hot standby: state images taken over while following
    images_refused: int = 0  # of another revision, or corrupt: the standby kept its previous state

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    @property
    def state(self) -> PlcState:
        return self._state

    @property
    def fault(self) -> str:
        return self._fault

    @property
    def following(self) -> bool:
        """A hot standby: mirrors the primary's state images, executes nothing, until told to lead."""
        return self._following

    @property
    def retained_values(self) -> dict[str, Any]:
        """The RETAIN variables as last captured at a scan boundary (JSON-ready)."""
        return dict(self._retained_values)
