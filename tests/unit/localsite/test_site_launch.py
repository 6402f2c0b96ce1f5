"""Planning how a workload pod runs on the simulated site (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from shopfloor_localsite.site.launch import LaunchError, is_site_workload, plan_launch, port_map_value


def pod(**container: Any) -> dict[str, Any]:
    base = {"name": "runtime", "command": ["shopfloor-vplc"], "args": ["run", "--in-pod"]}
    base.update(container)
    return {
        "metadata": {
            "name": "mixer-1-abc",
            "namespace": "line-1",
            "uid": "u-1",
            "labels": {"app.kubernetes.io/part-of": "shopfloor", "app.kubernetes.io/component": "vplc"},
            "ownerReferences": [{"kind": "VirtualPLC", "name": "mixer-1", "uid": "o-1"}],
        },
        "spec": {
            "nodeName": "edge-rt-1",
            "serviceAccountName": "mixer-1",
            "containers": [base],
            "volumes": [
                {"name": "certs", "secret": {"secretName": "mixer-1-opcua"}},
                {"name": "logic", "configMap": {"name": "logic", "items": [{"key": "main.st", "path": "p/main.st"}]}},
                {"name": "tmp", "emptyDir": {}},
            ],
        },
        "status": {"podIP": "127.128.0.5"},
    }


def no_lookup(kind: str, name: str, key: str) -> str | None:
    return None


def test_command_env_ports_and_volumes_come_from_the_pod() -> None:
    manifest = pod(
        env=[
            {"name": "A", "value": "1"},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "C", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app.kubernetes.io/component']"}}},
        ],
        ports=[{"name": "modbus", "containerPort": 5020}, {"containerPort": 9100}],
        volumeMounts=[
            {"name": "certs", "mountPath": "/etc/shopfloor/opcua"},
            {"name": "logic", "mountPath": "/logic"},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    )
    assert is_site_workload(manifest)
    launch = plan_launch(manifest, no_lookup)
    assert launch.command == ["shopfloor-vplc", "run", "--in-pod"]
    assert launch.env == {"A": "1", "POD": "mixer-1-abc", "IP": "127.128.0.5", "C": "vplc"}
    assert launch.container_ports == {"modbus": 5020, "9100": 9100}
    assert launch.owner == "mixer-1" and launch.service_account == "mixer-1" and launch.node_name == "edge-rt-1"
    assert [(v.mount_path, v.kind, v.name, v.items) for v in launch.volumes] == [
        ("/etc/shopfloor/opcua", "Secret", "mixer-1-opcua", None),
        ("/logic", "ConfigMap", "logic", {"main.st": "p/main.st"}),
    ]


def test_a_missing_secret_key_is_named() -> None:
    manifest = pod(env=[{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}}])
    with pytest.raises(LaunchError, match="env PW: Secret creds has no key 'password'"):
        plan_launch(manifest, no_lookup)
    optional = pod(env=[{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "c", "key": "k", "optional": True}}}])
    assert plan_launch(optional, no_lookup).env == {}


def test_a_pod_without_command_cannot_run_here() -> None:
    with pytest.raises(LaunchError, match=r"spec.containers\[0\] \(runtime\) has no command"):
        plan_launch(pod(command=None, args=None, image="registry.example/other:1"), no_lookup)


def test_shopfloor_images_run_their_entry_point() -> None:
    launch = plan_launch(pod(command=None, image="ghcr.io/shopfloor/shopfloor-vplc:0.1.0"), no_lookup)
    assert launch.command == ["shopfloor-vplc", "run", "--in-pod"]


def test_unsupported_field_path_is_named() -> None:
    manifest = pod(env=[{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.hostname"}}}])
    with pytest.raises(LaunchError, match=r"spec\.hostname"):
        plan_launch(manifest, no_lookup)


def test_other_pods_are_not_site_workloads_and_port_maps_are_stable() -> None:
    assert not is_site_workload({"metadata": {"labels": {"app": "x"}}})
    assert port_map_value({5020: 41000, 502: 40000}) == "502=40000,5020=41000"
