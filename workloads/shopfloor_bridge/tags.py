"""Tag values as they flow from sources to sinks, and the table that turns polls into reports by exception."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from shopfloor_api.protocolbridge import TagType as DataType

Value = bool | int | float


class Quality(StrEnum):
    GOOD = "good"
    BAD = "bad"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class TagValue:
    """One observation of a tag. `value` is None while the tag has never been read."""

    name: str
    value: Value | None
    quality: Quality
    source_ms: int = field(default_factory=now_ms)  # wall clock when the source produced it (epoch ms)
    observed_ns: int = field(default_factory=time.monotonic_ns)  # monotonic, for poll-to-publish latency


@dataclass(frozen=True, slots=True)
class TagInfo:
    """What sinks need to know about a tag before its first value arrives (Sparkplug births, OPC UA nodes)."""

    name: str
    datatype: DataType


class TagTable:
    """The last known value of every tag; `update` returns only what changed (value or quality)."""

    def __init__(self, tags: Iterable[TagInfo]) -> None:
        self.info: dict[str, TagInfo] = {}
        for tag in tags:
            if tag.name in self.info:
                raise ValueError(f"tag name {tag.name!r} is used twice; tag names must be unique in a bridge")
            self.info[tag.name] = tag
        self._current: dict[str, TagValue] = {}
        # Kept up to date by `update`, so metrics never walk every tag; never-read tags count as bad.
        self._counts = {Quality.GOOD: 0, Quality.BAD: len(self.info)}

    def update(self, values: Iterable[TagValue]) -> list[TagValue]:
        changed: list[TagValue] = []
        for new in values:
            old = self._current.get(new.name)
            if old is not None and old.quality == new.quality and _same(old.value, new.value):
                continue
            if new.name in self.info:
                self._counts[old.quality if old is not None else Quality.BAD] -= 1
                self._counts[new.quality] += 1
            self._current[new.name] = new
            changed.append(new)
        return changed

    def current(self, name: str) -> TagValue | None:
        return self._current.get(name)

    def all_read(self) -> bool:
        """Every tag has had a value (good or bad) from its source."""
        return len(self._current) >= len(self.info)

    def snapshot(self) -> list[TagValue | None]:
        """Current values in declaration order (None for tags not yet read)."""
        return [self._current.get(name) for name in self.info]

    def count_by_quality(self) -> dict[Quality, int]:
        return dict(self._counts)


def _same(a: Value | None, b: Value | None) -> bool:
    # bool is an int subclass: True == 1 must still count as a change of type, which never happens for one tag.
    return a == b and type(a) is type(b)
