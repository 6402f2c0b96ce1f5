"""The vPLC's OPC UA server holds clients to its security policies (IEC 62443-3-3 SR 1.2, SR 3.1, SR 4.1).

Probed with asyncua's client, and where that client would not send a request, with requests built by hand from
asyncua's `ua` classes over a None channel opened with its low-level UaClient (tests/integration/bridge/opcua_peers).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from asyncua import Client, ua
from asyncua.crypto import security_policies

from shopfloor_vplc.image import PlcState, Snapshot, WriteQueue
from shopfloor_vplc.opcua_server import NAMESPACE_URI, OpcUaConfig, OpcUaServer
from tests.integration.bridge.opcua_peers import (
    NoneChannel,
    application_certificate,
    assert_refused_at_open_secure_channel,
)
from tests.support.mosquitto import free_port

# A backstop only: each test bounds itself with asyncio.timeout, so a hang fails inside the event loop.
pytestmark = pytest.mark.timeout(90)
TEST_TIMEOUT = 45.0

VARIABLES = [("Level", "REAL"), ("Setpoint", "INT")]
SECURED = ["Basic256Sha256_SignAndEncrypt"]
BASIC256SHA256 = security_policies.SecurityPolicyBasic256Sha256.URI


class Image:
    """The scan's side: one snapshot, and the queue where client writes land."""

    def __init__(self) -> None:
        self.writes = WriteQueue()
        self.snapshot = Snapshot.of(1, {"Level": 1.5, "Setpoint": 3}, 0, PlcState.RUNNING, "r")


@dataclass(frozen=True)
class Pki:
    """A certificate folder laid out as the runtime reads it: tls.crt/tls.key, users/*.der, trusted/."""

    directory: Path

    def app(self, name: str) -> tuple[Path, Path, Path]:
        return application_certificate(self.directory / name, f"urn:shopfloor:test:{name}")

    def trust(self, name: str) -> Path:
        trusted = self.directory / "trusted"
        trusted.mkdir(parents=True, exist_ok=True)
        (trusted / f"{name}.der").write_bytes(self.app(name)[1].read_bytes())
        return trusted

    def user(self, name: str) -> Path:
        return self.app(name)[1]


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path / "pki")


@asynccontextmanager
async def serving(pki: Pki, **overrides: Any) -> AsyncIterator[tuple[OpcUaServer, Image]]:
    """The vPLC's OPC UA server with its own certificate on a loopback port; secured-only unless overridden."""
    cert, _, key = pki.app("vplc")
    settings: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": free_port(),
        "program": "Main",
        "variables": VARIABLES,
        "writable": ["Setpoint"],
        "security_policies": SECURED,
        "certificate": cert,
        "private_key": key,
        "allow_anonymous": False,
    }
    image = Image()
    server = OpcUaServer(OpcUaConfig(**(settings | overrides)), lambda: image.snapshot, image.writes)
    await server.start()
    try:
        yield server, image
    finally:
        await server.stop()


async def secured_client(url: str, pki: Pki, app: str, user: str | None = None) -> Client:
    """asyncua's client on a Basic256Sha256 SignAndEncrypt channel with `app`'s certificate; identified as `user`
    (an X509 identity token) when given, anonymous otherwise."""
    _, cert, key = pki.app(app)  # asyncua's client tells PEM from DER by the file name
    client = Client(url, timeout=10)
    client.application_uri = f"urn:shopfloor:test:{app}"
    await client.set_security(
        security_policies.SecurityPolicyBasic256Sha256, str(cert), str(key), mode=ua.MessageSecurityMode.SignAndEncrypt
    )
    if user is not None:
        _, user_der, user_key = pki.app(user)
        await client.load_client_certificate(str(user_der), extension="der")
        await client.load_private_key(str(user_key), extension="pem")
    return client


def node(server: OpcUaServer, name: str) -> ua.NodeId:
    return ua.NodeId(name, server.namespace_index)


SETPOINT_42 = ua.Variant(42, ua.VariantType.Int16)


