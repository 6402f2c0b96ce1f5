"""Program releases by revision. Revisions are content hashes, so one store serves every PLC: a fleet running one
program keeps its source once. A release is kept while some PLC still uses it (as desired, deployed or last known
good revision) and dropped with the last such use. After an operator restart the store is refilled from the runtime
ConfigMaps, which carry both the deployed and the last known good program."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Hashable, Iterable

import yaml

from shopfloor_operator.builders.config import LAST_KNOWN_GOOD_KEY, PLC_MANIFEST_KEY, ProgramRelease


class ReleaseStore:
    def __init__(self) -> None:
        self._by_revision: dict[str, ProgramRelease] = {}
        self._used_by: dict[Hashable, frozenset[str]] = {}
        self._users: Counter[str] = Counter()  # revision -> how many holders use it
        self._lock = threading.Lock()

    def remember(self, holder: Hashable, release: ProgramRelease) -> None:
        """Keep `release`, used by `holder` (a PLC) from now on, besides what it used already."""
        with self._lock:
            self._by_revision[release.revision] = release
            self._set_uses(holder, self._used_by.get(holder, frozenset()) | {release.revision})

    def get(self, revision: str) -> ProgramRelease | None:
        with self._lock:
            return self._by_revision.get(revision)

    def use(self, holder: Hashable, revisions: Iterable[str]) -> None:
        """`holder` uses exactly these revisions now; releases nobody uses any more are dropped."""
        with self._lock:
            self._set_uses(holder, frozenset(revision for revision in revisions if revision))

    def forget(self, holder: Hashable) -> None:
        with self._lock:
            self._set_uses(holder, frozenset())

    def recover(self, holder: Hashable, config_map_data: dict[str, str]) -> None:
        """Learn the programs a runtime ConfigMap holds, for the PLC it belongs to."""
        for key in (PLC_MANIFEST_KEY, LAST_KNOWN_GOOD_KEY):
            text = config_map_data.get(key)
            if not text:
                continue
            program = ((yaml.safe_load(text) or {}).get("spec") or {}).get("program") or {}
            if program.get("sha256") and program.get("source") is not None:
                release = ProgramRelease(program["sha256"], program["source"], program.get("entrypoint", ""))
                self.remember(holder, release)

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_revision)

    def _set_uses(self, holder: Hashable, revisions: frozenset[str]) -> None:
        before = self._used_by.pop(holder, frozenset())
        if revisions:
            self._used_by[holder] = revisions
        self._users.update(revisions - before)
        for revision in before - revisions:
            self._users[revision] -= 1
            if self._users[revision] <= 0:
                del self._users[revision]
                self._by_revision.pop(revision, None)
