"""The bridge's lifecycle as others see it: the seam for the in-pod Lease reporter (shopfloor_inpod).

States use the runtime's Lease vocabulary (`shopfloor.io/state`): Loading, Running, Faulted, Stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum


class BridgeState(StrEnum):
    LOADING = "Loading"
    RUNNING = "Running"
    FAULTED = "Faulted"
    STOPPED = "Stopped"


# Called on the event loop on every change: (state, fault message or None). Must not block.
StateListener = Callable[[BridgeState, str | None], None]


class Health:
    """Liveness and readiness for /healthz and /readyz, plus state change notifications."""

    def __init__(self, listeners: list[StateListener] | None = None) -> None:
        self.state = BridgeState.LOADING
        self.fault: str | None = None
        self._sinks: dict[str, Callable[[], bool]] = {}
        self._listeners = list(listeners or [])

    def add_listener(self, listener: StateListener) -> None:
        self._listeners.append(listener)

    def set_state(self, state: BridgeState, fault: str | None = None) -> None:
        if (state, fault) == (self.state, self.fault):
            return
        self.state, self.fault = state, fault
        for listener in self._listeners:
            listener(state, fault)

    def add_sink(self, sink: str, is_ready: Callable[[], bool]) -> None:
        self._sinks[sink] = is_ready

    def sinks_not_ready(self) -> list[str]:
        return sorted(name for name, is_ready in self._sinks.items() if not is_ready())

    @property
    def live(self) -> bool:
        return self.state is not BridgeState.FAULTED

    @property
    def ready(self) -> bool:
        """Running, with every sink able to deliver (MQTT connected, OPC UA server listening)."""
        return self.state is BridgeState.RUNNING and not self.sinks_not_ready()
