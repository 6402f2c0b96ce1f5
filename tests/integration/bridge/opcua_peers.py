"""A plain asyncua server as an OPC UA device, certificates for OPC UA secure channels, and a hand-made None channel
for probing servers (the vPLC's tests use it too)."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import pytest
from asyncua import Client, Server, ua
from asyncua.client.ua_client import UaClient
from asyncua.crypto import security_policies
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from shopfloor_localsite.pki import opcua_application_certificate
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


def application_certificate(directory: Path, app_uri: str) -> tuple[Path, Path, Path]:
    """An RSA application instance certificate for `app_uri` from the site's PKI, made once:
    (certificate PEM `tls.crt`, the same as DER `tls.der`, private key PEM `tls.pem`)."""
    directory.mkdir(parents=True, exist_ok=True)
    pem, der, key = directory / "tls.crt", directory / "tls.der", directory / "tls.pem"
    if not key.exists():
        cert_pem, key_pem = opcua_application_certificate(app_uri)
        pem.write_bytes(cert_pem)
        der.write_bytes(x509.load_pem_x509_certificate(cert_pem).public_bytes(Encoding.DER))
        key.write_bytes(key_pem)
    return pem, der, key


def none_channel_parameters() -> ua.OpenSecureChannelParameters:
    return ua.OpenSecureChannelParameters(
        ClientProtocolVersion=0,
        RequestType=ua.SecurityTokenRequestType.Issue,
        SecurityMode=ua.MessageSecurityMode.None_,
        RequestedLifetime=600_000,
        ClientNonce=b"",
    )


class NoneChannel:
    """A SecurityPolicy None channel opened by hand with asyncua's low-level UaClient, sending requests built from
    asyncua's `ua` classes: the requests asyncua's Client will not send itself (it does not activate a session over
    None when the server offers only secured endpoints). A refusal raises the server's status code as asyncua's
    exception (ua.uaerrors.Bad...)."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url
        self.client = UaClient(timeout=timeout)
        self.server_nonce = b""

    async def __aenter__(self) -> NoneChannel:
        address = urlparse(self.url)
        assert address.hostname is not None and address.port is not None
        await self.client.connect_socket(address.hostname, address.port)
        await self.client.send_hello(self.url)
        await self.client.open_secure_channel(none_channel_parameters())
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self.client.disconnect_socket()

    async def get_endpoints(self) -> list[ua.EndpointDescription]:
        return await self.client.get_endpoints(ua.GetEndpointsParameters(EndpointUrl=self.url))

    async def create_session(self, client_certificate: bytes | None = None) -> ua.CreateSessionResult:
        params = ua.CreateSessionParameters(
            ClientDescription=ua.ApplicationDescription(
                ApplicationUri="urn:test:raw-client", ApplicationType=ua.ApplicationType.Client
            ),
            EndpointUrl=self.url,
            SessionName="raw None session",
            ClientNonce=os.urandom(32),
            ClientCertificate=client_certificate,
            RequestedSessionTimeout=60_000,
            MaxResponseMessageSize=0,
        )
        result = await self.client.create_session(params)
        self.server_nonce = result.ServerNonce or b""
        return result

    async def activate_anonymous(self) -> ua.ActivateSessionResult:
        return await self._activate(ua.AnonymousIdentityToken(PolicyId="anonymous"), ua.SignatureData())

    async def activate_x509(
        self, certificate_der: bytes, private_key_pem: bytes, server_certificate: bytes, token_policy_uri: str
    ) -> ua.ActivateSessionResult:
        """An X509 identity token, signed as OPC 10000-4 §5.6.3 says (server certificate + last server nonce)."""
        key = serialization.load_pem_private_key(private_key_pem, password=None)
        signature, algorithm = security_policies.sign_asymmetric(
            key, server_certificate + self.server_nonce, token_policy_uri
        )
        token = ua.X509IdentityToken(PolicyId="certificate", CertificateData=certificate_der)
        return await self._activate(token, ua.SignatureData(Algorithm=algorithm, Signature=signature))

    async def activate_token(self, authentication_token: ua.NodeId) -> ua.ActivateSessionResult:
        """ActivateSession on someone else's session (OPC 10000-4 §6.7 reconnect), anonymously."""
        self.client.session.restore_authentication_token(authentication_token)
        return await self.activate_anonymous()

    async def _activate(self, token: object, token_signature: ua.SignatureData) -> ua.ActivateSessionResult:
        params = ua.ActivateSessionParameters(UserIdentityToken=token, UserTokenSignature=token_signature)
        return await self.client.activate_session(params)

    async def read(self, node_id: ua.NodeId) -> ua.DataValue:
        params = ua.ReadParameters(NodesToRead=[ua.ReadValueId(NodeId=node_id, AttributeId=ua.AttributeIds.Value)])
        return (await self.client.read(params))[0]

    async def write(self, node_id: ua.NodeId, value: ua.Variant) -> ua.StatusCode:
        item = ua.WriteValue(NodeId=node_id, AttributeId=ua.AttributeIds.Value, Value=ua.DataValue(value))
        return (await self.client.write(ua.WriteParameters(NodesToWrite=[item])))[0]


async def assert_refused_at_open_secure_channel(stranger: Client) -> None:
    """`stranger` (a client with an untrusted certificate) gets through Hello but its channel never opens, so there
    is nothing to create a session on."""
    await stranger.connect_socket()
    try:
        await stranger.send_hello()
        with pytest.raises(ua.uaerrors.BadCertificateUntrusted):
            await stranger.open_secure_channel()
        with pytest.raises((ConnectionError, ua.UaError)):
            await stranger.create_session()
    finally:
        stranger.disconnect_socket()
