"""VirtualPLC manifests for the runtime tests, written as a user would write them (YAML, camelCase)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings as `|` blocks, the way people write programs into manifests."""


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_BlockDumper.add_representer(str, _represent_str)


def plc_manifest(source: str, name: str = "mixer-1", **spec: Any) -> str:
    document = {
        "apiVersion": "shopfloor.io/v1alpha1",
        "kind": "VirtualPLC",
        "metadata": {"name": name},
        "spec": {"program": {"source": source}, **spec},
    }
    return yaml.dump(document, Dumper=_BlockDumper, sort_keys=False)


def write_manifest(path: Path, source: str, **spec: Any) -> Path:
    path.write_text(plc_manifest(source, **spec))
    return path
