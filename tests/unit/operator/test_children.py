"""RBAC, ConfigMaps, Lease, Service and NetworkPolicy builders."""

import yaml

from shopfloor_operator.builders import config, network, rbac
from shopfloor_operator.builders.config import ProgramRelease
from shopfloor_operator.builders.workloads import bridge_workload, plc_workload
from shopfloor_operator.settings import OperatorSettings

from .conftest import SOURCE, bridge_manifest, plc_manifest


def test_role_names_only_this_plcs_objects(settings: OperatorSettings) -> None:
    role = rbac.role(plc_workload(plc_manifest(), settings))
    names = sorted(name for rule in role["rules"] for name in rule["resourceNames"])
    assert names == ["mixer-1", "mixer-1-retain", "mixer-1-runtime"]
    for rule in role["rules"]:
        assert "create" not in rule["verbs"] and "delete" not in rule["verbs"] and "*" not in rule["verbs"]
    binding = rbac.role_binding(plc_workload(plc_manifest(), settings))
    assert (
        binding["subjects"][0]["name"]
        == rbac.service_account(plc_workload(plc_manifest(), settings))["metadata"]["name"]
    )


def test_runtime_config_map_is_a_runnable_manifest(settings: OperatorSettings) -> None:
    plc = plc_manifest(cycleTime="20ms")
    release = ProgramRelease("sha256:" + "a" * 64, SOURCE, "Main")
    built = config.plc_config_map(plc_workload(plc, settings), plc, release, None)
    assert built["data"]["revision"] == release.revision
    document = yaml.safe_load(built["data"]["virtualplc.yaml"])
    assert document["kind"] == "VirtualPLC" and document["spec"]["cycleTime"] == "20ms"
    assert document["spec"]["program"] == {"source": SOURCE, "entrypoint": "Main", "sha256": release.revision}
    assert "last-known-good.yaml" not in built["data"]


def test_bridge_config_resolves_plc_ref_and_keeps_secrets_as_references(settings: OperatorSettings) -> None:
    bridge = bridge_manifest()
    built = config.bridge_config_map(bridge_workload(bridge, settings), bridge)
    document = yaml.safe_load(built["data"]["protocolbridge.yaml"])
    modbus = document["spec"]["sources"][0]["modbus"]
    assert "plcRef" not in modbus and modbus["endpoint"] == {"host": "mixer-1.line-1.svc", "port": 502}
    assert document["spec"]["sinks"]["mqtt"]["credentialsSecretRef"] == {"name": "broker-creds"}


def test_lease_and_retain_are_owned(settings: OperatorSettings) -> None:
    workload = plc_workload(plc_manifest(), settings)
    assert config.lease(workload)["metadata"]["name"] == "mixer-1"
    assert config.retain_config_map(workload)["metadata"]["ownerReferences"][0]["uid"] == "uid-1"


def test_service_exposes_502_and_metrics(settings: OperatorSettings) -> None:
    plc = plc_manifest(io={"opcua": {"enabled": True, "certificateSecretRef": {"name": "c"}}})
    ports = {
        p["name"]: (p["port"], p["targetPort"]) for p in network.service(plc_workload(plc, settings))["spec"]["ports"]
    }
    assert ports == {"modbus": (502, "modbus"), "opcua": (4840, "opcua"), "http": (8080, "http")}


def test_network_policy_allows_only_listed_clients(settings: OperatorSettings) -> None:
    plc = plc_manifest(allowedClients=[{"podSelector": {"matchLabels": {"role": "hmi"}}}])
    policy = network.network_policy(plc_workload(plc, settings), settings)
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    clients, operator = policy["spec"]["ingress"]
    assert {"podSelector": {"matchLabels": {"role": "hmi"}, "matchExpressions": []}} in clients["from"]
    assert {"podSelector": {"matchLabels": {"plc.shopfloor.io/mixer-1": "true"}}} in clients["from"]
    assert [p["port"] for p in clients["ports"]] == ["modbus"]
    assert operator["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert operator["from"][0]["podSelector"]["matchLabels"] == settings.operator_pod_labels


def test_release_store_recovers_both_programs_from_the_runtime_config_map(settings: OperatorSettings) -> None:
    from shopfloor_operator.releases import ReleaseStore

    plc = plc_manifest()
    deployed = ProgramRelease("sha256:" + "b" * 64, SOURCE + "\n(* new *)", "")
    good = ProgramRelease("sha256:" + "a" * 64, SOURCE, "Main")
    built = config.plc_config_map(plc_workload(plc, settings), plc, deployed, good)
    store = ReleaseStore()
    store.recover("mixer-1", built["data"])
    assert store.get(deployed.revision) == deployed and store.get(good.revision) == good


def test_release_store_keeps_a_release_while_some_plc_uses_it() -> None:
    from shopfloor_operator.releases import ReleaseStore

    old, new = (ProgramRelease(f"sha256:{c * 64}", f"{SOURCE}(* {c} *)", "") for c in "ab")
    store = ReleaseStore()
    for plc in ("mixer-1", "mixer-2"):  # a fleet on one program keeps it once
        store.remember(plc, old)
    assert len(store) == 1
    store.remember("mixer-1", new)
    store.use("mixer-1", [new.revision, old.revision])  # deployed and last known good
    store.use("mixer-2", [old.revision])
    assert len(store) == 2
    store.use("mixer-1", [new.revision, ""])  # promoted: the old one is no longer its last known good
    assert store.get(old.revision) == old  # mixer-2 still runs it
    store.forget("mixer-2")
    assert store.get(old.revision) is None and store.get(new.revision) == new
    store.forget("mixer-1")
    assert len(store) == 0
