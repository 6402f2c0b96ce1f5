"""The bridge's OPC UA server sink holds clients to its security policies (IEC 62443-3-3 SR 1.2, SR 3.1, SR 4.1).

A real bridge (from a manifest) over a real Modbus device, probed with asyncua's client, and where that client would
not send a request, with requests built by hand from asyncua's `ua` classes over a None channel (opcua_peers).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from asyncua import Client, Node, ua
from asyncua.crypto import security_policies

from shopfloor_api import ProtocolBridge, parse_manifest
from shopfloor_bridge.bridge import Bridge
from shopfloor_bridge.config import SecretFiles, from_manifest
from tests.integration.bridge.devices import HOLDING, ModbusDevice
from tests.integration.bridge.manifests import bridge_manifest, modbus_source
from tests.integration.bridge.opcua_peers import (
    NoneChannel,
    application_certificate,
    assert_refused_at_open_secure_channel,
)
from tests.integration.bridge.probe import eventually
from tests.integration.bridge.test_modbus_to_mqtt import running
from tests.support.mosquitto import free_port
from tests.support.waiting import async_wait_for

# A backstop only: each test bounds itself with asyncio.timeout, so a hang fails inside the event loop.
pytestmark = pytest.mark.timeout(90)
TEST_TIMEOUT = 45.0

SECURED = ["Basic256Sha256_SignAndEncrypt"]
BASIC256SHA256 = security_policies.SecurityPolicyBasic256Sha256.URI
SPEED = "mixer/Speed"
SPEED_99 = ua.Variant(99, ua.VariantType.UInt16)


@pytest.fixture
async def modbus_device() -> AsyncIterator[ModbusDevice]:
    async with asyncio.timeout(TEST_TIMEOUT):
        device = await ModbusDevice().start()
        await device.set(HOLDING, 0, [17])
    yield device
    await device.stop()


class Sink:
    """The running bridge's OPC UA server sink: its URL and the certificates around it."""

    def __init__(self, tmp_path: Path, bridge: Bridge, port: int) -> None:
        self.tmp_path = tmp_path
        self.bridge = bridge
        self.url = f"opc.tcp://127.0.0.1:{port}/shopfloor/bridge"
        self.namespace = 0

    def speed(self) -> ua.NodeId:
        return ua.NodeId(SPEED, self.namespace)

    def written(self, result: str) -> float:
        return float(self.bridge.metrics.writes.labels("opcua", result)._value.get())


def client_certificate(tmp_path: Path, name: str) -> tuple[Path, Path, Path]:
    return application_certificate(tmp_path / "clients" / name, "urn:test:client")


@asynccontextmanager
async def bridge_sink(
    tmp_path: Path,
    device: ModbusDevice,
    monkeypatch: pytest.MonkeyPatch,
    *,
    policies: list[str],
    allow_anonymous: bool = False,
    trusted: tuple[str, ...] = (),
) -> AsyncIterator[Sink]:
    """A bridge serving mixer/Speed (writable) over OPC UA; `trusted` client certificates go into ca.crt."""
    secrets = tmp_path / "secrets"
    opcua: dict[str, Any] = {"enabled": True, "port": free_port(), "securityPolicies": policies}
    opcua["allowAnonymous"] = allow_anonymous
    if any(p != "None" for p in policies):
        _, _, key = application_certificate(secrets / "bridge-server", "urn:shopfloor:bridge")
        (secrets / "bridge-server" / "tls.key").write_bytes(key.read_bytes())
        opcua["certificateSecretRef"] = {"name": "bridge-server"}
        if trusted:
            bundle = b"".join(client_certificate(tmp_path, name)[0].read_bytes() for name in trusted)
            (secrets / "bridge-server" / "ca.crt").write_bytes(bundle)
    tags = [{"name": "Speed", "table": "holdingRegisters", "address": 0, "type": "UINT"}]
    document = bridge_manifest(
        [modbus_source(device.port, tags)], opcua=opcua, writes={"enabled": True, "allow": [SPEED]}
    )
    manifest = parse_manifest(document)
    assert isinstance(manifest, ProtocolBridge)
    monkeypatch.setenv("SHOPFLOOR_BRIDGE_OPCUA_HOST", "127.0.0.1")
    async with running(from_manifest(manifest, tmp_path / "state", SecretFiles(secrets))) as bridge:
        sink = Sink(tmp_path, bridge, opcua["port"])
        assert bridge.opcua_server is not None
        sink.namespace = await bridge.opcua_server.server.get_namespace_index("urn:shopfloor:bridge")
        yield sink


async def read_until(node: Node, value: int) -> None:
    """Reads until the device's value has been polled into the address space."""

    async def polled() -> bool:
        data = await node.read_data_value(raise_on_bad_status=False)
        return data.Value is not None and data.Value.Value == value

    await async_wait_for(polled, timeout=10, what=f"{node} = {value}")


async def secured_client(sink: Sink, name: str, *, identify: bool) -> Client:
    """asyncua's client on a Basic256Sha256 SignAndEncrypt channel with the certificate `name`; with `identify`,
    it also identifies the session with that certificate (an X509 identity token)."""
    _, der, key = client_certificate(sink.tmp_path, name)
    client = Client(sink.url, timeout=10)
    client.application_uri = "urn:test:client"
    await client.set_security(
        security_policies.SecurityPolicyBasic256Sha256, str(der), str(key), mode=ua.MessageSecurityMode.SignAndEncrypt
    )
    if identify:
        await client.load_client_certificate(str(der), extension="der")
        await client.load_private_key(str(key), extension="pem")
    return client


