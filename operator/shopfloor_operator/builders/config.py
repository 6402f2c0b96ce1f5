"""The runtime ConfigMap (what the workload runs), the retain ConfigMap, the Lease the workload reports through and
the hot standby pair's key Secret.

The runtime ConfigMap holds a complete manifest, so a pod runs exactly what `shopfloor-vplc run FILE` runs on a
laptop: key `virtualplc.yaml` (or `protocolbridge.yaml`) plus `revision`. For a VirtualPLC it also keeps the last
known good manifest, from which the operator rolls back.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from typing import Any

import yaml

from shopfloor_api.protocolbridge import ProtocolBridge
from shopfloor_api.runtime_contract import (
    BRIDGE_MANIFEST_KEY,
    PLC_MANIFEST_KEY,
    SYNC_KEY,
    SYNC_KEY_BYTES,
    LockTiming,
)
from shopfloor_api.virtualplc import VirtualPLC
from shopfloor_operator.builders.workload import Workload

LAST_KNOWN_GOOD_KEY = "last-known-good.yaml"
REVISION_KEY = "revision"
REVISION_ANNOTATION = "shopfloor.io/revision"


@dataclass(frozen=True)
class ProgramRelease:
    """One program revision as deployed: the source itself, its content hash and entrypoint."""

    revision: str
    source: str
    entrypoint: str = ""


def plc_manifest(plc: VirtualPLC, release: ProgramRelease) -> str:
    """The PLC's manifest running `release`, as YAML: inline source, pinned to its revision."""
    document = plc.model_dump(mode="json", exclude_none=True, exclude={"status"})
    document["metadata"] = {"name": plc.metadata.name, "namespace": plc.metadata.namespace}
    document["spec"]["program"] = {
        "source": release.source,
        "entrypoint": release.entrypoint,
        "sha256": release.revision,
    }
    return yaml.safe_dump(document, sort_keys=False)


def plc_config_map(
    workload: Workload, plc: VirtualPLC, deployed: ProgramRelease, last_known_good: ProgramRelease | None
) -> dict[str, Any]:
    data = {PLC_MANIFEST_KEY: plc_manifest(plc, deployed), REVISION_KEY: deployed.revision}
    if last_known_good is not None:
        data[LAST_KNOWN_GOOD_KEY] = plc_manifest(plc, last_known_good)
    metadata = workload.metadata(workload.config_map_name)
    metadata["annotations"] = {REVISION_ANNOTATION: deployed.revision}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}


def bridge_config_map(workload: Workload, bridge: ProtocolBridge) -> dict[str, Any]:
    """The bridge's manifest with every `plcRef` resolved to the PLC's Service; Secrets stay references."""
    document = bridge.model_dump(mode="json", exclude_none=True, exclude={"status"})
    document["metadata"] = {"name": bridge.metadata.name, "namespace": bridge.metadata.namespace}
    for source in document["spec"]["sources"]:
        modbus = source.get("modbus")
        if modbus and "plcRef" in modbus:
            plc = modbus.pop("plcRef")["name"]
            modbus["endpoint"] = {"host": f"{plc}.{bridge.metadata.namespace}.svc", "port": 502}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": workload.metadata(workload.config_map_name),
        "data": {BRIDGE_MANIFEST_KEY: yaml.safe_dump(document, sort_keys=False)},
    }


def retain_config_map(workload: Workload) -> dict[str, Any]:
    """Created empty by the operator, because RBAC cannot grant `create` on one name only."""
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": workload.metadata(workload.retain_config_map_name)}


def lease(workload: Workload) -> dict[str, Any]:
    """Created without a holder for the same reason; the workload takes it and renews it."""
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": workload.metadata(workload.lease_name),
        "spec": {"leaseDurationSeconds": LockTiming(workload.lease_duration_s).lease_duration_seconds},
    }


def sync_secret(workload: Workload) -> dict[str, Any]:
    """The key that authenticates the hot standby's sync link, random for each PLC. Created once and never updated
    (immutable): a new key under a running pair would part primary and standby, and the operator never reads a
    Secret back. Owned by the PLC, so it goes with it."""
    key = base64.b64encode(secrets.token_bytes(SYNC_KEY_BYTES)).decode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": workload.metadata(workload.sync_secret_name),
        "type": "Opaque",
        "immutable": True,
        "data": {SYNC_KEY: key},
    }
