"""Write-back from sinks (MQTT NCMD, OPC UA clients) to sources: refused unless enabled and allowed tag by tag."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Protocol

from shopfloor_bridge.metrics import BridgeMetrics
from shopfloor_bridge.modbus_source import WriteError
from shopfloor_bridge.tags import Value

log = logging.getLogger(__name__)


class WriteRefused(Exception):
    """The tag is not in writes.allow (or writes are disabled)."""


class Writer(Protocol):
    async def write(self, name: str, value: Value) -> None: ...


class WriteGate:
    def __init__(
        self, enabled: bool, allow: Iterable[str], writers: Mapping[str, Writer], metrics: BridgeMetrics
    ) -> None:
        self.enabled = enabled
        self.allow = frozenset(allow) if enabled else frozenset()
        self._writers = writers
        self._metrics = metrics

    def allowed(self, name: str) -> bool:
        return name in self.allow

    async def write(self, origin: str, name: str, value: Value) -> None:
        """Writes `value` to the tag's source; raises WriteRefused or WriteError, and counts every outcome."""
        writer = self._writers.get(name)
        if not self.allowed(name) or writer is None:
            self._metrics.writes.labels(origin, "refused").inc()
            reason = "writes are disabled" if not self.enabled else "the tag is not in writes.allow"
            log.warning("%s write to %s refused: %s", origin, name, reason)
            raise WriteRefused(f"{name}: {reason}")
        try:
            await writer.write(name, value)
        except WriteError:
            self._metrics.writes.labels(origin, "failed").inc()
            raise
        self._metrics.writes.labels(origin, "written").inc()

    async def write_many(self, origin: str, values: Mapping[str, Value]) -> None:
        """Writes each value independently; refusals and failures are logged and counted, never raised."""
        for name, value in values.items():
            try:
                await self.write(origin, name, value)
            except WriteRefused:
                pass
            except WriteError as exc:
                log.warning("%s write failed: %s", origin, exc)
