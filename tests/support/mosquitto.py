"""The real Mosquitto broker for tests and benchmarks (see shopfloor_localsite.broker), and free loopback ports."""

from __future__ import annotations

from pathlib import Path

from shopfloor_localsite.broker import MOSQUITTO, Mosquitto
from shopfloor_localsite.pki import loopback_server_pki
from shopfloor_localsite.processes import free_port


def make_test_pki(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1, ::1 and localhost: (ca_file, cert_file, key_file)."""
    return loopback_server_pki(directory, "shopfloor test")


__all__ = ["MOSQUITTO", "Mosquitto", "free_port", "make_test_pki"]
