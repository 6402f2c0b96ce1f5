"""OPC UA: the bridge as a client of a real asyncua server (secured), and as a server for real asyncua clients."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from asyncua import Client, Node, ua
from asyncua.crypto import security_policies

from shopfloor_api import ProtocolBridge, parse_manifest
from shopfloor_bridge.config import SecretFiles, from_manifest
from shopfloor_bridge.opcua_source import certificate_file
from tests.integration.bridge.devices import COILS, HOLDING, ModbusDevice
from tests.integration.bridge.manifests import bridge_manifest, modbus_source
from tests.integration.bridge.opcua_peers import OpcUaDevice, make_certificate
from tests.integration.bridge.probe import Probe, eventually
from tests.integration.bridge.test_modbus_to_mqtt import last_values, running
from tests.support.mosquitto import Mosquitto, free_port
from tests.support.sparkplug import BOOLEAN, FLOAT

SPARKPLUG = {"groupId": "plant-a", "edgeNodeId": "line-1"}
SPEED = {"name": "Speed", "table": "holdingRegisters", "address": 0, "type": "UINT"}


async def test_subscribes_with_security_and_resubscribes_after_server_restart(
    broker: Mosquitto, tmp_path: Path
) -> None:
    device = await OpcUaDevice(tmp_path / "device", secured=True).start()
    secrets = tmp_path / "secrets"
    await make_certificate(secrets / "bridge-opcua", "urn:shopfloor:bridge", server=False)
    source = {
        "name": "oven",
        "opcua": {
            "endpoint": device.url,
            "securityPolicy": "Basic256Sha256_SignAndEncrypt",
            "certificateSecretRef": {"name": "bridge-opcua"},
            "samplingInterval": "20ms",
            "nodes": [
                {"name": "Temp", "nodeId": f"ns={device.namespace};s=Temp"},
                {"name": "Run", "nodeId": f"ns={device.namespace};s=Run"},
            ],
        },
    }
    manifest = parse_manifest(bridge_manifest([source], mqtt={"url": broker.url, "sparkplug": SPARKPLUG}))
    assert isinstance(manifest, ProtocolBridge)
    probe = Probe(broker, ("spBv1.0/#",)).start()
    async with running(from_manifest(manifest, tmp_path / "state", SecretFiles(secrets))):
        await eventually(lambda: last_values(probe).get("oven/Temp") == 20.0, what="subscribed value")
        await device.set_temp(21.25)
        await eventually(lambda: last_values(probe).get("oven/Temp") == 21.25, what="change notification")
        # Datatypes read from the server are announced in a rebirth.
        birth = probe.of_kind("NBIRTH")[-1].sparkplug()
        types = {m.name: m.datatype for m in birth.metrics}
        assert (types["oven/Temp"], types["oven/Run"]) == (FLOAT, BOOLEAN)
        await device.stop()
        await eventually(lambda: last_values(probe).get("oven/Temp", 0) is None, timeout=15, what="bad quality")
        await device.start()
        await device.set_temp(22.5)
        await eventually(lambda: last_values(probe).get("oven/Temp") == 22.5, timeout=20, what="re-subscribed")
    probe.stop()
    await device.stop()


@pytest.fixture
async def modbus_device() -> AsyncIterator[ModbusDevice]:
    device = await ModbusDevice().start()
    yield device
    await device.stop()


async def test_server_sink_serves_tags_with_quality_and_gates_writes(
    modbus_device: ModbusDevice, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await modbus_device.set(HOLDING, 0, [17])
    tags = [
        {"name": "Speed", "table": "holdingRegisters", "address": 0, "type": "UINT"},
        {"name": "Pump", "table": "coils", "address": 0, "type": "BOOL"},
    ]
    port = free_port()
    document = bridge_manifest(
        [modbus_source(modbus_device.port, tags)],
        opcua={"enabled": True, "port": port, "securityPolicies": ["None"], "allowAnonymous": True},
        writes={"enabled": True, "allow": ["mixer/Speed"]},
    )
    manifest = parse_manifest(document)
    assert isinstance(manifest, ProtocolBridge)
    monkeypatch.setenv("SHOPFLOOR_BRIDGE_OPCUA_HOST", "127.0.0.1")
    async with (
        running(from_manifest(manifest, tmp_path / "state")) as bridge,
        Client(f"opc.tcp://127.0.0.1:{port}/shopfloor/bridge", timeout=5) as client,
    ):
        namespace = await client.get_namespace_index("urn:shopfloor:bridge")
        speed = client.get_node(ua.NodeId("mixer/Speed", namespace))
        pump = client.get_node(ua.NodeId("mixer/Pump", namespace))

        await read_until(speed, lambda dv: dv.Value.Value == 17)
        with pytest.raises(ua.UaStatusCodeError):
            await pump.write_value(ua.DataValue(ua.Variant(True, ua.VariantType.Boolean)))
        assert bridge.metrics.writes.labels("opcua", "refused")._value.get() == 1
        assert await modbus_device.get(COILS, 0) == [False]
        await speed.write_value(ua.DataValue(ua.Variant(99, ua.VariantType.UInt16)))
        await eventually(lambda: bridge.metrics.writes.labels("opcua", "written")._value.get() == 1)
        assert await modbus_device.get(HOLDING, 0) == [99]
        await modbus_device.stop()
        # The device is gone: the variable keeps no stale value but a bad status code.
        await read_until(speed, lambda dv: dv.StatusCode.is_bad())
        await modbus_device.start()
        await read_until(speed, lambda dv: dv.StatusCode.is_good() and dv.Value.Value == 99)


async def read_until(node: Node, check: Callable[[ua.DataValue], bool], timeout: float = 10.0) -> None:
    """Reads the node until `check` accepts its DataValue (a bad status may also arrive as an error)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = await node.read_data_value(raise_on_bad_status=False)
        except ua.UaStatusCodeError as error:
            last = ua.DataValue(StatusCode=ua.StatusCode(ua.UInt32(error.code)))
        if check(last):  # type: ignore[arg-type]
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out: last read {last!r}")


