"""First contact with peering: which objects kopf needs, and what the operator does when they are missing."""

from __future__ import annotations

import json

from shopfloor_operator.peering import Found, PeeringObject, decide, wanted
from shopfloor_operator.settings import OperatorSettings

CLUSTER = OperatorSettings()
NAMESPACED = OperatorSettings(namespaces=["line-1", "line-2"], peering_name="plant")


def test_the_objects_kopf_waits_for() -> None:
    assert wanted(OperatorSettings(standalone=True)) == []
    assert wanted(CLUSTER) == [PeeringObject("ClusterKopfPeering", "clusterkopfpeerings", "shopfloor")]
    assert wanted(NAMESPACED) == [
        PeeringObject("KopfPeering", "kopfpeerings", "plant", "line-1"),
        PeeringObject("KopfPeering", "kopfpeerings", "plant", "line-2"),
    ]


def test_standalone_needs_nothing() -> None:
    assert decide(OperatorSettings(standalone=True), {}).done


def test_present_everywhere_is_done() -> None:
    assert decide(NAMESPACED, dict.fromkeys(wanted(NAMESPACED), Found.PRESENT)).done


def test_missing_objects_are_created_first() -> None:
    line_1, line_2 = wanted(NAMESPACED)
    decision = decide(NAMESPACED, {line_1: Found.PRESENT, line_2: Found.ABSENT})
    assert decision.create == (line_2,) and not decision.error and not decision.done


def test_forbidden_names_the_object_the_command_and_standalone() -> None:
    (peering,) = wanted(CLUSTER)
    decision = decide(CLUSTER, {peering: Found.FORBIDDEN})
    assert not decision.create and not decision.done
    assert 'ClusterKopfPeering "shopfloor" (cluster-wide)' in decision.error
    assert "no `create` on clusterkopfpeerings.kopf.dev" in decision.error
    assert peering.kubectl() in decision.error
    assert "--set replicas=2" in decision.error  # the chart renders the ClusterKopfPeering with replicas > 1
    assert "--standalone true" in decision.error and "SHOPFLOOR_STANDALONE=true" in decision.error


def test_the_command_applies_exactly_the_object() -> None:
    obj = PeeringObject("KopfPeering", "kopfpeerings", "plant", "line-1")
    document = json.loads(obj.kubectl().removeprefix("echo '").split("' |", 1)[0])
    assert document == {
        "apiVersion": "kopf.dev/v1",
        "kind": "KopfPeering",
        "metadata": {"name": "plant", "namespace": "line-1"},
    }
    assert obj.kubectl().endswith("| kubectl apply -f -")


def test_missing_crd_says_install_it_and_names_every_namespace() -> None:
    decision = decide(NAMESPACED, dict.fromkeys(wanted(NAMESPACED), Found.NO_CRD))
    assert "kopfpeerings.kopf.dev is not installed" in decision.error
    assert "kubectl apply -f crds/kopf-peering.yaml" in decision.error
    assert 'KopfPeering "plant" in namespace "line-1"' in decision.error
    assert 'KopfPeering "plant" in namespace "line-2"' in decision.error
    assert '"namespace": "line-2"' in decision.error
    assert "--set replicas" not in decision.error  # the chart renders no KopfPeering
    assert "--standalone true" in decision.error


def test_one_message_for_a_mix_of_reasons() -> None:
    line_1, line_2 = wanted(NAMESPACED)
    decision = decide(NAMESPACED, {line_1: Found.NO_CRD, line_2: Found.FORBIDDEN})
    assert "not installed" in decision.error and "may not create it" in decision.error
    assert line_1.kubectl() in decision.error and line_2.kubectl() in decision.error


def test_unknown_is_a_warning_not_an_instruction() -> None:
    (peering,) = wanted(CLUSTER)
    decision = decide(CLUSTER, {}, {peering: "ConnectionRefusedError: connection refused"})
    assert not decision.error and not decision.done and not decision.create
    assert "connection refused" in decision.warning
