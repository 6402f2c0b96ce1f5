"""Simulated edge nodes: pure manifest builders for the Node objects kwok keeps alive."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

REALTIME_LABEL = "feature.node.kubernetes.io/kernel-config.PREEMPT_RT"
REALTIME_TAINT_KEY = "shopfloor.io/realtime"
EDGE_ROLE_LABEL = "node-role.kubernetes.io/edge"
# kwok manages nodes carrying this label; removing it stops the heartbeat, so the node goes NotReady
# exactly as a real node that lost power would.
KWOK_MANAGED_LABEL = "shopfloor.io/simulated-kubelet"
NODE_ADDRESS_PREFIX = "127.0.1."


class SimulatedNode(BaseModel):
    """One simulated edge node."""

    name: str
    realtime: bool = False
    cpus: int = Field(default=4, ge=1)
    memory: str = "8Gi"
    max_pods: int = 110
    address_index: int = Field(default=1, ge=1, le=254, description="last octet of the node's 127.0.1.x address")


def default_nodes(realtime: int = 2, general: int = 2) -> list[SimulatedNode]:
    """The default site: edge-rt-1..N (PREEMPT_RT, tainted) and edge-1..M (general edge nodes)."""
    nodes = [SimulatedNode(name=f"edge-rt-{i}", realtime=True, address_index=i) for i in range(1, realtime + 1)]
    nodes += [SimulatedNode(name=f"edge-{i}", address_index=100 + i) for i in range(1, general + 1)]
    return nodes


def node_manifest(node: SimulatedNode) -> dict[str, Any]:
    labels = {
        "kubernetes.io/hostname": node.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        EDGE_ROLE_LABEL: "",
        KWOK_MANAGED_LABEL: "true",
    }
    taints: list[dict[str, str]] = []
    if node.realtime:
        labels[REALTIME_LABEL] = "true"
        taints.append({"key": REALTIME_TAINT_KEY, "value": "true", "effect": "NoSchedule"})
    capacity = {"cpu": str(node.cpus), "memory": node.memory, "pods": str(node.max_pods), "ephemeral-storage": "50Gi"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node.name,
            "labels": labels,
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {"taints": taints} if taints else {},
        "status": {
            "capacity": capacity,
            "allocatable": capacity,
            "addresses": [
                {"type": "InternalIP", "address": f"{NODE_ADDRESS_PREFIX}{node.address_index}"},
                {"type": "Hostname", "address": node.name},
            ],
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kernelVersion": "6.1.0-rt" if node.realtime else "6.1.0",
                "kubeletVersion": "simulated",
                "osImage": "Shopfloor simulated edge node",
                "containerRuntimeVersion": "simulated",
                "kubeProxyVersion": "",
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
        },
    }
