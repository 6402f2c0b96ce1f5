"""Where a network peer really is.

In a pod, `host:port` is used as written (cluster DNS resolves Service names). On the local edge site, pods have
no network namespace and no cluster DNS, so the site publishes a map file (SHOPFLOOR_ENDPOINT_MAP_FILE) from the
names a manifest uses (`mixer-1.line-1:502`, `tank-io.line-1:502`, `broker.plant:1883`) to loopback listeners, and
rewrites it when a workload moves. It is read at every connect, the way a resolver would be asked.

File format: one `name:port=host:port` entry per line; `#` starts a comment.
"""

from __future__ import annotations

import os
from pathlib import Path

ENDPOINT_MAP_ENV = "SHOPFLOOR_ENDPOINT_MAP_FILE"
CLUSTER_SUFFIXES = (".svc.cluster.local", ".svc")


def parse_endpoint_map(text: str) -> dict[tuple[str, int], tuple[str, int]]:
    entries: dict[tuple[str, int], tuple[str, int]] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            name, target = (part.strip() for part in line.split("=", 1))
            entries[_split(name)] = _split(target)
        except ValueError as error:
            raise ValueError(f"endpoint map line {number}: {raw.strip()!r}: expected name:port=host:port") from error
    return entries


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(address)
    return host.strip("[]").lower(), int(port)


def _canonical(host: str) -> str:
    host = host.lower().rstrip(".")
    for suffix in CLUSTER_SUFFIXES:
        if host.endswith(suffix):
            return host[: -len(suffix)]
    return host


def resolve(host: str, port: int, map_file: str | None = None) -> tuple[str, int]:
    """The address to connect to for `host:port` (unchanged unless the site maps it)."""
    path = map_file if map_file is not None else os.environ.get(ENDPOINT_MAP_ENV)
    if not path:
        return host, port
    try:
        entries = parse_endpoint_map(Path(path).read_text())
    except FileNotFoundError:
        return host, port
    return entries.get((_canonical(host), port), (host, port))


def format_endpoint_map(entries: dict[tuple[str, int], tuple[str, int]]) -> str:
    lines = [f"{name}:{port}={host}:{target}" for (name, port), (host, target) in sorted(entries.items())]
    return "\n".join(["# written by the local edge site: service name -> loopback listener", *lines]) + "\n"
