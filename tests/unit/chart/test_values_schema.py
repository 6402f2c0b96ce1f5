"""values.schema.json refuses bad values with a message naming the value, and the CRDs the chart renders
(crds.install) are the generated ones, kept on uninstall."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from shopfloor_localsite.build import ensure_binaries
from tests.unit.observability.chart import CHART, ROOT, of_kind, render


def refused(*settings: str) -> str:
    args = [str(ensure_binaries().helm), "template", "shopfloor", str(CHART)]
    result = subprocess.run(
        [*args, *(a for s in settings for a in ("--set", s))], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0, f"{settings} accepted"
    return result.stderr


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("replicas=0", "at '/replicas': minimum: got 0, want 1"),
        ("replica=2", "additional properties 'replica' not allowed"),
        (
            "image.pullPolicy=Sometimes",
            "at '/image/pullPolicy': value must be one of 'Always', 'IfNotPresent', 'Never'",
        ),
        ("settings.nodeLostGrace=10", "at '/settings/nodeLostGrace': got number, want string"),
        ("monitoring.podMonitor.interval=fifteen", "at '/monitoring/podMonitor/interval': 'fifteen' does not match"),
        ("metrics.port=70000", "at '/metrics/port': maximum: got 70,000, want 65,535"),
        ("crds.install=maybe", "at '/crds/install': got string, want boolean"),
    ],
)
def test_bad_values_are_refused_with_a_clear_message(setting: str, message: str) -> None:
    error = refused(setting)
    assert "values don't meet the specifications of the schema(s)" in error and message in error, error


def test_default_values_meet_the_schema() -> None:
    assert of_kind(render(), "Deployment")


def test_rendered_crds_are_the_generated_ones_and_kept_on_uninstall() -> None:
    generated = {}
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            generated[document["metadata"]["name"]] = document
    rendered = of_kind(render(), "CustomResourceDefinition")
    assert sorted(crd["metadata"]["name"] for crd in rendered) == sorted(generated)
    for crd in rendered:
        assert crd["spec"] == generated[crd["metadata"]["name"]]["spec"]
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert of_kind(render("crds.install=false"), "CustomResourceDefinition") == []


def test_files_crds_link_to_the_generated_files() -> None:
    for link in (CHART / "files" / "crds").iterdir():
        assert link.resolve() == (ROOT / "crds" / link.name).resolve(), link
    assert {p.name for p in (CHART / "files" / "crds").iterdir()} == {
        p.name for p in Path(ROOT / "crds").glob("*.yaml")
    }
