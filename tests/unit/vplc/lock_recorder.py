"""What the hot-standby parts (gate, sync server) use of a LeaseLock, recorded for pure tests: its gates, its write
listeners, its report annotations, and whether it holds the Lease in time (as the test sets it)."""

from __future__ import annotations

from collections.abc import Mapping


class LockRecorder:
    def __init__(self, holding: bool = True) -> None:
        self.gates: list[object] = []
        self.written_listeners: list[object] = []
        self.annotations: dict[str, str] = {}
        self.holding = holding

    def update(self, annotations: Mapping[str, str]) -> None:
        self.annotations.update(annotations)

    def holds_in_time(self) -> bool:
        return self.holding

    def written(self) -> None:
        """The lock's next write succeeded, with the annotations as they are now."""
        for listener in self.written_listeners:
            listener(dict(self.annotations))  # type: ignore[operator]