async def test_anonymous_session_over_none_is_refused_when_only_secured_policies_are_offered(
    tmp_path: Path, modbus_device: ModbusDevice, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with (
        asyncio.timeout(TEST_TIMEOUT),
        bridge_sink(tmp_path, modbus_device, monkeypatch, policies=SECURED, allow_anonymous=True) as sink,
    ):
        with pytest.raises(ua.uaerrors.BadSecurityPolicyRejected):
            await Client(sink.url, timeout=10).connect()  # asyncua's client: refused at CreateSession
        async with NoneChannel(sink.url) as channel:
            with pytest.raises(ua.uaerrors.BadSecurityPolicyRejected):
                await channel.create_session()
            with pytest.raises(ua.uaerrors.BadSecurityPolicyRejected):
                await channel.activate_anonymous()
            with pytest.raises(ua.uaerrors.BadSecurityPolicyRejected):
                await channel.read(sink.speed())
            with pytest.raises(ua.uaerrors.BadSecurityPolicyRejected):
                await channel.write(sink.speed(), SPEED_99)
        assert await modbus_device.get(HOLDING, 0) == [17]
        assert (sink.written("written"), sink.written("refused")) == (0, 0)


async def test_a_client_certificate_identity_over_none_is_refused(
    tmp_path: Path, modbus_device: ModbusDevice, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with (
        asyncio.timeout(TEST_TIMEOUT),
        bridge_sink(tmp_path, modbus_device, monkeypatch, policies=SECURED, trusted=("known",)) as sink,
    ):
        _, der, key = client_certificate(tmp_path, "known")
        async with NoneChannel(sink.url) as channel:
            (endpoint,) = await channel.get_endpoints()
            with pytest.raises(ua.uaerrors.BadSecurityPolicyRejected):
                await channel.create_session(client_certificate=der.read_bytes())
            with pytest.raises(ua.uaerrors.BadSecurityPolicyRejected):
                await channel.activate_x509(
                    der.read_bytes(), key.read_bytes(), endpoint.ServerCertificate, BASIC256SHA256
                )
            with pytest.raises(ua.uaerrors.BadSecurityPolicyRejected):
                await channel.write(sink.speed(), SPEED_99)
        assert await modbus_device.get(HOLDING, 0) == [17]


async def test_discovery_over_none_still_answers_with_the_secured_endpoints(
    tmp_path: Path, modbus_device: ModbusDevice, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with (
        asyncio.timeout(TEST_TIMEOUT),
        bridge_sink(tmp_path, modbus_device, monkeypatch, policies=SECURED, trusted=("known",)) as sink,
    ):
        endpoints = await Client(sink.url, timeout=10).connect_and_get_server_endpoints()
        offered = {(e.SecurityPolicyUri, e.SecurityMode) for e in endpoints}
        assert offered == {(BASIC256SHA256, ua.MessageSecurityMode.SignAndEncrypt)}
        servers = await Client(sink.url, timeout=10).connect_and_find_servers()
        assert [s.ApplicationUri for s in servers] == ["urn:shopfloor:bridge"]


async def test_a_trusted_client_reads_and_writes_over_the_secured_channel(
    tmp_path: Path, modbus_device: ModbusDevice, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with (
        asyncio.timeout(TEST_TIMEOUT),
        bridge_sink(tmp_path, modbus_device, monkeypatch, policies=SECURED, trusted=("known",)) as sink,
    ):
        async with await secured_client(sink, "known", identify=True) as client:
            speed = client.get_node(sink.speed())
            await read_until(speed, 17)
            await speed.write_value(ua.DataValue(SPEED_99))
        await eventually(lambda: sink.written("written") == 1, what="write reached the device")
        assert await modbus_device.get(HOLDING, 0) == [99]


async def test_an_untrusted_client_certificate_is_refused_at_open_secure_channel(
    tmp_path: Path, modbus_device: ModbusDevice, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async with (
        asyncio.timeout(TEST_TIMEOUT),
        bridge_sink(tmp_path, modbus_device, monkeypatch, policies=SECURED, trusted=("known",)) as sink,
    ):
        client_certificate(tmp_path, "stranger")
        stranger = await secured_client(sink, "stranger", identify=True)
        await assert_refused_at_open_secure_channel(stranger)
        assert "refused untrusted client certificate" in caplog.text
        async with await secured_client(sink, "known", identify=True) as known:  # trusted clients still get in
            await known.get_node(sink.speed()).read_data_value(raise_on_bad_status=False)


async def test_none_sessions_work_when_none_is_listed(
    tmp_path: Path, modbus_device: ModbusDevice, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with (
        asyncio.timeout(TEST_TIMEOUT),
        bridge_sink(tmp_path, modbus_device, monkeypatch, policies=["None"], allow_anonymous=True) as sink,
    ):
        async with Client(sink.url, timeout=10) as client:
            speed = client.get_node(sink.speed())
            await read_until(speed, 17)
        # The hand-made requests the other tests send are sound: on an offered None endpoint they succeed.
        async with NoneChannel(sink.url) as channel:
            await channel.create_session()
            await channel.activate_anonymous()
            assert (await channel.write(sink.speed(), SPEED_99)).is_good()
        await eventually(lambda: sink.written("written") == 1, what="write reached the device")
        assert await modbus_device.get(HOLDING, 0) == [99]