async def test_secured_server_sink_accepts_only_trusted_client_certificates(
    modbus_device: ModbusDevice, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    await modbus_device.set(HOLDING, 0, [23])
    secrets = tmp_path / "secrets"
    await make_certificate(secrets / "bridge-server", "urn:shopfloor:bridge", server=True)
    trusted_cert, trusted_key = await make_certificate(tmp_path / "trusted", "urn:test:client", server=False)
    stranger_cert, stranger_key = await make_certificate(tmp_path / "stranger", "urn:test:client", server=False)
    (secrets / "bridge-server" / "ca.crt").write_bytes(trusted_cert.read_bytes())
    port = free_port()
    document = bridge_manifest(
        [
            modbus_source(
                modbus_device.port, [{"name": "Speed", "table": "holdingRegisters", "address": 0, "type": "UINT"}]
            )
        ],
        opcua={
            "enabled": True,
            "port": port,
            "securityPolicies": ["Basic256Sha256_SignAndEncrypt"],
            "certificateSecretRef": {"name": "bridge-server"},
        },
    )
    manifest = parse_manifest(document)
    assert isinstance(manifest, ProtocolBridge)
    monkeypatch.setenv("SHOPFLOOR_BRIDGE_OPCUA_HOST", "127.0.0.1")
    url = f"opc.tcp://127.0.0.1:{port}/shopfloor/bridge"

    async def secured_client(cert: Path, key: Path) -> Client:
        client = Client(url, timeout=5)
        client.application_uri = "urn:test:client"
        await client.set_security(
            security_policies.SecurityPolicyBasic256Sha256,
            certificate_file(cert),
            certificate_file(key),
            mode=ua.MessageSecurityMode.SignAndEncrypt,
        )
        await client.load_client_certificate(str(cert), extension="der")  # the session's X509 identity
        await client.load_private_key(str(key), extension="pem")
        return client

    async with running(from_manifest(manifest, tmp_path / "state", SecretFiles(secrets))):
        async with await secured_client(trusted_cert, trusted_key) as client:
            namespace = await client.get_namespace_index("urn:shopfloor:bridge")
            await read_until(client.get_node(ua.NodeId("mixer/Speed", namespace)), lambda dv: dv.Value.Value == 23)
        stranger = await secured_client(stranger_cert, stranger_key)
        with pytest.raises((ua.UaError, ConnectionError, TimeoutError)):
            await stranger.connect()
        with contextlib.suppress(Exception):
            await stranger.disconnect()
    assert "refused untrusted client certificate" in caplog.text
