"""VirtualPLC manifests for the runtime tests, written as a user would write them (YAML, camelCase)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def plc_manifest(source: str, name: str = "mixer-1", **spec: Any) -> str:
    document = {
        "apiVersion": "shopfloor.io/v1alpha1",
        "kind": "VirtualPLC",
        "metadata": {"name": name},
        "spec": {"program": {"source": source}, **spec},
    }
    return yaml.safe_dump(document, sort_keys=False)


def write_manifest(path: Path, source: str, **spec: Any) -> Path:
    path.write_text(plc_manifest(source, **spec))
    return path
