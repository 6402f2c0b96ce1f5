"""First contact: with peering on and no peering object, the operator creates it, or says at once what to create.

`kubectl apply -f crds/` then `shopfloor-operator` is the obvious first try; kopf alone waits silently for its
peering object. These run the operator as a process (as a user would), peering on, watching the test namespace.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from shopfloor_localsite.build import ensure_binaries
from shopfloor_localsite.controlplane import LocalControlPlane
from shopfloor_localsite.kubeconfig import kubeconfig_document, write_kubeconfig_file
from tests.support.waiting import wait_for

from .conftest import CRDS, Cluster
from .manifests import plc
from .operator_process import OperatorProcess

CHART = Path(__file__).resolve().parents[3] / "charts" / "shopfloor"
PEERING_CRD = "kopfpeerings.kopf.dev"
SAID_WITHIN_S = 10.0


def kubectl(kubeconfig: Path, *args: str, stdin: str = "") -> str:
    command = [str(ensure_binaries().kubectl), "--kubeconfig", str(kubeconfig), *args]
    result = subprocess.run(command, input=stdin, capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def run_as_told(command: str, kubeconfig: Path) -> None:
    """A command from the operator's message, run in a shell exactly as printed, as the cluster's admin."""
    environment = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "PATH": f"{ensure_binaries().kubectl.parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    result = subprocess.run(
        ["sh", "-c", command], env=environment, capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, (command, result.stderr)


def log_lines(log: Path, level: str) -> list[str]:
    return [line for line in log.read_text().splitlines() if f" {level} " in line] if log.exists() else []


def said_error(log: Path) -> str:
    """The operator's first ERROR, waited for at most SAID_WITHIN_S after its start."""
    error = wait_for(lambda: next(iter(log_lines(log, "ERROR")), None), timeout=SAID_WITHIN_S, what="the ERROR")
    assert isinstance(error, str)
    return error


def peering_exists(api: client.ApiClient, namespace: str) -> bool:
    try:
        client.CustomObjectsApi(api).get_namespaced_custom_object(
            "kopf.dev", "v1", namespace, "kopfpeerings", "shopfloor"
        )
    except client.ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def a_pod_appears(cluster: Cluster, name: str) -> None:
    cluster.create("virtualplcs", plc(name))
    wait_for(lambda: cluster.live_pods(name), timeout=30, what=f"the pod of {name}")


def test_creates_the_missing_peering_object_and_reconciles(
    crds: None, cluster: Cluster, kubeconfig: Path, namespace: str, tmp_path: Path, processes: list[OperatorProcess]
) -> None:
    assert not peering_exists(cluster.api, namespace)
    log = tmp_path / "operator.log"
    processes.append(OperatorProcess(kubeconfig, namespace, log))  # peering on: no SHOPFLOOR_STANDALONE
    wait_for(lambda: peering_exists(cluster.api, namespace), timeout=SAID_WITHIN_S, what="the KopfPeering created")
    a_pod_appears(cluster, "first")
    text = log.read_text()
    assert f'Created the kopf peering object KopfPeering "shopfloor" in namespace "{namespace}"' in text
    assert not log_lines(log, "ERROR"), text


@pytest.fixture
def chart_service_account(
    kubeconfig: Path, namespace: str, kube_api: client.ApiClient, tmp_path: Path
) -> Iterator[Path]:
    """The chart's ServiceAccount and RBAC (no `create` on kopf's peerings) in the test namespace; its kubeconfig."""
    release = f"r{uuid.uuid4().hex[:6]}"
    rendered = subprocess.run(
        [str(ensure_binaries().helm), "template", release, str(CHART), "--namespace", namespace],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    rbac = yaml.safe_dump_all(
        [
            d
            for d in yaml.safe_load_all(rendered)
            if d and d["kind"] not in ("Deployment", "Service", "CustomResourceDefinition")
        ]
    )
    kubectl(kubeconfig, "apply", "--server-side", "-f", "-", stdin=rbac)
    try:
        token = (
            client.CoreV1Api(kube_api)
            .create_namespaced_service_account_token(
                "shopfloor-operator", namespace, {"spec": {"expirationSeconds": 3600}}
            )
            .status.token
        )
        cluster = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]
        document = kubeconfig_document(
            cluster["server"], cluster["certificate-authority-data"], "shopfloor-operator", {"token": token}
        )
        yield write_kubeconfig_file(tmp_path / "operator.kubeconfig", document)
    finally:
        kubectl(kubeconfig, "delete", "--ignore-not-found", "-f", "-", stdin=rbac)


