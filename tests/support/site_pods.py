"""A workload pod as the operator would label it, for site-runner tests that create pods by hand."""

from __future__ import annotations

from typing import Any


def site_workload_pod(name: str, node: str, command: list[str], env: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {
                "app.kubernetes.io/part-of": "shopfloor",
                "app.kubernetes.io/component": "vplc",
                "app.kubernetes.io/instance": name,
            },
        },
        "spec": {
            "nodeName": node,
            "serviceAccountName": "default",
            "containers": [
                {
                    "name": "runtime",
                    "image": "shopfloor/vplc:test",
                    "command": command,
                    "ports": [{"name": "http", "containerPort": 8080}],
                    "env": env,
                }
            ],
        },
    }
