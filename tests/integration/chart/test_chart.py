"""The Helm chart lints, renders objects the real API server accepts, and gives the operator's ServiceAccount
what the operator needs (and the right to grant workloads their Roles)."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from shopfloor_localsite.build import ensure_binaries

CHART = Path(__file__).resolve().parents[3] / "charts" / "shopfloor"


def helm(*args: str) -> str:
    result = subprocess.run([str(ensure_binaries().helm), *args], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def kubectl(kubeconfig: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ensure_binaries().kubectl), "--kubeconfig", str(kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )


def test_chart_lints() -> None:
    assert "0 chart(s) failed" in helm("lint", "--strict", str(CHART))


@pytest.mark.parametrize("replicas", [1, 2])
def test_rendered_chart_is_accepted_by_the_api_server(kubeconfig: Path, namespace: str, replicas: int) -> None:
    rendered = helm("template", "shopfloor", str(CHART), "--namespace", namespace, "--set", f"replicas={replicas}")
    kinds = sorted(doc["kind"] for doc in yaml.safe_load_all(rendered) if doc)
    # Two Services: the metrics one and the operator's own (the witness runtimes ask, docs/failover.md); four CRDs
    # (VirtualPLC, ProtocolBridge, kopf's two peerings: crds.install).
    expected = ["ClusterRole", "ClusterRoleBinding", "Deployment", "Service", "Service", "ServiceAccount"]
    expected += ["CustomResourceDefinition"] * 4
    assert kinds == sorted(expected + (["ClusterKopfPeering"] if replicas > 1 else []))
    result = kubectl(kubeconfig, "apply", "--server-side", "-f", "-", stdin=_only(rendered, "CustomResourceDefinition"))
    assert result.returncode == 0, result.stderr
    result = kubectl(kubeconfig, "apply", "--server-side", "--dry-run=server", "-f", "-", stdin=rendered)
    assert result.returncode == 0, result.stderr


def _only(rendered: str, kind: str) -> str:
    return yaml.safe_dump_all([doc for doc in yaml.safe_load_all(rendered) if doc and doc["kind"] == kind])


def test_operator_service_account_can_do_its_job(kubeconfig: Path, kube_api: client.ApiClient, namespace: str) -> None:
    release = f"r{uuid.uuid4().hex[:6]}"
    rendered = helm("template", release, str(CHART), "--namespace", namespace)
    rbac = yaml.safe_dump_all(
        [
            doc
            for doc in yaml.safe_load_all(rendered)
            if doc and doc["kind"] not in ("Deployment", "Service", "CustomResourceDefinition")
        ]
    )
    result = kubectl(kubeconfig, "apply", "--server-side", "-f", "-", stdin=rbac)
    assert result.returncode == 0, result.stderr
    user = f"system:serviceaccount:{namespace}:shopfloor-operator"
    try:
        needed = [
            ("watch", "shopfloor.io", "virtualplcs", ""),
            ("patch", "shopfloor.io", "virtualplcs", "status"),
            ("create", "", "pods", ""),
            ("delete", "", "pods", ""),
            ("create", "rbac.authorization.k8s.io", "roles", ""),
            ("create", "coordination.k8s.io", "leases", ""),
            ("create", "networking.k8s.io", "networkpolicies", ""),
            ("list", "", "nodes", ""),
            ("create", "", "events", ""),
            ("create", "", "secrets", ""),  # a hot-standby PLC's key
            ("delete", "", "secrets", ""),
        ]
        for verb, group, resource, subresource in needed:
            assert _allowed(kube_api, user, verb, group, resource, subresource), (verb, group, resource, subresource)
        forbidden = [
            ("get", "", "secrets"),  # it writes a key it never reads back, and reads no Secret of anyone else
            ("list", "", "secrets"),
            ("watch", "", "secrets"),
            ("update", "", "secrets"),
            ("delete", "", "nodes"),
            ("create", "", "nodes"),
        ]
        for verb, group, resource in forbidden:
            assert not _allowed(kube_api, user, verb, group, resource, ""), (verb, group, resource)
    finally:
        kubectl(kubeconfig, "delete", "-f", "-", stdin=rbac)


def _allowed(api: client.ApiClient, user: str, verb: str, group: str, resource: str, subresource: str) -> bool:
    review = client.AuthorizationV1Api(api).create_subject_access_review(
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": user,
                "groups": ["system:serviceaccounts", "system:authenticated"],
                "resourceAttributes": {
                    "verb": verb,
                    "group": group,
                    "resource": resource,
                    "subresource": subresource,
                    "namespace": "any",
                },
            },
        }
    )
    return bool(review.status.allowed)
