"""Service and NetworkPolicy: clients reach the workload through its Service, and only the listed ones may."""

from __future__ import annotations

from typing import Any

from shopfloor_api.runtime_contract import SYNC_PORT_NAME
from shopfloor_operator.builders.workload import Workload, plc_client_label
from shopfloor_operator.settings import OperatorSettings


def service(workload: Workload) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": workload.metadata(workload.name),
        "spec": {
            "type": "ClusterIP",
            "selector": workload.selector_labels,
            "ports": [
                {"name": port.name, "port": port.port, "targetPort": port.name, "protocol": "TCP"}
                for port in workload.service_ports
            ],
        },
    }


def _peer(peer: Any) -> dict[str, Any]:
    return peer.model_dump(mode="json", exclude_none=True, exclude_defaults=False)


def network_policy(workload: Workload, settings: OperatorSettings) -> dict[str, Any]:
    """Deny all ingress except: allowed clients (and bridges reading this PLC) to the client ports, the operator
    and metrics scrapers to the health/metrics port, and with hot standby the workload's own pods to the sync port."""
    client_ports = [{"port": name, "protocol": "TCP"} for name in workload.client_ports]
    ingress: list[dict[str, Any]] = []
    if client_ports:
        peers = [_peer(peer) for peer in workload.allowed_clients]
        if workload.kind == "VirtualPLC":
            peers.append({"podSelector": {"matchLabels": {plc_client_label(workload.name): "true"}}})
        ingress.append({"from": peers, "ports": client_ports})
    ingress.append(
        {
            "from": [
                {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": settings.operator_namespace}},
                    "podSelector": {"matchLabels": dict(settings.operator_pod_labels)},
                },
                {"namespaceSelector": {"matchLabels": dict(settings.scraper_namespace_labels)}},
            ],
            "ports": [{"port": "http", "protocol": "TCP"}],
        }
    )
    if workload.hot_standby is not None:
        # The process state goes to the workload's own other pod, and nobody else may feed a standby.
        ingress.append(
            {
                "from": [{"podSelector": {"matchLabels": dict(workload.selector_labels)}}],
                "ports": [{"port": SYNC_PORT_NAME, "protocol": "TCP"}],
            }
        )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": workload.metadata(workload.name),
        "spec": {
            "podSelector": {"matchLabels": workload.selector_labels},
            "policyTypes": ["Ingress"],
            "ingress": ingress,
        },
    }
