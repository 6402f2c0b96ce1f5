"""Every manifest under examples/ validates against the API models, and every program in it compiles.

The production line's programs also live as .st files beside the manifests (for `shopfloor-vplc check` and
`simulate`); the manifests must carry exactly those sources."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from shopfloor_api import load_manifest
from shopfloor_api.virtualplc import VirtualPLC
from shopfloor_st import compile_source

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def _is_shopfloor(document: object) -> bool:
    return isinstance(document, dict) and str(document.get("apiVersion", "")).startswith("shopfloor.io/")


MANIFESTS = sorted(
    path for path in EXAMPLES.rglob("*.yaml") if any(_is_shopfloor(d) for d in yaml.safe_load_all(path.read_text()))
)


def test_there_are_examples() -> None:
    assert len(MANIFESTS) >= 3


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_example_manifest_is_valid_and_its_program_compiles(path: Path) -> None:
    for document in yaml.safe_load_all(path.read_text()):
        if not _is_shopfloor(document):
            continue
        resource = load_manifest(yaml.safe_dump(document))
        if isinstance(resource, VirtualPLC) and resource.spec.program.source:
            compile_source(resource.spec.program.source, str(path), resource.spec.program.entrypoint or None)
            twin = path.with_name(path.stem.removesuffix("-1").removesuffix("-2") + ".st")
            if twin.exists():
                assert resource.spec.program.source == twin.read_text(), f"{path.name} differs from {twin.name}"


def test_the_hot_standby_example_runs_two_pods() -> None:
    resource = load_manifest(EXAMPLES / "virtualplc-hot-standby.yaml")
    assert isinstance(resource, VirtualPLC) and resource.spec.redundancy.hot_standby
    assert EXAMPLES / "virtualplc-hot-standby.yaml" in MANIFESTS
