"""A plain asyncua server as an OPC UA device, and certificates for OPC UA secure channels."""

from __future__ import annotations

from pathlib import Path

from asyncua import Server, ua
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.support.mosquitto import free_port


def _certificate_paths(directory: Path) -> tuple[Path, Path, bool]:
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "tls.crt", directory / "tls.key"
    return cert, key, cert.exists() and key.exists()


async def make_certificate(directory: Path, app_uri: str, *, server: bool) -> tuple[Path, Path]:
    """(certificate (DER), private key (PEM)) for an OPC UA application, issued for 127.0.0.1; made once."""
    cert, key, exists = _certificate_paths(directory)
    if exists:
        return cert, key
    use = [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
    await setup_self_signed_certificate(key, cert, app_uri, "127.0.0.1", use, {"commonName": app_uri})
    return cert, key


class OpcUaDevice:
    """Variables s=Temp (Double) and s=Run (Boolean) in `namespace`; restartable on the same port; values kept."""

    def __init__(self, directory: Path, *, secured: bool) -> None:
        self.directory = directory
        self.secured = secured
        self.port = free_port()
        self.url = f"opc.tcp://127.0.0.1:{self.port}/device"
        self.values: dict[str, object] = {"Temp": 20.0, "Run": False}
        self._server: Server | None = None

    async def start(self) -> OpcUaDevice:
        server = Server()
        await server.init()
        server.set_endpoint(self.url)
        await server.set_application_uri("urn:test:device")
        if self.secured:
            cert, key = await make_certificate(self.directory / "server", "urn:test:device", server=True)
            await server.load_certificate(str(cert), format="der")
            await server.load_private_key(str(key), format="pem")
            server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
        else:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        self.namespace = await server.register_namespace("urn:test:device:tags")
        objects = server.nodes.objects
        ns = self.namespace
        self.temp = await objects.add_variable(ua.NodeId("Temp", ns), "Temp", float(self.values["Temp"]))  # type: ignore[arg-type]
        self.run = await objects.add_variable(ua.NodeId("Run", ns), "Run", bool(self.values["Run"]))
        await self.temp.set_writable()
        await self.run.set_writable()
        await server.start()
        self._server = server
        return self

    async def set_temp(self, value: float) -> None:
        self.values["Temp"] = value
        await self.temp.write_value(value)

    async def stop(self) -> None:
        if self._server is not None:
            self.values["Temp"] = await self.temp.read_value()
            self.values["Run"] = await self.run.read_value()
            await self._server.stop()
            self._server = None
