"""ProtocolBridge manifests for the tests, validated by the real API models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from shopfloor_api import ProtocolBridge, parse_manifest
from shopfloor_bridge.config import BridgeConfig, from_manifest


def bridge_manifest(
    sources: list[dict[str, Any]],
    mqtt: dict[str, Any] | None = None,
    opcua: dict[str, Any] | None = None,
    writes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    sinks: dict[str, Any] = {}
    if mqtt is not None:
        sinks["mqtt"] = mqtt
    if opcua is not None:
        sinks["opcua"] = opcua
    return {
        "apiVersion": "shopfloor.io/v1alpha1",
        "kind": "ProtocolBridge",
        "metadata": {"name": "line-1-bridge", "namespace": "line-1"},
        "spec": {"sources": sources, "sinks": sinks, "writes": writes or {"enabled": False, "allow": []}},
    }


def modbus_source(port: int, tags: list[dict[str, Any]], name: str = "mixer", poll: str = "20ms") -> dict[str, Any]:
    return {
        "name": name,
        "modbus": {"endpoint": {"host": "127.0.0.1", "port": port}, "unitId": 1, "pollInterval": poll, "tags": tags},
    }


def config_of(document: dict[str, Any], state_dir: Path) -> BridgeConfig:
    manifest = parse_manifest(document)
    assert isinstance(manifest, ProtocolBridge)
    return from_manifest(manifest, state_dir)


def write_manifest(document: dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path
