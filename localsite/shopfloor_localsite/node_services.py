"""What cluster DNS and kube-proxy are to a real node's pods, answered from the site's endpoint map.

Runs in the host's namespace (see netns_forward.py for how its sockets end up inside the node's). It reads the
node's endpoint map file (`name:port=host:port`, the format of shopfloor_inpod.endpoints) every half second and:
- gives every name a stable address of the node's service range (the `kubernetes.default` name gets the
  `kubernetes` Service's address, the one the kubelet hands pods as KUBERNETES_SERVICE_HOST), answers DNS queries
  for it at the cluster DNS address, and relays each `address:port` to the host address the map names;
- relays the kubelet's own API address (127.0.0.1:6443 inside the namespace) to where `kubernetes.default:443` goes.
The map changes as workloads move, the uplink is cut or healed: a connection goes where the map said when it opened.

dnslib parses and builds the DNS messages (BSD licence); the answers are the site's own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import socket
import sys
from pathlib import Path
from typing import cast

from dnslib import QTYPE, RCODE, RR, A, DNSRecord

from shopfloor_inpod.endpoints import parse_endpoint_map
from shopfloor_localsite.netns_forward import listener, network_namespace, serve_relay

API_NAME = ("kubernetes.default", 443)
CLUSTER_DOMAINS = (".svc.cluster.local", ".cluster.local", ".svc")
DNS_TTL = 5
RELOAD_SECONDS = 0.5


def loopback_alias(pod_ip: str) -> str:
    """The loopback address a pod's relayed connections come from (10.250.1.5 -> 127.250.1.5): a plant device on the
    host's loopback sees which pod writes to it, as it would see the pod's address on a plant network."""
    return "127." + ".".join(pod_ip.split(".")[1:])


def canonical_name(query: str) -> str:
    """`tank-io.line-1.svc.cluster.local.` -> `tank-io.line-1`, the form the endpoint map uses."""
    name = query.lower().rstrip(".")
    for suffix in CLUSTER_DOMAINS:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


class AddressBook:
    """Stable addresses for names: a name keeps its address for the life of the process."""

    def __init__(self, network: str, fixed: dict[str, str]) -> None:
        self._free = (str(host) for host in ipaddress.ip_network(network).hosts())
        self.addresses: dict[str, str] = dict(fixed)

    def address(self, name: str) -> str:
        if name not in self.addresses:
            taken = set(self.addresses.values())
            self.addresses[name] = next(a for a in self._free if a not in taken)
        return self.addresses[name]

    def lookup(self, name: str) -> str | None:
        return self.addresses.get(name)


class NodeServices:
    def __init__(self, netns: str, map_file: Path, dns_address: str, network: str, api_address: str) -> None:
        self.netns = netns
        self.map_file = map_file
        self.dns_address = dns_address
        self.book = AddressBook(network, {API_NAME[0]: api_address})
        self.targets: dict[tuple[str, int], tuple[str, int]] = {}
        self.servers: dict[tuple[str, int], asyncio.Server] = {}

    def _read_map(self) -> dict[tuple[str, int], tuple[str, int]]:
        try:
            return parse_endpoint_map(self.map_file.read_text())
        except (OSError, ValueError):
            return self.targets  # keep the last good map while it is being rewritten

    async def _listen(self, key: tuple[str, int], host: str, port: int) -> None:
        with network_namespace(self.netns):
            sock = listener(host, port)
        self.servers[key] = await serve_relay(
            sock, False, lambda: self.targets.get(key), self.netns, source=loopback_alias
        )

    async def reload(self) -> None:
        self.targets = self._read_map()
        for key in list(self.servers):
            if key not in self.targets and key[0] != "kubelet-api":
                self.servers.pop(key).close()
        for name, port in self.targets:
            if (name, port) not in self.servers:
                with contextlib.suppress(OSError):  # a port taken twice in the map: the first one keeps it
                    await self._listen((name, port), self.book.address(name), port)

    def answer(self, packet: bytes) -> bytes | None:
        try:
            request = DNSRecord.parse(packet)
        except Exception:  # dnslib raises several types for malformed packets; none may stop the server
            return None
        reply = request.reply()
        name = canonical_name(str(request.q.qname))
        address = self.book.lookup(name) if any(n == name for n, _ in self.targets) or name == API_NAME[0] else None
        if address is None:
            reply.header.rcode = RCODE.NXDOMAIN
        elif request.q.qtype in (QTYPE.A, QTYPE.ANY):
            reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(address), ttl=DNS_TTL))
        return bytes(reply.pack())

    async def run(self, kubelet_api: tuple[str, int]) -> None:
        await self.reload()
        with network_namespace(self.netns):
            kubelet_sock = listener(*kubelet_api)
            dns_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            dns_sock.bind((self.dns_address, 53))
        self.servers[("kubelet-api", kubelet_api[1])] = await serve_relay(
            kubelet_sock, False, lambda: self.targets.get(API_NAME), self.netns
        )
        loop = asyncio.get_running_loop()
        services = self

        class Dns(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = cast(asyncio.DatagramTransport, transport)

            def datagram_received(self, data: bytes, addr: tuple[str | int, int]) -> None:
                reply = services.answer(data)
                if reply is not None:
                    self.transport.sendto(reply, addr)

        await loop.create_datagram_endpoint(Dns, sock=dns_sock)
        print("ready", flush=True)
        while True:
            await asyncio.sleep(RELOAD_SECONDS)
            await self.reload()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--netns", required=True)
    parser.add_argument("--map", required=True, type=Path, help="the node's endpoint map file")
    parser.add_argument("--dns", required=True, help="cluster DNS address inside the namespace")
    parser.add_argument("--network", required=True, help="the range names get their addresses from")
    parser.add_argument("--api-address", required=True, help="the `kubernetes` Service's address")
    parser.add_argument("--kubelet-api", default="127.0.0.1:6443", help="the kubelet's API address in the namespace")
    args = parser.parse_args(argv)
    host, _, port = args.kubelet_api.rpartition(":")
    services = NodeServices(args.netns, args.map, args.dns, args.network, args.api_address)
    try:
        asyncio.run(services.run((host, int(port))))
    except KeyboardInterrupt:
        return 0
    except OSError as error:
        print(f"node-services: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
