"""ProtocolBridge reconciled: configuration with plcRef resolved, secrets referenced, pod, status, updates."""

from __future__ import annotations

import yaml
from kubernetes import client

from tests.support.waiting import wait_for

from .conftest import Cluster, OperatorFactory
from .manifests import bridge, plc


def test_bridge_lifecycle(start_operator: OperatorFactory, cluster: Cluster) -> None:
    start_operator()
    cluster.create("virtualplcs", plc("mixer"))
    created = cluster.create("protocolbridges", bridge("line-bridge", "mixer"))

    def one_pod() -> client.V1Pod | None:
        pods = [p for p in cluster.live_pods("line-bridge") if p.spec.node_name]
        return pods[0] if len(pods) == 1 else None

    pod = wait_for(one_pod, what="bridge pod")
    assert isinstance(pod, client.V1Pod)
    assert pod.metadata.labels["plc.shopfloor.io/mixer"] == "true"
    assert pod.metadata.owner_references[0].uid == created["metadata"]["uid"]
    assert any(v.secret and v.secret.secret_name == "broker-creds" for v in pod.spec.volumes)
    config_map = cluster.config_map("line-bridge-runtime")
    assert config_map is not None
    document = yaml.safe_load(config_map.data["protocolbridge.yaml"])
    endpoint = document["spec"]["sources"][0]["modbus"]["endpoint"]
    assert endpoint == {"host": f"mixer.{cluster.namespace}.svc", "port": 502}
    assert document["spec"]["sinks"]["mqtt"]["credentialsSecretRef"] == {"name": "broker-creds"}

    policy = client.NetworkingV1Api(cluster.api).read_namespaced_network_policy("mixer", cluster.namespace)
    peers = [peer.pod_selector.match_labels for peer in policy.spec.ingress[0]._from if peer.pod_selector]
    assert {"plc.shopfloor.io/mixer": "true"} in peers

    cluster.play_runtime("line-bridge", pod.metadata.name, "")
    wait_for(lambda: cluster.status("protocolbridges", "line-bridge").get("phase") == "Running", what="Running")
    assert cluster.condition("protocolbridges", "line-bridge", "Ready")["status"] == "True"

    cluster.patch_spec(
        "protocolbridges",
        "line-bridge",
        {
            "sources": [
                {
                    **bridge("x", "mixer")["spec"]["sources"][0],
                    "modbus": {**bridge("x", "mixer")["spec"]["sources"][0]["modbus"], "pollInterval": "250ms"},
                }
            ]
        },
    )

    def replaced() -> client.V1Pod | None:
        current = one_pod()
        return current if current is not None and current.metadata.name != pod.metadata.name else None

    wait_for(replaced, what="bridge pod replaced for its new configuration")
    config_map = cluster.config_map("line-bridge-runtime")
    assert config_map is not None and "250ms" in config_map.data["protocolbridge.yaml"]
    wait_for(lambda: cluster.status("protocolbridges", "line-bridge").get("observedGeneration") == 2)
