"""kubectl on our objects, as an operator of the line uses it: `explain` text on every field the API server
publishes, printer columns that say whether it runs, where and which revision, `kubectl get shopfloor` over both
kinds, `kubectl wait --for=condition=Ready`, and Events with CamelCase reasons and messages a person reads."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

from kubernetes import client

from shopfloor_localsite.build import ensure_binaries
from shopfloor_st import source_revision
from tests.support.openapi import undocumented
from tests.support.waiting import wait_for

from .conftest import Cluster, OperatorFactory
from .manifests import GOOD_SOURCE, bridge, plc


def kubectl_command(kubeconfig: Path, *args: str) -> list[str]:
    return [str(ensure_binaries().kubectl), "--kubeconfig", str(kubeconfig), *args]


def kubectl(kubeconfig: Path, *args: str) -> str:
    result = subprocess.run(kubectl_command(kubeconfig, *args), capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_explain_has_text_on_every_published_field(kubeconfig: Path, crds: None) -> None:
    def published() -> dict[str, Any] | None:
        # The API server publishes a CRD's OpenAPI a moment after the CRD is established.
        command = kubectl_command(kubeconfig, "get", "--raw", "/openapi/v3/apis/shopfloor.io/v1alpha1")
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        return json.loads(result.stdout) if result.returncode == 0 else None

    document = wait_for(published, what="the OpenAPI of shopfloor.io/v1alpha1 published")
    assert isinstance(document, dict)
    schemas = document["components"]["schemas"]
    for kind in ("VirtualPLC", "ProtocolBridge"):
        schema = schemas[f"io.shopfloor.v1alpha1.{kind}"]
        # metadata is the server's ObjectMeta (a $ref): explain shows Kubernetes' own text there.
        assert [f for f in undocumented(schema) if not f.startswith(".metadata")] == [], kind
    text = kubectl(kubeconfig, "explain", "virtualplc.spec.io.fieldDevices.modbus.port")
    assert "DESCRIPTION:" in text and "FIELD: port <integer>" in text, text
    assert "DESCRIPTION:\n    <empty>" not in kubectl(kubeconfig, "explain", "protocolbridge.status.conditions")


def test_get_wait_and_events_on_both_kinds(start_operator: OperatorFactory, cluster: Cluster, kubeconfig: Path) -> None:
    start_operator()
    namespace = cluster.namespace
    cluster.create("virtualplcs", plc("mixer"))
    cluster.create("protocolbridges", bridge("line-bridge", "mixer"))
    waits = [
        subprocess.Popen(
            [*kubectl_command(kubeconfig, "-n", namespace), "wait", "--for=condition=Ready", "--timeout=60s", target],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for target in ("virtualplc/mixer", "protocolbridge/line-bridge")
    ]
    revision = source_revision(GOOD_SOURCE)
    for name, played in (("mixer", revision), ("line-bridge", "")):
        pod = wait_for(lambda: next((p for p in cluster.live_pods(name) if p.spec.node_name), None), what=name)  # noqa: B023
        assert isinstance(pod, client.V1Pod)
        cluster.play_runtime(name, pod.metadata.name, played)
    for wait in waits:
        out, err = wait.communicate(timeout=90)
        assert wait.returncode == 0 and "condition met" in out, err

    listed = kubectl(kubeconfig, "-n", namespace, "get", "shopfloor")
    assert "protocolbridge.shopfloor.io/line-bridge" in listed and "virtualplc.shopfloor.io/mixer" in listed
    assert re.search(r"NAME\s+PHASE\s+NODE\s+READY\s+AGE", listed), listed
    wide = kubectl(kubeconfig, "-n", namespace, "get", "vplc", "mixer", "-o", "wide").splitlines()
    assert re.split(r"\s{2,}", wide[0].strip()) == ["NAME", "PHASE", "NODE", "REVISION", "READY", "AGE"]
    row = re.split(r"\s{2,}", wide[1].strip())
    assert row[:5] == ["mixer", "Running", cluster.status("virtualplcs", "mixer")["nodeName"], revision, "True"]

    events = json.loads(kubectl(kubeconfig, "-n", namespace, "get", "events", "-o", "json"))["items"]
    ours = [e for e in events if e["involvedObject"]["kind"] in ("VirtualPLC", "ProtocolBridge")]
    assert {"Scheduled", "Ready"} <= {e["reason"] for e in ours}, ours
    for event in ours:
        assert re.fullmatch(r"[A-Z][a-z]+(?:[A-Z][a-z]+)*", event["reason"]), event["reason"]
        message = event["message"]
        assert message and len(message) < 1024, event
        assert not re.search(r"\{'|\['|None\b|Traceback|<[a-z_.]+ object", message), message
