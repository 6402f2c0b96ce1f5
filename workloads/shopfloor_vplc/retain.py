"""Checkpoints of RETAIN variables: where they are kept (a file standalone, a ConfigMap in a pod) and how often.

The scan captures the retained values at scan boundaries; the checkpointer saves them when they changed, at most
every `interval` seconds, and once more at shutdown. The checkpoint is JSON: {"revision": ..., "values": {...}}.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 5.0


class RetainStore(Protocol):
    def load(self) -> dict[str, Any]: ...
    def save(self, revision: str, values: dict[str, Any]) -> None: ...


def encode_checkpoint(revision: str, values: dict[str, Any]) -> str:
    return json.dumps({"revision": revision, "values": values}, sort_keys=True)


def decode_checkpoint(text: str) -> dict[str, Any]:
    """The retained values of a checkpoint; an unreadable checkpoint restores nothing (and says so)."""
    try:
        document = json.loads(text)
        values = document["values"]
    except (ValueError, KeyError, TypeError) as exc:
        log.error("retain checkpoint unreadable, starting from initial values: %s", exc)
        return {}
    return dict(values) if isinstance(values, dict) else {}


class FileRetainStore:
    """A JSON file, replaced atomically so a crash mid-write never leaves half a checkpoint."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, Any]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        return decode_checkpoint(text)

    def save(self, revision: str, values: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(encode_checkpoint(revision, values))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)


class Checkpointer:
    """Saves `capture()` through `store` when it changed, every `interval_s` seconds, off the scan thread."""

    def __init__(
        self, store: RetainStore, capture: Callable[[], tuple[str, dict[str, Any]]], interval_s: float
    ) -> None:
        self.store = store
        self.capture = capture
        self.interval_s = interval_s
        self._last_saved: dict[str, Any] | None = None
        self.saves = 0

    async def save_if_changed(self) -> None:
        revision, values = self.capture()
        if values == self._last_saved:
            return
        try:
            await asyncio.to_thread(self.store.save, revision, values)
        except Exception as exc:  # a full disk or a lost API must not stop the PLC; try again next time
            log.error("retain checkpoint not saved: %s", exc)
            return
        self._last_saved = values
        self.saves += 1

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.save_if_changed()
