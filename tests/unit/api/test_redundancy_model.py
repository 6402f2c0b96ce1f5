"""spec.redundancy: defaults, bounds and the timing rule shared with the runtime (StandbyTiming), with the field named;
status.redundancy; and the CEL rules the CRD carries for the same checks."""

from __future__ import annotations

import pytest
import yaml

from shopfloor_api import Duration, ManifestError, load_manifest
from shopfloor_api.crdgen import all_crds
from shopfloor_api.runtime_contract import StandbyTiming
from shopfloor_api.virtualplc import Redundancy, RedundancyMode, VirtualPLC, VirtualPLCStatus

PLC = {
    "apiVersion": "shopfloor.io/v1alpha1",
    "kind": "VirtualPLC",
    "metadata": {"name": "mixer-1", "namespace": "line-1"},
    "spec": {"program": {"source": "PROGRAM Main\nEND_PROGRAM\n"}},
}


def plc(**redundancy: object) -> VirtualPLC:
    manifest = load_manifest(yaml.safe_dump({**PLC, "spec": {**PLC["spec"], "redundancy": redundancy}}))
    assert isinstance(manifest, VirtualPLC)
    return manifest


def problems(**redundancy: object) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        plc(**redundancy)
    return caught.value.problems


def test_defaults_are_a_single_runtime_with_the_contracts_timing() -> None:
    manifest = load_manifest(yaml.safe_dump(PLC))
    assert isinstance(manifest, VirtualPLC)
    redundancy = manifest.spec.redundancy
    assert redundancy.mode is RedundancyMode.NONE and not redundancy.hot_standby
    assert redundancy.takeover_after == Duration("500ms") and redundancy.sync_interval == Duration("20ms")
    assert redundancy.timing() == StandbyTiming()
    dumped = manifest.model_dump(mode="json")["spec"]["redundancy"]
    assert dumped == {"mode": "None", "takeoverAfter": "500ms", "syncInterval": "20ms"}


def test_hot_standby_with_its_own_timing() -> None:
    redundancy = plc(mode="HotStandby", takeoverAfter="1s", syncInterval="50ms").spec.redundancy
    assert redundancy.hot_standby
    assert redundancy.timing() == StandbyTiming(1.0, 0.05)


@pytest.mark.parametrize(
    ("redundancy", "message"),
    [
        ({"mode": "Cold"}, "spec.redundancy.mode: Input should be 'None' or 'HotStandby'"),
        ({"takeoverAfter": "50ms"}, "spec.redundancy.takeoverAfter: must be between 100ms and 10s"),
        ({"takeoverAfter": "11s"}, "spec.redundancy.takeoverAfter: must be between 100ms and 10s"),
        ({"takeoverAfter": "fast"}, "spec.redundancy.takeoverAfter"),
        ({"syncInterval": "200ms"}, "spec.redundancy: syncInterval: 0.2s must be above 0 and at most takeoverAfter/5"),
        ({"syncInterval": "0s"}, "spec.redundancy: syncInterval: 0s must be above 0"),
        (
            {"mode": "HotStandby", "takeoverAfter": "100ms", "syncInterval": "21ms"},
            "spec.redundancy: syncInterval: 0.021s must be above 0 and at most takeoverAfter/5 (0.02s)",
        ),
    ],
)
def test_bad_redundancy_names_the_field(redundancy: dict[str, object], message: str) -> None:
    found = problems(**redundancy)
    assert any(line.startswith(message) for line in found), found


def test_the_boundary_is_allowed() -> None:
    assert plc(takeoverAfter="100ms", syncInterval="20ms").spec.redundancy.timing().sync_interval_s == 0.02
    assert plc(takeoverAfter="10s", syncInterval="2s").spec.redundancy.takeover_after == Duration("10s")


def test_the_check_is_the_runtimes() -> None:
    """One definition: what the model accepts, the runtime's StandbyTiming accepts from the pod's environment."""
    for takeover, sync in [("500ms", "100ms"), ("250ms", "10ms"), ("3s", "600ms")]:
        redundancy = Redundancy(takeover_after=Duration(takeover), sync_interval=Duration(sync))
        timing = redundancy.timing()
        assert StandbyTiming.from_env_values(f"{timing.takeover_after_s:g}", f"{timing.sync_interval_s:g}") == timing


def test_status_redundancy() -> None:
    status = VirtualPLCStatus.model_validate(
        {"podName": "mixer-1-a", "redundancy": {"standby": "mixer-1-b", "standbyNode": "edge-rt-2", "inSync": True}}
    )
    assert status.redundancy is not None and status.redundancy.in_sync and status.redundancy.standby == "mixer-1-b"
    assert VirtualPLCStatus().redundancy is None


def test_the_crd_checks_the_same_in_cel() -> None:
    schema = all_crds()["virtualplcs.shopfloor.io.yaml"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    spec = schema["properties"]["spec"]["properties"]["redundancy"]
    assert spec["default"] == {"mode": "None", "takeoverAfter": "500ms", "syncInterval": "20ms"}
    assert spec["properties"]["mode"]["enum"] == ["None", "HotStandby"]
    bounds = spec["properties"]["takeoverAfter"]["x-kubernetes-validations"][0]["rule"]
    assert "duration('100ms')" in bounds and "duration('10s')" in bounds
    rules = {rule["rule"]: rule for rule in spec["x-kubernetes-validations"]}
    sum_rule = next(rule for text, rule in rules.items() if "<= duration(self.takeoverAfter)" in text)
    assert sum_rule["rule"].count("duration(self.syncInterval)") == 5 and sum_rule["fieldPath"] == ".syncInterval"
    status = schema["properties"]["status"]["properties"]["redundancy"]["properties"]
    assert set(status) == {"standby", "standbyNode", "inSync"}
