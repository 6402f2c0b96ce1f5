"""Shared inputs for the operator's pure-function tests."""

from typing import Any

import pytest

from shopfloor_api import VirtualPLC, parse_manifest
from shopfloor_api.protocolbridge import ProtocolBridge
from shopfloor_operator.settings import OperatorSettings

SOURCE = "PROGRAM Main\nVAR Level : REAL; END_VAR\nLevel := Level + 1.0;\nEND_PROGRAM\n"


def plc_manifest(**spec: Any) -> VirtualPLC:
    document = {
        "apiVersion": "shopfloor.io/v1alpha1",
        "kind": "VirtualPLC",
        "metadata": {"name": "mixer-1", "namespace": "line-1", "uid": "uid-1", "generation": 1},
        "spec": {"program": {"source": SOURCE}, **spec},
    }
    manifest = parse_manifest(document)
    assert isinstance(manifest, VirtualPLC)
    return manifest


def bridge_manifest(**spec: Any) -> ProtocolBridge:
    document = {
        "apiVersion": "shopfloor.io/v1alpha1",
        "kind": "ProtocolBridge",
        "metadata": {"name": "line-1-bridge", "namespace": "line-1", "uid": "uid-2"},
        "spec": {
            "sources": [
                {
                    "name": "mixer",
                    "modbus": {
                        "plcRef": {"name": "mixer-1"},
                        "tags": [{"name": "Level", "table": "holdingRegisters", "address": 0, "type": "REAL"}],
                    },
                }
            ],
            "sinks": {
                "mqtt": {
                    "url": "mqtts://broker:8883",
                    "credentialsSecretRef": {"name": "broker-creds"},
                    "sparkplug": {"groupId": "plant", "edgeNodeId": "line-1"},
                }
            },
            **spec,
        },
    }
    manifest = parse_manifest(document)
    assert isinstance(manifest, ProtocolBridge)
    return manifest


@pytest.fixture
def settings() -> OperatorSettings:
    return OperatorSettings()
