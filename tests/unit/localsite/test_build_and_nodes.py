"""Pure parts of the local site: the Kubernetes wrapper module and the simulated node manifests."""

from __future__ import annotations

from shopfloor_localsite.build import kube_version_ldflags, kube_wrapper_go_mod, staging_modules
from shopfloor_localsite.nodes import (
    EDGE_ROLE_LABEL,
    KWOK_MANAGED_LABEL,
    REALTIME_LABEL,
    REALTIME_TAINT_KEY,
    default_nodes,
    node_manifest,
)

GO_MOD = """module k8s.io/kubernetes

require (
\tk8s.io/api v0.0.0
\tk8s.io/client-go v0.0.0
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
\tgithub.com/other/module => github.com/fork/module v1.0.0
)
"""


def test_staging_modules_are_read_from_the_replace_directives() -> None:
    assert staging_modules(GO_MOD) == ["k8s.io/api", "k8s.io/client-go"]


def test_wrapper_replaces_each_staging_module_with_its_published_release() -> None:
    go_mod = kube_wrapper_go_mod("v1.34.4", ["k8s.io/api", "k8s.io/client-go"])
    assert "require k8s.io/kubernetes v1.34.4" in go_mod
    assert "\tk8s.io/api => k8s.io/api v0.34.4" in go_mod
    assert "\tk8s.io/client-go => k8s.io/client-go v0.34.4" in go_mod


def test_version_ldflags_stamp_component_base_and_client_go() -> None:
    flags = kube_version_ldflags("v1.34.4")
    assert "-X k8s.io/component-base/version.gitVersion=v1.34.4" in flags
    assert "-X k8s.io/client-go/pkg/version.gitMinor=34" in flags


def test_default_site_has_two_realtime_and_two_general_edge_nodes() -> None:
    nodes = default_nodes()
    assert [n.name for n in nodes] == ["edge-rt-1", "edge-rt-2", "edge-1", "edge-2"]
    manifests = {n.name: node_manifest(n) for n in nodes}
    addresses = {m["status"]["addresses"][0]["address"] for m in manifests.values()}
    assert len(addresses) == 4 and all(a.startswith("127.") for a in addresses)
    for name, manifest in manifests.items():
        labels = manifest["metadata"]["labels"]
        assert EDGE_ROLE_LABEL in labels and labels[KWOK_MANAGED_LABEL] == "true"
        taints = manifest["spec"].get("taints", [])
        if name.startswith("edge-rt-"):
            assert labels[REALTIME_LABEL] == "true"
            assert taints == [{"key": REALTIME_TAINT_KEY, "value": "true", "effect": "NoSchedule"}]
            assert manifest["status"]["allocatable"]["cpu"] == "4"
        else:
            assert REALTIME_LABEL not in labels and not taints
