"""The Pod builder: placement, QoS, security, probes."""

from shopfloor_operator.builders.pod import SPEC_HASH_ANNOTATION, cpu_quantity, pod
from shopfloor_operator.builders.workloads import bridge_workload, plc_workload
from shopfloor_operator.settings import OperatorSettings

from .conftest import bridge_manifest, plc_manifest

RT_LABEL = "feature.node.kubernetes.io/kernel-config.PREEMPT_RT"


def container(manifest: dict) -> dict:
    return manifest["spec"]["containers"][0]


def test_realtime_required_selects_and_tolerates(settings: OperatorSettings) -> None:
    built = pod(plc_workload(plc_manifest(), settings), settings, 0)
    spec = built["spec"]
    assert spec["nodeSelector"] == {RT_LABEL: "true"}
    assert {"key": "shopfloor.io/realtime", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert "affinity" not in spec


def test_realtime_preferred_uses_preferred_affinity(settings: OperatorSettings) -> None:
    spec = pod(plc_workload(plc_manifest(placement={"realtime": "Preferred"}), settings), settings, 0)["spec"]
    assert "nodeSelector" not in spec
    preferred = spec["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert preferred[0]["preference"]["matchExpressions"] == [{"key": RT_LABEL, "operator": "In", "values": ["true"]}]
    assert spec["tolerations"][0]["key"] == "shopfloor.io/realtime"


def test_realtime_none_and_user_selector(settings: OperatorSettings) -> None:
    plc = plc_manifest(placement={"realtime": "None", "nodeSelector": {"zone": "a"}, "tolerations": [{"key": "k"}]})
    spec = pod(plc_workload(plc, settings), settings, 0)["spec"]
    assert spec["nodeSelector"] == {"zone": "a"}
    assert [t["key"] for t in spec["tolerations"]] == ["k"]


def test_node_name_pins_through_the_scheduler(settings: OperatorSettings) -> None:
    spec = pod(plc_workload(plc_manifest(placement={"nodeName": "edge-rt-2"}), settings), settings, 0)["spec"]
    assert "nodeName" not in spec
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["edge-rt-2"]}]}]


def test_guaranteed_qos_whole_cpus(settings: OperatorSettings) -> None:
    resources = container(pod(plc_workload(plc_manifest(resources={"cpus": 2}), settings), settings, 0))["resources"]
    assert resources["requests"] == resources["limits"] == {"cpu": "2", "memory": "256Mi"}
    assert cpu_quantity(0.5) == "500m"


def test_restricted_security_without_capabilities_even_with_priority(settings: OperatorSettings) -> None:
    plain = pod(plc_workload(plc_manifest(), settings), settings, 0)
    security = container(plain)["securityContext"]
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    assert plain["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert plain["spec"]["securityContext"]["runAsNonRoot"] is True
    # Real time is granted by the node's RuntimeClass, not by capabilities a non-root process would lose at exec.
    realtime = pod(plc_workload(plc_manifest(realtimePriority=80), settings), settings, 0)
    assert container(realtime)["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_http_probes_ports_and_grace(settings: OperatorSettings) -> None:
    built = pod(plc_workload(plc_manifest(), settings), settings, 0)
    main = container(built)
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert "httpGet" in main[probe] and "exec" not in main[probe]
    assert main["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {p["name"]: p["containerPort"] for p in main["ports"]} == {"modbus": 5020, "http": 8080}
    assert built["spec"]["terminationGracePeriodSeconds"] == settings.termination_grace_seconds
    env = {e["name"]: e for e in main["env"]}
    assert env["SHOPFLOOR_NAME"]["value"] == "mixer-1"
    assert env["SHOPFLOOR_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


def test_owner_name_and_hash(settings: OperatorSettings) -> None:
    workload = plc_workload(plc_manifest(), settings)
    first, again, second = pod(workload, settings, 0), pod(workload, settings, 0), pod(workload, settings, 1)
    assert first == again, "builders are pure"
    assert first["metadata"]["name"] != second["metadata"]["name"]
    assert first["metadata"]["name"].startswith("mixer-1-")
    owner = first["metadata"]["ownerReferences"][0]
    assert owner["kind"] == "VirtualPLC" and owner["uid"] == "uid-1" and owner["controller"] is True
    changed = pod(plc_workload(plc_manifest(resources={"cpus": 2}), settings), settings, 0)
    assert (
        changed["metadata"]["annotations"][SPEC_HASH_ANNOTATION]
        != first["metadata"]["annotations"][SPEC_HASH_ANNOTATION]
    )


def test_settings_change_the_realtime_selector() -> None:
    custom = OperatorSettings(realtime_node_selector={"rt": "yes"}, realtime_toleration_key="rt")
    spec = pod(plc_workload(plc_manifest(), custom), custom, 0)["spec"]
    assert spec["nodeSelector"] == {"rt": "yes"} and spec["tolerations"][0]["key"] == "rt"


def test_bridge_pod_mounts_secrets_and_labels_its_plcs(settings: OperatorSettings) -> None:
    built = pod(bridge_workload(bridge_manifest(), settings), settings, 0)
    assert built["metadata"]["labels"]["plc.shopfloor.io/mixer-1"] == "true"
    assert "nodeSelector" not in built["spec"] and "tolerations" not in built["spec"]
    volumes = {v["name"]: v for v in built["spec"]["volumes"]}
    assert volumes["secret-broker-creds"]["secret"]["secretName"] == "broker-creds"
    assert container(built)["resources"]["limits"]["cpu"] == "500m"
    assert volumes["state"]["emptyDir"]["sizeLimit"] == str(80 * 2**20), "64Mi buffer + room for its index"
    env = {e["name"]: e.get("value") for e in container(built)["env"]}
    mounts = {m["name"]: m["mountPath"] for m in container(built)["volumeMounts"]}
    assert env["SHOPFLOOR_BRIDGE_STATE_DIR"] == mounts["state"]


def test_plc_pod_has_no_state_volume(settings: OperatorSettings) -> None:
    built = pod(plc_workload(plc_manifest(), settings), settings, 0)
    assert [v["name"] for v in built["spec"]["volumes"]] == ["tmp"]
