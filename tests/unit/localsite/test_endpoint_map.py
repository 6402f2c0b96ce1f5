"""The site's endpoint map: how workloads on the local site find Services by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from shopfloor_inpod.endpoints import format_endpoint_map, parse_endpoint_map, resolve


def test_round_trip_and_cluster_suffixes(tmp_path: Path) -> None:
    entries = {("mixer-1.line-1", 502): ("127.0.0.1", 41000), ("broker.plant", 1883): ("127.0.0.1", 41001)}
    path = tmp_path / "endpoints"
    path.write_text(format_endpoint_map(entries))
    assert parse_endpoint_map(path.read_text()) == entries
    assert resolve("mixer-1.line-1", 502, str(path)) == ("127.0.0.1", 41000)
    assert resolve("Mixer-1.line-1.svc.cluster.local.", 502, str(path)) == ("127.0.0.1", 41000)
    assert resolve("mixer-1.line-1.svc", 502, str(path)) == ("127.0.0.1", 41000)
    assert resolve("mixer-1.line-1", 503, str(path)) == ("mixer-1.line-1", 503)


def test_without_a_map_addresses_are_used_as_written(tmp_path: Path) -> None:
    assert resolve("plc.example", 502, "") == ("plc.example", 502)
    assert resolve("plc.example", 502, str(tmp_path / "missing")) == ("plc.example", 502)


def test_a_bad_line_is_named() -> None:
    with pytest.raises(ValueError, match="endpoint map line 2"):
        parse_endpoint_map("a:1=127.0.0.1:2\nnonsense\n")
