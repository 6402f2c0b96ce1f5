"""Load and validate a whole manifest (apiVersion, kind, metadata, spec) with errors naming the field path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from shopfloor_api.common import API_VERSION
from shopfloor_api.protocolbridge import ProtocolBridge
from shopfloor_api.virtualplc import VirtualPLC

Manifest = VirtualPLC | ProtocolBridge
KINDS: dict[str, type[VirtualPLC] | type[ProtocolBridge]] = {"VirtualPLC": VirtualPLC, "ProtocolBridge": ProtocolBridge}


class ManifestError(ValueError):
    """An invalid manifest; `problems` holds one `field.path: message` line per error."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: invalid manifest\n" + "\n".join(f"  {line}" for line in problems))


def field_path(location: tuple[int | str, ...]) -> str:
    """`('spec', 'io', 'map', 0, 'address')` -> `spec.io.map[0].address`."""
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part.startswith(("function-", "union[", "is-instance[")) or part in ("str", "int", "bool", "float"):
            continue  # pydantic's names for union members and validators, not fields
        else:
            path += f".{part}" if path else part
    return path


def problems_of(error: ValidationError) -> list[str]:
    lines = []
    for item in error.errors(include_url=False):
        message = item["msg"].removeprefix("Value error, ")
        lines.append(f"{field_path(item['loc']) or '<root>'}: {message}")
    return lines


def parse_manifest(document: Any, source: str = "<manifest>") -> Manifest:
    """Validate a manifest already parsed into a dict."""
    if not isinstance(document, dict):
        raise ManifestError(source, ["<root>: expected a mapping with apiVersion, kind, metadata and spec"])
    if document.get("apiVersion") != API_VERSION:
        raise ManifestError(source, [f"apiVersion: expected {API_VERSION}, got {document.get('apiVersion')!r}"])
    model = KINDS.get(str(document.get("kind")))
    if model is None:
        raise ManifestError(source, [f"kind: expected one of {', '.join(KINDS)}, got {document.get('kind')!r}"])
    try:
        return model.model_validate(document)
    except ValidationError as error:
        raise ManifestError(source, problems_of(error)) from None


def load_manifest(path_or_text: str | Path) -> Manifest:
    """Load a VirtualPLC or ProtocolBridge from a file path or YAML text; raise ManifestError naming each bad field."""
    if isinstance(path_or_text, Path) or ("\n" not in path_or_text and Path(path_or_text).is_file()):
        path = Path(path_or_text)
        source, text = str(path), path.read_text(encoding="utf-8")
    else:
        source, text = "<manifest>", str(path_or_text)
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ManifestError(source, [f"<yaml>: {error}"]) from None
    return parse_manifest(document, source)
