"""What `run`, `check` and `simulate` accept: a VirtualPLC manifest, or a bare .st file run with default settings."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from shopfloor_api import ManifestError, VirtualPLC, parse_manifest
from shopfloor_api.virtualplc import VirtualPLCSpec

MANIFEST_SUFFIXES = {".yaml", ".yml", ".json"}


@dataclass(frozen=True)
class PlcFile:
    name: str
    namespace: str
    spec: VirtualPLCSpec
    source: str
    filename: str  # what diagnostics name: the .st file, or the manifest


class PlcFileError(ValueError):
    pass


def is_manifest(path: Path) -> bool:
    return path.suffix.lower() in MANIFEST_SUFFIXES


def default_name(path: Path) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", path.stem.lower()).strip("-") or "plc"


def from_manifest_text(text: str, filename: str) -> PlcFile:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PlcFileError(f"{filename}: {exc}") from None
    try:
        manifest = parse_manifest(document, filename)
    except ManifestError as exc:
        raise PlcFileError(str(exc)) from None
    if not isinstance(manifest, VirtualPLC):
        raise PlcFileError(f"{filename}: kind: expected VirtualPLC, got {manifest.kind}")
    source = manifest.spec.program.source
    if source is None:
        raise PlcFileError(
            f"{filename}: spec.program.configMapRef is read from the cluster; put the program in spec.program.source"
        )
    return PlcFile(manifest.metadata.name, manifest.metadata.namespace or "default", manifest.spec, source, filename)


def load_plc_file(path: Path) -> PlcFile:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlcFileError(f"{path}: {exc.strerror or exc}") from None
    if is_manifest(path):
        return from_manifest_text(text, str(path))
    spec = VirtualPLCSpec.model_validate({"program": {"source": text}})
    return PlcFile(default_name(path), "default", spec, text, str(path))
