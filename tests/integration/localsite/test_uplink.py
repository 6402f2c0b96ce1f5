"""A node's uplink behaves like a switch that dies and comes back: bytes are held, not refused, and delivered late.

Against a local TCP peer first, then against the real kube-apiserver (TLS passes through untouched)."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from shopfloor_localsite.controlplane import LocalControlPlane
from shopfloor_localsite.site.uplink import Uplink, UplinkState
from tests.support.waiting import async_wait_for, wait_for

TIMEOUT = 5.0


class Peer:
    """A central TCP peer that records what it receives per connection and echoes it back."""

    def __init__(self) -> None:
        self.received: list[bytearray] = []
        self.closed: list[bool] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> Peer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = len(self.received)
        self.received.append(bytearray())
        self.closed.append(False)
        self.writers.append(writer)
        while data := await reader.read(65536):
            self.received[index] += data
            writer.write(data)
            await writer.drain()
        self.closed[index] = True
        writer.close()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.close()


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    server = await Peer().start()
    yield server
    await server.stop()


@pytest.fixture
def uplink_events() -> list[str]:
    return []


@pytest.fixture
async def uplink(peer: Peer, uplink_events: list[str]) -> AsyncIterator[Uplink]:
    link = Uplink(
        "edge-t", {"peer": ("127.0.0.1", peer.port)}, max_held_bytes=256 * 1024, on_event=uplink_events.append
    )
    await asyncio.to_thread(link.start)
    yield link
    await asyncio.to_thread(link.stop)


async def eventually(condition: Callable[[], bool], what: str) -> None:
    async def holds() -> bool:
        return condition()

    await async_wait_for(holds, timeout=TIMEOUT, what=what)


async def read_exactly(reader: asyncio.StreamReader, count: int) -> bytes:
    return await asyncio.wait_for(reader.readexactly(count), TIMEOUT)


async def test_bytes_are_held_while_cut_and_delivered_in_order_after_the_heal(uplink: Uplink, peer: Peer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", uplink.port("peer"))
    writer.write(b"hello ")
    assert await read_exactly(reader, 6) == b"hello "

    await asyncio.to_thread(uplink.cut)
    assert uplink.state is UplinkState.CUT
    for part in (b"one ", b"two ", b"three"):
        writer.write(part)
    await writer.drain()
    # A dead switch, not a refused port: the connection stays open and the client's own timeout fires.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(100), 0.5)
    await eventually(lambda: uplink.held_bytes() == 13, "13 bytes held")
    assert bytes(peer.received[0]) == b"hello "
    # The central side's bytes are held too.
    peer.writers[0].write(b"<from the centre>")
    await peer.writers[0].drain()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(100), 0.3)

    await asyncio.to_thread(uplink.heal)
    assert await read_exactly(reader, len(b"<from the centre>one two three")) == b"<from the centre>one two three"
    assert bytes(peer.received[0]) == b"hello one two three"
    writer.close()


async def test_a_connection_opened_and_closed_during_the_cut_reaches_the_peer_after_the_heal(
    uplink: Uplink, peer: Peer
) -> None:
    await asyncio.to_thread(uplink.cut)
    reader, writer = await asyncio.open_connection("127.0.0.1", uplink.port("peer"))  # accepted
    writer.write(b"late request")
    writer.write_eof()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(100), 0.5)
    assert peer.received == [], "nothing crosses a cut uplink, not even the connection"

    await asyncio.to_thread(uplink.heal)
    assert await read_exactly(reader, 12) == b"late request"
    await eventually(lambda: peer.closed == [True], "the close delivered")
    assert bytes(peer.received[0]) == b"late request"
    assert await asyncio.wait_for(reader.read(100), TIMEOUT) == b"", "the peer's close comes back"
    writer.close()


async def test_a_connection_holding_too_much_is_dropped_and_reported(
    uplink: Uplink, peer: Peer, uplink_events: list[str]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", uplink.port("peer"))
    writer.write(b"x")
    assert await read_exactly(reader, 1) == b"x"
    await asyncio.to_thread(uplink.cut)
    chunk = b"y" * 65536
    dropped = False
    try:
        for _ in range(64):  # 4 MiB, far beyond the bound of 256 KiB
            writer.write(chunk)
            await asyncio.wait_for(writer.drain(), TIMEOUT)
        dropped = await asyncio.wait_for(reader.read(1), TIMEOUT) == b""
    except ConnectionError:
        dropped = True
    assert dropped, "the uplink should reset a connection that holds more than its bound"
    await eventually(lambda: any("dropped a connection to peer" in e for e in uplink_events), "the drop reported")
    await asyncio.to_thread(uplink.heal)
    assert bytes(peer.received[0]) == b"x", "nothing of a dropped connection is delivered"


async def test_a_target_can_be_replaced_and_keeps_its_port(uplink: Uplink, peer: Peer) -> None:
    other = await Peer().start()
    try:
        port = uplink.port("peer")
        assert await asyncio.to_thread(uplink.set_target, "peer", ("127.0.0.1", other.port)) == port
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"to the new one")
        assert await read_exactly(reader, 14) == b"to the new one"
        assert bytes(other.received[0]) == b"to the new one" and peer.received == []
        writer.close()
    finally:
        await other.stop()


# -- the real API server through an uplink ---------------------------------------------------------------------


@pytest.fixture
def api_uplink(control_plane: LocalControlPlane | None) -> Iterator[Uplink]:
    if control_plane is None:
        pytest.skip("needs the local control plane")
    link = Uplink("edge-api", {"kube-apiserver": ("127.0.0.1", control_plane.api_port)}).start()
    yield link
    link.stop()


def kubeconfig_through(control_plane: LocalControlPlane, uplink: Uplink, path: Path) -> dict[str, Any]:
    document = yaml.safe_load(control_plane.kubeconfig.read_text())
    document["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{uplink.port('kube-apiserver')}"
    path.write_text(yaml.safe_dump(document))
    return dict(document)


def test_an_api_client_times_out_while_cut_and_works_after_the_heal(
    control_plane: LocalControlPlane, api_uplink: Uplink, tmp_path: Path
) -> None:
    kubeconfig_through(control_plane, api_uplink, tmp_path / "kubeconfig")
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(tmp_path / "kubeconfig"), client_configuration=configuration)
    configuration.retries = False
    with client.ApiClient(configuration) as api:
        core = client.CoreV1Api(api)
        assert core.list_namespace(_request_timeout=TIMEOUT).items  # TLS through the uplink: 127.0.0.1 verified
        api_uplink.cut()
        with pytest.raises(urllib3.exceptions.HTTPError):
            core.list_namespace(_request_timeout=1)
        api_uplink.heal()
        assert core.list_namespace(_request_timeout=TIMEOUT).items


async def test_a_request_sent_during_the_cut_reaches_the_api_server_after_the_heal(
    control_plane: LocalControlPlane, api_uplink: Uplink, kube_api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    """A Lease renewal stuck in a dead switch is the case a lock must survive: the request is applied late."""
    document = kubeconfig_through(control_plane, api_uplink, tmp_path / "kubeconfig")
    user = document["users"][0]["user"]
    (tmp_path / "ca.crt").write_bytes(
        base64.b64decode(document["clusters"][0]["cluster"]["certificate-authority-data"])
    )
    (tmp_path / "client.crt").write_bytes(base64.b64decode(user["client-certificate-data"]))
    (tmp_path / "client.key").write_bytes(base64.b64decode(user["client-key-data"]))
    context = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
    context.load_cert_chain(str(tmp_path / "client.crt"), str(tmp_path / "client.key"))
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", api_uplink.port("kube-apiserver"), ssl=context), TIMEOUT
    )

    async def send(method: str, path: str, body: bytes = b"") -> None:
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        await writer.drain()

    async def response(timeout: float) -> tuple[int, bytes]:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        status = int(head.split(b" ", 2)[1])
        length = next(
            int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
        )
        return status, await asyncio.wait_for(reader.readexactly(length), timeout)

    await send("GET", "/readyz")
    assert (await response(TIMEOUT))[0] == 200

    name = f"late-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(kube_api)
    await asyncio.to_thread(api_uplink.cut)
    body = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "1"}})
    await send("POST", f"/api/v1/namespaces/{namespace}/configmaps", body.encode())
    with pytest.raises(TimeoutError):
        await response(1.0)  # the client's timeout fires: the switch is dead
    with pytest.raises(ApiException) as missing:
        await asyncio.to_thread(core.read_namespaced_config_map, name, namespace)
    assert missing.value.status == 404, "nothing reached the API server during the cut"

    await asyncio.to_thread(api_uplink.heal)

    def created() -> bool:
        try:
            return bool(core.read_namespaced_config_map(name, namespace).data == {"a": "1"})
        except ApiException as error:
            if error.status == 404:
                return False
            raise

    await asyncio.to_thread(wait_for, created, TIMEOUT * 2, 0.1, "the ConfigMap created after the heal")
    status, _ = await response(TIMEOUT)
    assert status == 201, "the late answer reaches the client too"
    writer.close()
