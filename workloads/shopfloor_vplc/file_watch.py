"""Watching the file `run` was started with: polls its content (editors replace files in several ways; a content
comparison catches them all without an inotify dependency)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path


async def changed_contents(path: Path, interval_s: float = 0.3) -> AsyncIterator[str]:
    """Yield the file's text each time it differs from the previous version seen (the first read is not yielded)."""
    last = _read(path)
    while True:
        await asyncio.sleep(interval_s)
        text = _read(path)
        if text is not None and text != last:
            last = text
            yield text


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None  # mid-save or removed: look again next time
