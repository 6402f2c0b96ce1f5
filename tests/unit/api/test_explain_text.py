"""Every field of the generated CRDs has the text `kubectl explain` shows (metadata is the server's ObjectMeta)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.support.openapi import undocumented

CRDS = Path(__file__).resolve().parents[3] / "crds"


@pytest.mark.parametrize("crd", ["virtualplcs.shopfloor.io.yaml", "protocolbridges.shopfloor.io.yaml"])
def test_every_field_has_a_description(crd: str) -> None:
    document = yaml.safe_load((CRDS / crd).read_text())
    for version in document["spec"]["versions"]:
        schema = version["schema"]["openAPIV3Schema"]
        assert undocumented(schema) == [".metadata"], version["name"]


def test_the_walk_finds_a_field_without_text() -> None:
    items = {"items": {"properties": {"a": {}}}}
    schema = {"properties": {"spec": {"description": "x", "properties": {"items": items}}}}
    assert undocumented(schema) == [".spec.items", ".spec.items[].a"]
