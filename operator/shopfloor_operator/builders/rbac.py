"""ServiceAccount, Role and RoleBinding: the workload may read its own ConfigMap and write its own Lease and
retain ConfigMap, named one by one (`resourceNames`), nothing else."""

from __future__ import annotations

from typing import Any

from shopfloor_operator.builders.workload import Workload


def service_account(workload: Workload) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": workload.metadata(workload.service_account_name),
        "automountServiceAccountToken": True,
    }


def role(workload: Workload) -> dict[str, Any]:
    rules: list[dict[str, Any]] = [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": [workload.config_map_name],
            "verbs": ["get", "list", "watch"],
        },
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": [workload.lease_name],
            "verbs": ["get", "list", "watch", "update", "patch"],
        },
    ]
    if workload.kind == "VirtualPLC":
        rules.append(
            {
                "apiGroups": [""],
                "resources": ["configmaps"],
                "resourceNames": [workload.retain_config_map_name],
                "verbs": ["get", "update", "patch"],
            }
        )
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": workload.metadata(workload.service_account_name),
        "rules": rules,
    }


def role_binding(workload: Workload) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": workload.metadata(workload.service_account_name),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": workload.service_account_name},
        "subjects": [
            {"kind": "ServiceAccount", "name": workload.service_account_name, "namespace": workload.namespace}
        ],
    }
