"""What `run`, `check` and `simulate` accept: a VirtualPLC manifest, or a bare .st file run with default settings."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from shopfloor_api import ManifestError, VirtualPLC, parse_manifest
from shopfloor_api.virtualplc import VirtualPLCSpec
from shopfloor_st import Diagnostic

MANIFEST_SUFFIXES = {".yaml", ".yml", ".json"}


@dataclass(frozen=True)
class PlcFile:
    name: str
    namespace: str
    spec: VirtualPLCSpec
    source: str
    filename: str  # what diagnostics name: the .st file, or the manifest
    line_offset: int = 0  # where the source starts inside a manifest (a block scalar), so positions point into it
    col_offset: int = 0

    def locate(self, diagnostic: Diagnostic) -> Diagnostic:
        """The diagnostic with its position in FILE (the manifest's lines, not the embedded source's)."""
        return replace(
            diagnostic,
            filename=self.filename,
            line=diagnostic.line + self.line_offset,
            col=diagnostic.col + self.col_offset,
        )


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
    namespace = manifest.metadata.namespace or "default"
    position = source_position(text)
    if position is None:  # a quoted scalar: name the field, since its lines are not the file's
        return PlcFile(manifest.metadata.name, namespace, manifest.spec, source, f"{filename}[spec.program.source]")
    return PlcFile(manifest.metadata.name, namespace, manifest.spec, source, filename, *position)


def source_position(text: str) -> tuple[int, int] | None:
    """(lines before, indentation) of spec.program.source when it is a `|` block scalar, else None."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return None
    node = root
    for key in ("spec", "program", "source"):
        if not isinstance(node, yaml.MappingNode):
            return None
        node = next((value for name, value in node.value if getattr(name, "value", None) == key), None)
    if not isinstance(node, yaml.ScalarNode) or node.style != "|":
        return None
    lines = text.splitlines()
    first = node.start_mark.line + 1  # the line after the `|` indicator
    while first < len(lines) and not lines[first].strip():
        first += 1
    if first >= len(lines):
        return None
    indent = len(lines[first]) - len(lines[first].lstrip(" "))
    return node.start_mark.line + 1, indent


def load_plc_file(path: Path) -> PlcFile:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlcFileError(f"{path}: {exc.strerror or exc}") from None
    if is_manifest(path):
        return from_manifest_text(text, str(path))
    spec = VirtualPLCSpec.model_validate({"program": {"source": text}})
    return PlcFile(default_name(path), "default", spec, text, str(path))


def settings_changed(running: PlcFile, new: PlcFile) -> bool:
    """Whether anything but the program differs (cycle time, I/O maps...): those need a new runtime."""
    return running.spec.model_dump(exclude={"program"}) != new.spec.model_dump(exclude={"program"})
