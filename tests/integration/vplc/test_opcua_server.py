"""The OPC UA server over the scan's process image, used by a real asyncua client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from asyncua import Client, ua
from asyncua.crypto import security_policies
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from shopfloor_vplc.image import PlcState, Snapshot, WriteQueue
from shopfloor_vplc.opcua_server import NAMESPACE_URI, OpcUaConfig, OpcUaServer
from tests.support.mosquitto import free_port
from tests.support.waiting import async_wait_for

# A hang fails this test with a traceback instead of stalling the suite.
pytestmark = pytest.mark.timeout(60)

VARIABLES = [("Running", "BOOL"), ("Level", "REAL"), ("Count", "DINT"), ("Setpoint", "INT"), ("Name", "STRING")]


class Image:
    def __init__(self) -> None:
        self.writes = WriteQueue()
        self.snapshot = Snapshot.of(
            1, {"Running": True, "Level": 1.5, "Count": 7, "Setpoint": 3, "Name": "mixer"}, 0, PlcState.RUNNING, "r"
        )

    def publish(self, **changes: object) -> None:
        values = {**self.snapshot.values, **changes}
        self.snapshot = Snapshot.of(self.snapshot.seq + 1, values, 0, PlcState.RUNNING, "r")


@pytest.fixture
async def open_server() -> AsyncIterator[tuple[Image, OpcUaServer]]:
    image = Image()
    config = OpcUaConfig(
        host="127.0.0.1",
        port=free_port(),
        program="Main",
        variables=VARIABLES,
        writable=["setpoint"],
        security_policies=["None"],
        allow_anonymous=True,
        publish_interval_s=0.01,
    )
    server = OpcUaServer(config, lambda: image.snapshot, image.writes)
    await server.start()
    yield image, server
    await server.stop()


async def test_browse_read_subscribe_and_write_only_the_writable(open_server: tuple[Image, OpcUaServer]) -> None:
    image, server = open_server
    async with Client(server.endpoint, timeout=15) as client:
        ns = await client.get_namespace_index(NAMESPACE_URI)
        folder = await client.nodes.objects.get_child(f"{ns}:Main")
        names = {(await node.read_browse_name()).Name for node in await folder.get_children()}
        assert names == {name for name, _ in VARIABLES}
        level = client.get_node(ua.NodeId("Level", ns))
        assert await level.read_data_type_as_variant_type() == ua.VariantType.Float
        assert await level.read_value() == 1.5
        assert await client.get_node(ua.NodeId("Count", ns)).read_data_type_as_variant_type() == ua.VariantType.Int32

        changes: list[object] = []

        class Handler:
            def datachange_notification(self, node: object, value: object, data: object) -> None:
                changes.append(value)

        subscription = await client.create_subscription(20, Handler())
        await subscription.subscribe_data_change(level)
        image.publish(Level=2.5)
        await async_wait_for(_when(lambda: 2.5 in changes), timeout=15, what="data change 2.5")

        setpoint = client.get_node(ua.NodeId("Setpoint", ns))
        await setpoint.write_value(ua.DataValue(ua.Variant(11, ua.VariantType.Int16)))
        assert image.writes.drain()[0][1:] == ("Setpoint", 11)
        with pytest.raises(ua.UaStatusCodeError):
            await level.write_value(ua.DataValue(ua.Variant(9.0, ua.VariantType.Float)))
        assert image.writes.drain() == []
        await subscription.delete()


def _when(predicate: object) -> object:
    async def check() -> bool:
        return bool(predicate())  # type: ignore[operator]

    return check


async def make_certificate(directory: Path, name: str, server: bool) -> tuple[Path, Path]:
    """A self-signed application certificate; written as tls.crt/tls.key (PEM) like a Kubernetes TLS Secret."""
    key, der = directory / f"{name}.key", directory / f"{name}.der"
    usage = [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
    uri = f"urn:shopfloor:test:{name}"
    await setup_self_signed_certificate(key, der, uri, "127.0.0.1", usage, {"commonName": name})
    pem = directory / f"{name}.crt"
    pem.write_bytes(x509.load_der_x509_certificate(der.read_bytes()).public_bytes(Encoding.PEM))
    return pem, key


async def secured_config(directory: Path, **overrides: Any) -> OpcUaConfig:
    """A server offering Basic256Sha256_SignAndEncrypt only, with its certificate from files."""
    cert, key = await make_certificate(directory, "server", server=True)
    settings: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": free_port(),
        "program": "Main",
        "variables": VARIABLES,
        "security_policies": ["Basic256Sha256_SignAndEncrypt"],
        "certificate": cert,
        "private_key": key,
        "allow_anonymous": False,
    }
    return OpcUaConfig(**(settings | overrides))


async def test_only_the_configured_policies_are_offered(tmp_path: Path) -> None:
    image = Image()
    config = await secured_config(tmp_path)
    server = OpcUaServer(config, lambda: image.snapshot, image.writes)
    await server.start()
    try:
        client = Client(server.endpoint, timeout=15)
        endpoints = await client.connect_and_get_server_endpoints()
        offered = {(e.SecurityPolicyUri.rsplit("#", 1)[-1], e.SecurityMode) for e in endpoints}
        assert offered == {("Basic256Sha256", ua.MessageSecurityMode.SignAndEncrypt)}
        tokens = {t.TokenType for e in endpoints for t in e.UserIdentityTokens}
        assert ua.UserTokenType.Anonymous not in tokens
        plain = Client(server.endpoint, timeout=3)
        with pytest.raises((ua.UaError, asyncio.TimeoutError, ConnectionError, OSError)):
            await plain.connect()  # no None policy: an unsecured session is refused
    finally:
        await server.stop()


async def secure_client(url: str, directory: Path, name: str) -> Client:
    """A client with its own application certificate (made once, reused), on a SignAndEncrypt channel."""
    key = directory / f"{name}.key"
    if not key.exists():
        await make_certificate(directory, name, server=False)
    pem_key = key.with_suffix(".pem")  # asyncua's client tells PEM from DER by the file name
    pem_key.write_bytes(key.read_bytes())
    client = Client(url, timeout=15)
    client.application_uri = f"urn:shopfloor:test:{name}"
    await client.set_security(
        security_policies.SecurityPolicyBasic256Sha256,
        str(directory / f"{name}.der"),
        str(pem_key),
        mode=ua.MessageSecurityMode.SignAndEncrypt,
    )
    return client


async def test_only_trusted_client_certificates_open_a_secure_channel(tmp_path: Path) -> None:
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    image = Image()
    config = await secured_config(tmp_path, allow_anonymous=True, trusted_clients_dir=trusted)
    await make_certificate(tmp_path, "known", server=False)
    (trusted / "known.der").write_bytes((tmp_path / "known.der").read_bytes())
    server = OpcUaServer(config, lambda: image.snapshot, image.writes)
    await server.start()
    try:
        known = await secure_client(server.endpoint, tmp_path, "known")
        async with known:
            ns = await known.get_namespace_index(NAMESPACE_URI)
            assert await known.get_node(ua.NodeId("Level", ns)).read_value() == 1.5
        stranger = await secure_client(server.endpoint, tmp_path, "stranger")
        with pytest.raises(ua.uaerrors.BadCertificateUntrusted):
            await stranger.connect()
    finally:
        await server.stop()
