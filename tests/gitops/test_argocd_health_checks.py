"""The chart's Argo CD health checks, run by Argo CD's own Lua evaluation on the cases of their health_test.yaml
(objects the operator wrote, captured by tests/integration/operator/test_gitops_health.py), and the argocd-cm
snippet holding the same scripts."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from shopfloor_api.protocolbridge import ProtocolBridge
from shopfloor_api.virtualplc import Phase, VirtualPLC
from tests.gitops.verdicts import ARGOCD_CM, KINDS, RESOURCE_CUSTOMIZATIONS, run_argocd_tests

MODELS = {"VirtualPLC": VirtualPLC, "ProtocolBridge": ProtocolBridge}


def test_health_checks_pass_their_argocd_tests() -> None:
    result = run_argocd_tests()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "MISMATCH" not in result.stdout and result.stdout.count(" ok\n") >= 10, result.stdout


def test_a_wrong_expectation_fails(tmp_path: Path) -> None:
    folder = tmp_path / "shopfloor.io" / "VirtualPLC"
    (folder / "testdata").mkdir(parents=True)
    source = RESOURCE_CUSTOMIZATIONS / "shopfloor.io" / "VirtualPLC"
    (folder / "health.lua").write_text((source / "health.lua").read_text())
    (folder / "testdata" / "faulted.yaml").write_text((source / "testdata" / "faulted.yaml").read_text())
    cases = {"tests": [{"healthStatus": {"status": "Healthy", "message": ""}, "inputPath": "testdata/faulted.yaml"}]}
    (folder / "health_test.yaml").write_text(yaml.safe_dump(cases))
    result = run_argocd_tests(tmp_path)
    assert result.returncode == 1 and "MISMATCH: want Healthy" in result.stdout, result.stdout


def test_argocd_cm_snippet_holds_the_same_scripts() -> None:
    snippet = yaml.safe_load(ARGOCD_CM.read_text())
    assert snippet["metadata"]["name"] == "argocd-cm"
    assert snippet["metadata"]["labels"]["app.kubernetes.io/part-of"] == "argocd"  # Argo CD reads no other
    assert sorted(snippet["data"]) == sorted(f"resource.customizations.health.shopfloor.io_{kind}" for kind in KINDS)
    for kind in KINDS:
        script = (RESOURCE_CUSTOMIZATIONS / "shopfloor.io" / kind / "health.lua").read_text()
        assert snippet["data"][f"resource.customizations.health.shopfloor.io_{kind}"] == script, kind


@pytest.mark.parametrize("kind", list(KINDS))
def test_testdata_is_current_and_every_case_is_tested(kind: str) -> None:
    folder = RESOURCE_CUSTOMIZATIONS / "shopfloor.io" / kind
    tested = {case["inputPath"] for case in yaml.safe_load((folder / "health_test.yaml").read_text())["tests"]}
    files = {f"testdata/{path.name}" for path in (folder / "testdata").glob("*.yaml")}
    assert tested == files
    phases = set()
    for path in sorted((folder / "testdata").glob("*.yaml")):
        document = yaml.safe_load(path.read_text())
        MODELS[kind].model_validate(document)  # the status shape the operator writes today
        phases.add((document.get("status") or {}).get("phase"))
    # Every phase the operator writes for the kind (a bridge is Pending only while its spec cannot be read).
    written = (
        {phase.value for phase in Phase} if kind == "VirtualPLC" else {"Scheduling", "Starting", "Running", "Faulted"}
    )
    assert written <= phases, written - phases
