"""TCP forwarding across network namespaces, so nothing in the host's namespace ever routes to a pod address.

A real node's pod network lives in a network namespace the site creates. Its kubelet and pods still need the API
server (which listens on the host's loopback), and a test needs to reach a pod's port without a route to the pod
network. One process does both: a socket belongs to the namespace its creator was in when it was made, so this
process makes each listening socket in the namespace its rule names and each outgoing connection in the other one.

    python -m shopfloor_localsite.netns_forward --netns /run/netns/X \
        --into 127.0.0.1:6443=127.0.0.1:34567      # listen inside X, connect on the host
        --out 127.0.0.1:40001=10.250.1.5:502        # listen on the host, connect inside X

Prints "ready" on stdout once every listener is bound.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import os
import socket
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

CLONE_NEWNET = 0x40000000
COPY_CHUNK = 65536


@dataclass(frozen=True)
class ForwardRule:
    listen_host: str
    listen_port: int
    target_host: str
    target_port: int
    listen_inside: bool  # True: listen in the node's namespace, connect from the host's

    @classmethod
    def parse(cls, value: str, listen_inside: bool) -> ForwardRule:
        listen, _, target = value.partition("=")
        listen_host, _, listen_port = listen.rpartition(":")
        target_host, _, target_port = target.rpartition(":")
        if not (listen_host and listen_port.isdigit() and target_host and target_port.isdigit()):
            raise ValueError(f"forward rule {value!r}: expected LISTEN_HOST:PORT=TARGET_HOST:PORT")
        return cls(listen_host, int(listen_port), target_host, int(target_port), listen_inside)


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), f"setns: {os.strerror(ctypes.get_errno())}")


@contextlib.contextmanager
def network_namespace(path: str) -> Iterator[None]:
    """Run the body with this thread in the network namespace at `path`, then return to the one it was in."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(path, os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(target)
        os.close(own)


def listener(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _connect_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    return sock


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(COPY_CHUNK):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            if writer.can_write_eof():
                writer.write_eof()


Target = Callable[[], "tuple[str, int] | None"]


async def serve_relay(
    sock: socket.socket,
    connect_inside: bool,
    target: Target,
    netns: str,
    source: Callable[[str], str] | None = None,
) -> asyncio.Server:
    """Relay every connection accepted on `sock` to `target()` (asked at each connect, so it can move),
    dialled from inside the namespace at `netns` or from this process's own. No target: the connection is closed.
    `source` maps the client's address to the local address the relayed connection is made from, so the peer
    still sees who is talking."""

    async def relay(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        address = target()
        if address is None:
            client_writer.close()
            return
        host, port = address
        if connect_inside:
            with network_namespace(netns):
                outgoing = _connect_socket(host, port)
        else:
            outgoing = _connect_socket(host, port)
            if source is not None:
                with contextlib.suppress(OSError):
                    outgoing.bind((source(client_writer.get_extra_info("peername")[0]), 0))
        try:
            await asyncio.get_running_loop().sock_connect(outgoing, (host, port))
            target_reader, target_writer = await asyncio.open_connection(sock=outgoing)
        except OSError:
            outgoing.close()
            client_writer.close()
            return
        await asyncio.gather(_pipe(client_reader, target_writer), _pipe(target_reader, client_writer))
        for writer in (client_writer, target_writer):
            writer.close()

    return await asyncio.start_server(relay, sock=sock)


def _fixed(host: str, port: int) -> Target:
    return lambda: (host, port)


def bind_listeners(rules: list[ForwardRule], netns: str) -> list[socket.socket]:
    """Bind every rule's listener in its namespace (before any thread starts: setns is per thread)."""
    listeners = []
    for rule in rules:
        if rule.listen_inside:
            with network_namespace(netns):
                listeners.append(listener(rule.listen_host, rule.listen_port))
        else:
            listeners.append(listener(rule.listen_host, rule.listen_port))
    return listeners


async def forward(rules: list[ForwardRule], listeners: list[socket.socket], netns: str) -> None:
    servers = [
        await serve_relay(sock, not rule.listen_inside, _fixed(rule.target_host, rule.target_port), netns)
        for rule, sock in zip(rules, listeners, strict=True)
    ]
    print("ready", flush=True)
    await asyncio.gather(*(server.serve_forever() for server in servers))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--netns", required=True, help="path of the node's network namespace (/run/netns/NAME)")
    parser.add_argument("--into", action="append", default=[], help="listen inside the namespace, connect outside")
    parser.add_argument("--out", action="append", default=[], help="listen outside the namespace, connect inside")
    args = parser.parse_args(argv)
    try:
        rules = [ForwardRule.parse(v, True) for v in args.into] + [ForwardRule.parse(v, False) for v in args.out]
        listeners = bind_listeners(rules, args.netns)
    except (OSError, ValueError) as error:
        print(f"netns-forward: {error}", file=sys.stderr)
        return 1
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(forward(rules, listeners, args.netns))
    return 0


if __name__ == "__main__":
    sys.exit(main())
