"""The real node's stand-in for cluster DNS, without a network: names, stable addresses and the answers."""

from __future__ import annotations

from pathlib import Path

from dnslib import QTYPE, RCODE, DNSRecord

from shopfloor_localsite.node_services import AddressBook, NodeServices, canonical_name, loopback_alias


def test_cluster_names_are_reduced_to_the_endpoint_maps_form() -> None:
    assert canonical_name("tank-io.line-1.svc.cluster.local.") == "tank-io.line-1"
    assert canonical_name("Broker.Plant.svc") == "broker.plant"
    assert canonical_name("kubernetes.default.svc.cluster.local") == "kubernetes.default"


def test_a_name_keeps_its_address_and_fixed_names_keep_theirs() -> None:
    book = AddressBook("10.96.1.0/24", {"kubernetes.default": "10.96.0.1"})
    first, second = book.address("tank-io.line-1"), book.address("broker.plant")
    assert (first, second) == ("10.96.1.1", "10.96.1.2")
    assert book.address("tank-io.line-1") == first
    assert book.lookup("kubernetes.default") == "10.96.0.1"
    assert book.lookup("unknown.ns") is None


def services(tmp_path: Path) -> NodeServices:
    node = NodeServices("/run/netns/none", tmp_path / "map", "10.96.0.10", "10.96.1.0/24", "10.96.0.1")
    node.targets = {("tank-io.line-1", 502): ("127.0.0.1", 40001)}
    node.book.address("tank-io.line-1")
    return node


def test_known_names_get_an_a_record_under_every_search_form(tmp_path: Path) -> None:
    node = services(tmp_path)
    for query in ("tank-io.line-1.svc.cluster.local", "tank-io.line-1", "kubernetes.default.svc.cluster.local"):
        reply = node.answer(DNSRecord.question(query).pack())
        assert reply is not None
        parsed = DNSRecord.parse(reply)
        assert parsed.header.rcode == RCODE.NOERROR and parsed.rr, query
        assert str(parsed.rr[0].rdata) in ("10.96.1.1", "10.96.0.1")


def test_unknown_names_are_nxdomain_aaaa_is_empty_and_garbage_is_dropped(tmp_path: Path) -> None:
    node = services(tmp_path)
    reply = node.answer(DNSRecord.question("tank-io.line-1.line-1.svc.cluster.local").pack())
    assert reply is not None and DNSRecord.parse(reply).header.rcode == RCODE.NXDOMAIN
    reply = node.answer(DNSRecord.question("tank-io.line-1", "AAAA").pack())
    assert reply is not None
    parsed = DNSRecord.parse(reply)
    assert parsed.header.rcode == RCODE.NOERROR and not parsed.rr and parsed.q.qtype == QTYPE.AAAA
    assert node.answer(b"\x00\x01garbage") is None


def test_a_pods_relayed_connections_come_from_a_loopback_alias_of_its_address() -> None:
    assert loopback_alias("10.250.1.5") == "127.250.1.5"
