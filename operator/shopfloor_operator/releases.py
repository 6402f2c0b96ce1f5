"""Program releases by revision. Revisions are content hashes, so one store serves every PLC; after an operator
restart the store is refilled from the runtime ConfigMaps, which carry both the deployed and the last known good
program."""

from __future__ import annotations

import threading

import yaml

from shopfloor_operator.builders.config import LAST_KNOWN_GOOD_KEY, PLC_MANIFEST_KEY, ProgramRelease


class ReleaseStore:
    def __init__(self) -> None:
        self._by_revision: dict[str, ProgramRelease] = {}
        self._lock = threading.Lock()

    def remember(self, release: ProgramRelease) -> None:
        with self._lock:
            self._by_revision[release.revision] = release

    def get(self, revision: str) -> ProgramRelease | None:
        with self._lock:
            return self._by_revision.get(revision)

    def recover(self, config_map_data: dict[str, str]) -> None:
        """Learn the programs a runtime ConfigMap holds."""
        for key in (PLC_MANIFEST_KEY, LAST_KNOWN_GOOD_KEY):
            text = config_map_data.get(key)
            if not text:
                continue
            program = ((yaml.safe_load(text) or {}).get("spec") or {}).get("program") or {}
            if program.get("sha256") and program.get("source") is not None:
                self.remember(ProgramRelease(program["sha256"], program["source"], program.get("entrypoint", "")))
