"""Manifests used by the operator's integration tests."""

from __future__ import annotations

from typing import Any

GOOD_SOURCE = "PROGRAM Main\nVAR Level : REAL; END_VAR\nLevel := Level + 1.0;\nEND_PROGRAM\n"
NEW_SOURCE = "PROGRAM Main\nVAR Level : REAL; END_VAR\nLevel := Level + 2.0;\nEND_PROGRAM\n"
OTHER_SOURCE = "PROGRAM Main\nVAR Level : REAL; END_VAR\nLevel := Level + 3.0;\nEND_PROGRAM\n"
BROKEN_SOURCE = "PROGRAM Main\nVAR Level : REAL; END_VAR\nLevel := ;\nEND_PROGRAM\n"


def plc(name: str, source: str = GOOD_SOURCE, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "shopfloor.io/v1alpha1",
        "kind": "VirtualPLC",
        "metadata": {"name": name},
        "spec": {"program": {"source": source}, **spec},
    }


def bridge(name: str, plc_name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "shopfloor.io/v1alpha1",
        "kind": "ProtocolBridge",
        "metadata": {"name": name},
        "spec": {
            "sources": [
                {
                    "name": "mixer",
                    "modbus": {
                        "plcRef": {"name": plc_name},
                        "tags": [{"name": "Level", "table": "holdingRegisters", "address": 0, "type": "REAL"}],
                    },
                }
            ],
            "sinks": {
                "mqtt": {
                    "url": "mqtt://broker:1883",
                    "credentialsSecretRef": {"name": "broker-creds"},
                    "sparkplug": {"groupId": "plant", "edgeNodeId": "line-1"},
                }
            },
            **spec,
        },
    }
