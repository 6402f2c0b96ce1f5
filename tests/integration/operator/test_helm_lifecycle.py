"""The chart's lifecycle with helm itself: install, upgrade to a chart version whose CRD changed (the API server
serves the new schema), uninstall (the CRDs stay, helm.sh/resource-policy: keep, and with them the VirtualPLCs and
their running pods)."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from shopfloor_localsite.build import ensure_binaries
from tests.support.waiting import wait_for

from .conftest import CRDS, Cluster, OperatorFactory
from .manifests import plc

CHART = Path(__file__).resolve().parents[3] / "charts" / "shopfloor"
PLC_CRD = "virtualplcs.shopfloor.io"
NEW_FIELD = "lifecycleProbe"


def helm(kubeconfig: Path, *args: str) -> str:
    command = [str(ensure_binaries().helm), "--kubeconfig", str(kubeconfig), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def next_chart_version(tmp_path: Path) -> Path:
    """The chart as its next version would ship: 0.2.0, with one more (optional) status field in the PLC CRD."""
    chart = tmp_path / "shopfloor"
    shutil.copytree(CHART, chart)  # files/crds/ links become copies
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    (chart / "Chart.yaml").write_text(yaml.safe_dump({**meta, "version": "0.2.0"}, sort_keys=False))
    crd_file = chart / "files" / "crds" / f"{PLC_CRD}.yaml"
    crd = yaml.safe_load(crd_file.read_text())
    status = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    status["properties"][NEW_FIELD] = {"type": "string", "description": "A field the next chart version adds."}
    crd_file.write_text(yaml.safe_dump(crd, sort_keys=False))
    return chart


@pytest.fixture
def restored_crds(kube_api: client.ApiClient, crds: None) -> Iterator[None]:
    """The session's CRDs as generated again afterwards: the test leaves them changed and labelled by its release."""
    yield
    extensions = client.ApiextensionsV1Api(kube_api)
    for path in sorted(CRDS.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            name = document["metadata"]["name"]
            current = extensions.read_custom_resource_definition(name)
            document["metadata"]["resourceVersion"] = current.metadata.resource_version
            extensions.replace_custom_resource_definition(name, document)


def served_status_fields(kube_api: client.ApiClient) -> set[str]:
    crd = client.ApiextensionsV1Api(kube_api).read_custom_resource_definition(PLC_CRD)
    return set(crd.spec.versions[0].schema.open_apiv3_schema.properties["status"].properties)


def test_install_upgrade_with_a_changed_crd_and_uninstall_keeps_the_plcs(
    start_operator: OperatorFactory,
    cluster: Cluster,
    kube_api: client.ApiClient,
    kubeconfig: Path,
    restored_crds: None,
    tmp_path: Path,
) -> None:
    start_operator()
    release, namespace = f"r{uuid.uuid4().hex[:6]}", cluster.namespace
    # --take-ownership: the session installed the CRDs before this release existed (as a cluster upgraded from
    # a chart that had them in crds/ would have).
    helm(kubeconfig, "install", release, str(CHART), "-n", namespace, "--take-ownership")
    cluster.create("virtualplcs", plc("mixer"))
    pod = wait_for(lambda: next((p for p in cluster.live_pods("mixer") if p.spec.node_name), None), what="mixer's pod")
    assert isinstance(pod, client.V1Pod)
    assert NEW_FIELD not in served_status_fields(kube_api)

    helm(kubeconfig, "upgrade", release, str(next_chart_version(tmp_path)), "-n", namespace)
    assert NEW_FIELD in served_status_fields(kube_api)
    history = yaml.safe_load(helm(kubeconfig, "history", release, "-n", namespace, "-o", "yaml"))
    assert [(entry["revision"], entry["chart"]) for entry in history] == [
        (1, "shopfloor-0.1.0"),
        (2, "shopfloor-0.2.0"),
    ]

    out = helm(kubeconfig, "uninstall", release, "-n", namespace)
    assert (
        "These resources were kept due to the resource policy:" in out
        and f"[CustomResourceDefinition] {PLC_CRD}" in out
    )
    assert NEW_FIELD in served_status_fields(kube_api)
    apps = client.AppsV1Api(kube_api)
    wait_for(lambda: not apps.list_namespaced_deployment(namespace).items, what="the operator's Deployment removed")
    assert cluster.get("virtualplcs", "mixer")["metadata"]["uid"]
    (after,) = [p for p in cluster.pods("mixer")]
    assert after.metadata.uid == pod.metadata.uid and after.metadata.deletion_timestamp is None
