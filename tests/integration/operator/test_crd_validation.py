"""The API server itself rejects bad manifests, naming the field (schema, patterns, bounds, CEL rules)."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from .conftest import Cluster
from .manifests import bridge, plc

BAD_PLCS: list[tuple[str, dict[str, Any], str]] = [
    (
        "two-sources",
        {"program": {"source": "x", "configMapRef": {"name": "a", "key": "b"}}},
        'spec.program: Invalid value: "object": exactly one of source or configMapRef',
    ),
    ("no-source", {"program": {}}, "exactly one of source or configMapRef"),
    ("watchdog", {"cycleTime": "10ms", "watchdog": "5ms"}, "spec.watchdog: Invalid value"),
    ("cycle-bound", {"cycleTime": "20s"}, 'spec.cycleTime: Invalid value: "string": must be between 1ms and 10s'),
    ("cycle-pattern", {"cycleTime": "fast"}, 'spec.cycleTime: Invalid value: "fast"'),
    ("priority", {"realtimePriority": 100}, "spec.realtimePriority: Invalid value: 100"),
    ("whole-cpus", {"realtimePriority": 10, "resources": {"cpus": 1.5}}, "spec.resources.cpus: Invalid value"),
    ("sha", {"program": {"source": "x", "sha256": "abc"}}, 'spec.program.sha256: Invalid value: "abc"'),
    ("realtime-enum", {"placement": {"realtime": "Always"}}, 'spec.placement.realtime: Unsupported value: "Always"'),
    (
        "table",
        {"io": {"modbus": {"map": [{"variable": "L", "table": "regs", "address": 0}]}}},
        "spec.io.modbus.map[0].table: Unsupported value",
    ),
    (
        "address",
        {"io": {"modbus": {"map": [{"variable": "L", "table": "coils", "address": 70000}]}}},
        "spec.io.modbus.map[0].address: Invalid value: 70000",
    ),
    ("opcua-cert", {"io": {"opcua": {"enabled": True}}}, "spec.io.opcua.certificateSecretRef: Invalid value"),
    (
        "outputs",
        {
            "io": {
                "fieldDevices": [
                    {
                        "name": "rio",
                        "modbus": {"host": "h"},
                        "outputs": [{"variable": "X", "table": "inputRegisters", "address": 0}],
                    }
                ]
            }
        },
        "spec.io.fieldDevices[0].outputs: Invalid value",
    ),
    ("memory", {"resources": {"memory": "lots"}}, 'spec.resources.memory: Invalid value: "lots"'),
    ("strategy", {"updateStrategy": {"type": "Rolling"}}, "spec.updateStrategy.type: Unsupported value"),
]


def rejection(cluster: Cluster, plural: str, manifest: dict[str, Any]) -> str:
    with pytest.raises(client.ApiException) as raised:
        cluster.create(plural, manifest)
    assert raised.value.status == 422, raised.value.body
    return str(raised.value.body)


@pytest.mark.parametrize(("name", "spec", "message"), BAD_PLCS, ids=[case[0] for case in BAD_PLCS])
def test_bad_virtualplc_rejected_naming_the_field(
    crds: None, cluster: Cluster, name: str, spec: dict[str, Any], message: str
) -> None:
    manifest = plc(f"bad-{name}")
    manifest["spec"].update(spec)
    assert message in rejection(cluster, "virtualplcs", manifest).replace('\\"', '"')


def test_bad_names_rejected(crds: None, cluster: Cluster) -> None:
    body = rejection(cluster, "virtualplcs", plc("x" * 53))
    assert "metadata.name must be at most 52 characters" in body
    assert "must start with a letter" in rejection(cluster, "virtualplcs", plc("1mixer"))


BAD_BRIDGES: list[tuple[str, dict[str, Any], str]] = [
    ("no-sources", {"sources": []}, "spec.sources: Invalid value: 0"),
    ("mqtt-format", {"sinks": {"mqtt": {"url": "mqtt://h"}}}, "exactly one of sparkplug or topicPrefix"),
    (
        "tag-type",
        {
            "sources": [
                {
                    "name": "a",
                    "modbus": {
                        "endpoint": {"host": "h"},
                        "tags": [{"name": "T", "table": "coils", "address": 0, "type": "REAL"}],
                    },
                }
            ]
        },
        "spec.sources[0].modbus.tags[0].type",
    ),
    (
        "duplicate-source",
        {
            "sources": [
                {
                    "name": "a",
                    "modbus": {
                        "endpoint": {"host": "h"},
                        "tags": [{"name": "T", "table": "coils", "address": 0, "type": "BOOL"}],
                    },
                },
                {
                    "name": "a",
                    "opcua": {
                        "endpoint": "opc.tcp://h:4840",
                        "securityPolicy": "None",
                        "nodes": [{"name": "T", "nodeId": "i=1"}],
                    },
                },
            ]
        },
        "spec.sources[1]: Duplicate value",
    ),
    (
        "opcua-endpoint",
        {
            "sources": [
                {
                    "name": "a",
                    "opcua": {
                        "endpoint": "http://h",
                        "securityPolicy": "None",
                        "nodes": [{"name": "T", "nodeId": "i=1"}],
                    },
                }
            ]
        },
        "spec.sources[0].opcua.endpoint: Invalid value",
    ),
]


@pytest.mark.parametrize(("name", "spec", "message"), BAD_BRIDGES, ids=[case[0] for case in BAD_BRIDGES])
def test_bad_bridge_rejected_naming_the_field(
    crds: None, cluster: Cluster, name: str, spec: dict[str, Any], message: str
) -> None:
    manifest = bridge(f"bad-{name}", "mixer-1")
    manifest["spec"].update(spec)
    assert message in rejection(cluster, "protocolbridges", manifest).replace('\\"', '"')


def test_sparkplug_identity_is_immutable(crds: None, cluster: Cluster) -> None:
    cluster.create("protocolbridges", bridge("immutable", "mixer-1"))
    with pytest.raises(client.ApiException) as raised:
        cluster.patch_spec("protocolbridges", "immutable", {"sinks": {"mqtt": {"sparkplug": {"groupId": "other"}}}})
    assert raised.value.status == 422
    assert "groupId and edgeNodeId are immutable" in str(raised.value.body)


def test_good_manifest_gets_defaults(crds: None, cluster: Cluster) -> None:
    created = cluster.create("virtualplcs", plc("defaults"))
    spec = created["spec"]
    assert spec["cycleTime"] == "10ms" and "watchdog" not in spec
    assert spec["placement"]["realtime"] == "Required" and spec["updateStrategy"]["verifyFor"] == "30s"


def test_a_new_object_is_unobserved_until_the_operator_looked(crds: None, cluster: Cluster) -> None:
    # kstatus (and Flux) judge by observedGeneration: generation 1 against 0 reads as in progress, not Current.
    for plural, manifest in (("virtualplcs", plc("unobserved")), ("protocolbridges", bridge("unobserved", "m"))):
        created = cluster.create(plural, manifest)
        assert created["status"] == {"observedGeneration": 0} and created["metadata"]["generation"] == 1
