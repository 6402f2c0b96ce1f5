"""What Argo CD and kstatus say about objects, computed by their own Go code (tests/gitops/healthcheck)."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from shopfloor_localsite.build import ensure_healthcheck

CHART = Path(__file__).resolve().parents[2] / "charts" / "shopfloor"
RESOURCE_CUSTOMIZATIONS = CHART / "argocd" / "resource_customizations"
ARGOCD_CM = CHART / "argocd" / "argocd-cm.yaml"
KINDS = {"VirtualPLC": "virtualplcs", "ProtocolBridge": "protocolbridges"}


@dataclass(frozen=True)
class Verdict:
    kind: str
    name: str
    argocd: str  # Healthy, Progressing, Degraded, Suspended, Missing, Unknown
    argocd_message: str
    kstatus: str  # Current, InProgress, Failed, Terminating, NotFound, Unknown
    kstatus_message: str


def _run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ensure_healthcheck()), *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


def verdicts(objects: list[dict[str, Any]], kubeconfig: Path, argocd_namespace: str) -> list[Verdict]:
    """Argo CD's health (its controller's code path, checks read from argocd-cm in `argocd_namespace` by its
    settings manager) and kstatus' status of each object."""
    result = _run(
        "objects", "--kubeconfig", str(kubeconfig), "--argocd-namespace", argocd_namespace, stdin=json.dumps(objects)
    )
    assert result.returncode == 0, result.stderr
    return [
        Verdict(
            kind=item["kind"],
            name=item["name"],
            argocd=item["argocd"]["status"],
            argocd_message=item["argocd"]["message"],
            kstatus=item["kstatus"]["status"],
            kstatus_message=item["kstatus"]["message"],
        )
        for item in json.loads(result.stdout)
    ]


def run_argocd_tests(directory: Path = RESOURCE_CUSTOMIZATIONS) -> subprocess.CompletedProcess[str]:
    """Every health.lua under `directory` against its health_test.yaml, as Argo CD's TestLuaHealthScript runs
    its own resource_customizations."""
    return _run("argocd-tests", str(directory))


def install_argocd_cm(api: client.ApiClient, namespace: str) -> None:
    """The chart's argocd-cm snippet, applied as an Argo CD installation holds it (in its own namespace)."""
    document = yaml.safe_load(ARGOCD_CM.read_text())
    document["metadata"]["namespace"] = namespace
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": namespace}})
    core.create_namespaced_config_map(namespace, document)