def test_not_allowed_to_create_it_says_what_to_create(
    crds: None,
    cluster: Cluster,
    kubeconfig: Path,
    namespace: str,
    tmp_path: Path,
    chart_service_account: Path,  # before `processes`: the operator stops (and removes its finalizers) first
    processes: list[OperatorProcess],
) -> None:
    log = tmp_path / "operator.log"
    processes.append(OperatorProcess(chart_service_account, namespace, log))
    error = said_error(log)
    assert f'KopfPeering "shopfloor" in namespace "{namespace}"' in error
    assert "no `create` on kopfpeerings.kopf.dev" in error
    assert "--standalone true" in error and "SHOPFLOOR_STANDALONE=true" in error
    assert not peering_exists(cluster.api, namespace)
    # Doing what it says is enough: the operator finds the object and reconciles.
    commands = re.findall(r"`(echo '[^`]*' \| kubectl apply -f -)`", error)
    assert len(commands) == 1, error
    run_as_told(commands[0], kubeconfig)
    wait_for(lambda: "Found the kopf peering object" in log.read_text(), timeout=SAID_WITHIN_S, what="found")
    a_pod_appears(cluster, "told")
    assert len(log_lines(log, "ERROR")) <= 2, log.read_text()  # said once, again at most every 30 s


@pytest.fixture
def without_peering_crd(
    control_plane: LocalControlPlane | None, crds: None, kube_api: client.ApiClient, kubeconfig: Path
) -> Iterator[None]:
    """kopf's KopfPeering CRD deleted for the test, installed again afterwards (for every later test)."""
    if control_plane is None:
        pytest.skip("deletes a CRD: only on the local control plane, never on SHOPFLOOR_TEST_KUBECONFIG's cluster")
    extensions = client.ApiextensionsV1Api(kube_api)

    def gone() -> bool:
        try:
            extensions.read_custom_resource_definition(PEERING_CRD)
        except client.ApiException as error:
            if error.status == 404:
                return True
            raise
        return False

    try:
        extensions.delete_custom_resource_definition(PEERING_CRD)
        wait_for(gone, what=f"CRD {PEERING_CRD} deleted")
        yield
    finally:
        kubectl(kubeconfig, "apply", "--server-side", "-f", str(CRDS / "kopf-peering.yaml"))
        kubectl(kubeconfig, "wait", "--for=condition=Established", "--timeout=30s", f"crd/{PEERING_CRD}")
        wait_for(lambda: _servable(kube_api), what="KopfPeerings servable again")


def _servable(api: client.ApiClient) -> bool:
    try:
        client.CustomObjectsApi(api).list_cluster_custom_object("kopf.dev", "v1", "kopfpeerings", limit=1)
    except client.ApiException as error:
        if error.status in (404, 429, 503):
            return False
        raise
    return True


def test_missing_peering_crd_says_install_it(
    without_peering_crd: None,
    cluster: Cluster,
    kubeconfig: Path,
    namespace: str,
    tmp_path: Path,
    processes: list[OperatorProcess],
) -> None:
    log = tmp_path / "operator.log"
    processes.append(OperatorProcess(kubeconfig, namespace, log))
    error = said_error(log)
    assert f"{PEERING_CRD} is not installed" in error
    assert "kubectl apply -f crds/kopf-peering.yaml" in error
    assert f'KopfPeering "shopfloor" in namespace "{namespace}"' in error
    assert "--standalone true" in error
    # Installing the CRD is enough with these (admin) credentials: the operator creates the object itself.
    kubectl(kubeconfig, "apply", "--server-side", "-f", str(CRDS / "kopf-peering.yaml"))
    wait_for(lambda: peering_exists(cluster.api, namespace), timeout=20, what="the KopfPeering created")
    a_pod_appears(cluster, "installed")
