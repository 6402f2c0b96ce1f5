"""Shopfloor's API: pydantic models of VirtualPLC and ProtocolBridge, the source of truth for the CRDs.

Attributes are snake_case in Python and camelCase in YAML (`spec.cycle_time` <-> `cycleTime`); dumps use the
camelCase names. `load_manifest` validates a whole manifest file or text.
"""

from shopfloor_api.common import API_VERSION, GROUP, VERSION, Condition, Duration, Placement, Quantity, RealtimeMode
from shopfloor_api.loader import ManifestError, load_manifest, parse_manifest
from shopfloor_api.protocolbridge import ProtocolBridge, ProtocolBridgeSpec, ProtocolBridgeStatus
from shopfloor_api.virtualplc import VirtualPLC, VirtualPLCSpec, VirtualPLCStatus

__all__ = [
    "API_VERSION",
    "GROUP",
    "VERSION",
    "Condition",
    "Duration",
    "ManifestError",
    "Placement",
    "ProtocolBridge",
    "ProtocolBridgeSpec",
    "ProtocolBridgeStatus",
    "Quantity",
    "RealtimeMode",
    "VirtualPLC",
    "VirtualPLCSpec",
    "VirtualPLCStatus",
    "load_manifest",
    "parse_manifest",
]
