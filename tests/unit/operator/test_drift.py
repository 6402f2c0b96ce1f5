"""Drift: the first difference names the field and both values."""

from shopfloor_operator.builders.pod import SPEC_HASH_ANNOTATION, pod
from shopfloor_operator.builders.workloads import plc_workload
from shopfloor_operator.drift import first_difference, pod_drift
from shopfloor_operator.settings import OperatorSettings

from .conftest import plc_manifest


def test_equal_ignores_server_defaults() -> None:
    desired = {"spec": {"a": 1, "list": [{"x": 1}]}}
    actual = {"spec": {"a": 1, "list": [{"x": 1, "default": True}], "added": "by server"}}
    assert first_difference(desired, actual) is None


def test_first_difference_path() -> None:
    assert first_difference({"a": {"b": [1, 2]}}, {"a": {"b": [1, 3]}}) == "a.b[1]: 3 -> 2"
    assert first_difference({"a": [1]}, {"a": [1, 2]}) is None, "trailing items are the server's"
    assert first_difference({"a": [1, 2]}, {"a": [1]}) == "a: [1] -> [1, 2]"
    assert first_difference({"a": ""}, {}) is None


def test_pod_drift_names_the_changed_field(settings: OperatorSettings) -> None:
    live = pod(plc_workload(plc_manifest(), settings), settings, 0)
    assert pod_drift(live, live, SPEC_HASH_ANNOTATION) is None
    wanted = pod(plc_workload(plc_manifest(resources={"cpus": 2}), settings), settings, 0)
    reason = pod_drift(wanted, live, SPEC_HASH_ANNOTATION)
    assert reason == "spec.containers[0].resources.requests.cpu: '1' -> '2'"


def test_runtime_config_change_names_the_annotation(settings: OperatorSettings) -> None:
    workload = plc_workload(plc_manifest(), settings)
    live = pod(workload.with_pod_annotations({"shopfloor.io/runtime-config-hash": "a"}), settings, 0)
    wanted = pod(workload.with_pod_annotations({"shopfloor.io/runtime-config-hash": "b"}), settings, 0)
    reason = pod_drift(wanted, live, SPEC_HASH_ANNOTATION)
    assert reason == "metadata.annotations.shopfloor.io/runtime-config-hash: 'a' -> 'b'"