async def test_anonymous_session_over_none_is_refused_when_only_secured_policies_are_offered(pki: Pki) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), serving(pki, allow_anonymous=True) as (server, image):
        # asyncua's own client asks for a session over None, and is refused at CreateSession.
        with pytest.raises(ua.uaerrors.BadSecurityPolicyRejected):
            await Client(server.endpoint, timeout=10).connect()
        async with NoneChannel(server.endpoint) as channel:
            with pytest.raises(ua.uaerrors.BadSecurityPolicyRejected):
                await channel.create_session()
            with pytest.raises(ua.uaerrors.BadSecurityPolicyRejected):
                await channel.activate_anonymous()
            with pytest.raises(ua.uaerrors.BadSecurityPolicyRejected):
                await channel.read(node(server, "Level"))
            with pytest.raises(ua.uaerrors.BadSecurityPolicyRejected):
                await channel.write(node(server, "Setpoint"), SETPOINT_42)
        assert image.writes.drain() == []


async def test_a_listed_user_certificate_over_none_is_refused(pki: Pki) -> None:
    user = pki.user("operator")
    _, user_der, user_key = pki.app("operator")
    async with asyncio.timeout(TEST_TIMEOUT), serving(pki, trusted_user_certificates=[user]) as (server, image):
        async with NoneChannel(server.endpoint) as channel:
            (endpoint,) = await channel.get_endpoints()
            with pytest.raises(ua.uaerrors.BadSecurityPolicyRejected):
                await channel.create_session(client_certificate=user_der.read_bytes())
            with pytest.raises(ua.uaerrors.BadSecurityPolicyRejected):
                await channel.activate_x509(
                    user_der.read_bytes(), user_key.read_bytes(), endpoint.ServerCertificate, BASIC256SHA256
                )
            with pytest.raises(ua.uaerrors.BadSecurityPolicyRejected):
                await channel.write(node(server, "Setpoint"), SETPOINT_42)
        assert image.writes.drain() == []


async def test_discovery_over_none_still_answers_with_the_secured_endpoints(pki: Pki) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), serving(pki, allow_anonymous=True) as (server, _):
        endpoints = await Client(server.endpoint, timeout=10).connect_and_get_server_endpoints()
        offered = {(e.SecurityPolicyUri, e.SecurityMode) for e in endpoints}
        assert offered == {(BASIC256SHA256, ua.MessageSecurityMode.SignAndEncrypt)}
        servers = await Client(server.endpoint, timeout=10).connect_and_find_servers()
        assert [s.ApplicationUri for s in servers] == ["urn:shopfloor:test:vplc"]
        async with NoneChannel(server.endpoint) as channel:
            assert [(e.SecurityPolicyUri, e.SecurityMode) for e in await channel.get_endpoints()] == [
                (BASIC256SHA256, ua.MessageSecurityMode.SignAndEncrypt)
            ]


async def test_a_trusted_client_reads_and_writes_over_the_secured_channel(pki: Pki) -> None:
    trusted = pki.trust("known")
    config = {"trusted_clients_dir": trusted, "trusted_user_certificates": [pki.user("operator")]}
    async with asyncio.timeout(TEST_TIMEOUT), serving(pki, **config) as (server, image):
        async with await secured_client(server.endpoint, pki, "known", user="operator") as client:
            ns = await client.get_namespace_index(NAMESPACE_URI)
            assert await client.get_node(ua.NodeId("Level", ns)).read_value() == 1.5
            await client.get_node(ua.NodeId("Setpoint", ns)).write_value(ua.DataValue(SETPOINT_42))
        assert [write[1:] for write in image.writes.drain()] == [("Setpoint", 42)]


async def test_a_live_secured_session_cannot_be_activated_from_a_none_channel(pki: Pki) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), serving(pki, allow_anonymous=True) as (server, image):
        async with await secured_client(server.endpoint, pki, "known") as client:
            token = client.uaclient.session.authentication_token
            async with NoneChannel(server.endpoint) as channel:
                with pytest.raises(ua.uaerrors.BadSecurityPolicyRejected):
                    await channel.activate_token(token)
                with pytest.raises(ua.uaerrors.BadSecurityPolicyRejected):
                    await channel.write(node(server, "Setpoint"), SETPOINT_42)
            assert await client.get_node(node(server, "Level")).read_value() == 1.5  # the owner's session lives on
        assert image.writes.drain() == []


async def test_an_untrusted_client_certificate_is_refused_at_open_secure_channel(pki: Pki) -> None:
    config = {"allow_anonymous": True, "trusted_clients_dir": pki.trust("known")}
    async with asyncio.timeout(TEST_TIMEOUT), serving(pki, **config) as (server, _):
        stranger = await secured_client(server.endpoint, pki, "stranger")
        await assert_refused_at_open_secure_channel(stranger)
        async with await secured_client(server.endpoint, pki, "known") as known:  # trusted clients still get in
            assert await known.get_node(node(server, "Level")).read_value() == 1.5


@pytest.mark.parametrize(
    ("policy", "mode", "refusal"),
    [
        (security_policies.SecurityPolicyBasic256Sha256, "Sign", ua.uaerrors.BadSecurityModeRejected),
        (security_policies.SecurityPolicyAes128Sha256RsaOaep, "SignAndEncrypt", ua.uaerrors.BadSecurityPolicyRejected),
    ],
)
async def test_a_secured_channel_that_is_not_offered_is_refused_at_open_secure_channel(
    pki: Pki, policy: type[security_policies.SecurityPolicy], mode: str, refusal: type[Exception]
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), serving(pki, allow_anonymous=True) as (server, _):
        _, cert, key = pki.app("known")
        _, server_cert, _ = pki.app("vplc")
        client = Client(server.endpoint, timeout=10)
        client.application_uri = "urn:shopfloor:test:known"
        # With the server's certificate given, asyncua's client skips the endpoint check and asks for the channel.
        await client.set_security(
            policy, str(cert), str(key), server_certificate=str(server_cert), mode=ua.MessageSecurityMode[mode]
        )
        await client.connect_socket()
        try:
            await client.send_hello()
            with pytest.raises(refusal):
                await client.open_secure_channel()
        finally:
            client.disconnect_socket()


async def test_none_sessions_work_when_none_is_listed(pki: Pki) -> None:
    config = {"security_policies": ["None", *SECURED], "allow_anonymous": True}
    async with asyncio.timeout(TEST_TIMEOUT), serving(pki, **config) as (server, image):
        async with Client(server.endpoint, timeout=10) as client:
            assert await client.get_node(node(server, "Level")).read_value() == 1.5
            await client.get_node(node(server, "Setpoint")).write_value(ua.DataValue(SETPOINT_42))
        assert [write[1:] for write in image.writes.drain()] == [("Setpoint", 42)]


async def test_the_hand_made_requests_succeed_on_a_listed_none_endpoint(pki: Pki) -> None:
    """The requests the other tests send over None are sound: where None is offered, a user certificate gets in."""
    user = pki.user("operator")
    _, user_der, user_key = pki.app("operator")
    config = {"security_policies": ["None", *SECURED], "trusted_user_certificates": [user]}
    async with asyncio.timeout(TEST_TIMEOUT), serving(pki, **config) as (server, image):
        async with NoneChannel(server.endpoint) as channel:
            none_endpoint = next(
                e for e in await channel.get_endpoints() if e.SecurityMode == ua.MessageSecurityMode.None_
            )
            token_policy = next(
                t for t in none_endpoint.UserIdentityTokens if t.TokenType == ua.UserTokenType.Certificate
            )
            await channel.create_session(client_certificate=user_der.read_bytes())
            await channel.activate_x509(
                user_der.read_bytes(),
                user_key.read_bytes(),
                none_endpoint.ServerCertificate,
                token_policy.SecurityPolicyUri,
            )
            assert (await channel.read(node(server, "Level"))).Value.Value == 1.5
            assert (await channel.write(node(server, "Setpoint"), SETPOINT_42)).is_good()
        assert [write[1:] for write in image.writes.drain()] == [("Setpoint", 42)]
