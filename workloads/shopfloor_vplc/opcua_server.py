"""The OPC UA server (asyncua): a folder per program with its variables under their own names and data types.

Values are copied from the scan's snapshots by a task on the event loop, changed values only, so the scan never
waits on OPC UA. Client writes are accepted only on variables listed in io.opcua.writable (others are read-only
nodes) and reach the program at the next scan boundary. Only the configured security policies are offered, and
sessions are refused on any other channel (a None channel serves discovery only; shopfloor_inpod.opcua_channel_guard);
anonymous sessions only when allowed; the server certificate and key come from files, and when a folder of trusted
client certificates is given, only clients whose application certificate it trusts can open a secure channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from asyncua import Server, ua
from asyncua.common.callback import CallbackType, ServerItemCallback
from asyncua.common.utils import ServiceError
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from asyncua.server.user_managers import CertificateUserManager, UserManager
from cryptography import x509

from shopfloor_inpod.opcua_channel_guard import ChannelGuardedServer
from shopfloor_inpod.opcua_policies import security_policies
from shopfloor_vplc.image import Snapshot, WriteRefused, WriteSink

log = logging.getLogger(__name__)

NAMESPACE_URI = "urn:shopfloor:vplc"

VARIANT_TYPES: dict[str, ua.VariantType] = {
    "BOOL": ua.VariantType.Boolean,
    "SINT": ua.VariantType.SByte,
    "INT": ua.VariantType.Int16,
    "DINT": ua.VariantType.Int32,
    "LINT": ua.VariantType.Int64,
    "USINT": ua.VariantType.Byte,
    "UINT": ua.VariantType.UInt16,
    "UDINT": ua.VariantType.UInt32,
    "ULINT": ua.VariantType.UInt64,
    "BYTE": ua.VariantType.Byte,
    "WORD": ua.VariantType.UInt16,
    "DWORD": ua.VariantType.UInt32,
    "LWORD": ua.VariantType.UInt64,
    "REAL": ua.VariantType.Float,
    "LREAL": ua.VariantType.Double,
    "STRING": ua.VariantType.String,
    "TIME": ua.VariantType.Int64,
}


def variant_type(type_name: str) -> ua.VariantType:
    upper = type_name.upper()
    return VARIANT_TYPES["STRING"] if upper.startswith("STRING") else VARIANT_TYPES[upper]


@dataclass(frozen=True)
class OpcUaConfig:
    host: str
    port: int
    program: str
    variables: Sequence[tuple[str, str]]  # (name, IEC type)
    writable: Iterable[str] = ()
    security_policies: Sequence[str] = ("Basic256Sha256_SignAndEncrypt",)
    certificate: Path | None = None
    private_key: Path | None = None
    allow_anonymous: bool = False
    trusted_user_certificates: Sequence[Path] = field(default_factory=tuple)
    trusted_clients_dir: Path | None = None  # client application certificates (or their CAs) allowed to connect
    publish_interval_s: float = 0.02

    def check(self) -> None:
        """Raise ValueError naming the setting when the server could not offer what is configured."""
        secured = [p for p in self.security_policies if p != "None"]
        if secured and (self.certificate is None or self.private_key is None):
            raise ValueError(
                f"io.opcua.securityPolicies {', '.join(secured)} need the server certificate and key "
                "(tls.crt and tls.key: --opcua-cert-dir, or the certificateSecretRef Secret in a pod)"
            )
        for path in (self.certificate, self.private_key):
            if path is not None and not path.is_file():
                raise ValueError(f"io.opcua: {path} not found")


class OpcUaServer:
    def __init__(
        self,
        config: OpcUaConfig,
        snapshot: Callable[[], Snapshot],
        writes: WriteSink,
        on_sessions: Callable[[int], None] | None = None,
        writes_allowed: Callable[[], bool] | None = None,
    ) -> None:
        self.config = config
        self._snapshot = snapshot
        self._writes = writes
        self._on_sessions = on_sessions
        # False while this runtime does not drive the process (fenced, or waiting for its lock): writes refused.
        self._writes_allowed = writes_allowed
        self._server: Server | None = None
        self._nodes: dict[str, tuple[ua.NodeId, ua.VariantType]] = {}
        self._by_nodeid: dict[ua.NodeId, str] = {}
        self._published: dict[str, Any] = {}
        self._task: asyncio.Task[None] | None = None
        self.namespace_index = 0

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://{self.config.host}:{self.config.port}/shopfloor/"

    async def start(self) -> None:
        config = self.config
        user_manager = None
        if config.trusted_user_certificates:
            user_manager = CertificateUserManager()
            for path in config.trusted_user_certificates:
                await user_manager.add_user(path, name=path.stem)
        # Sessions only on the configured policies; client certificates checked at OpenSecureChannel.
        server = ChannelGuardedServer(user_manager=cast(UserManager | None, user_manager))
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name(f"Shopfloor vPLC {config.program}")
        server.set_security_policy(security_policies(list(config.security_policies)))
        config.check()
        if config.certificate is not None and config.private_key is not None:
            await server.load_certificate(config.certificate.read_bytes(), format=_format_of(config.certificate))
            await server.load_private_key(config.private_key.read_bytes(), format=_format_of(config.private_key))
            # OPC UA requires the server's ApplicationUri to be the URI in its certificate; clients check it.
            uri = _certificate_uri(server.iserver.certificate)
            if uri:
                await server.set_application_uri(uri)
        if config.trusted_clients_dir is not None:
            trust = TrustStore([config.trusted_clients_dir], [])
            await trust.load()
            checks = CertificateValidatorOptions
            validator = CertificateValidator(checks.TIME_RANGE | checks.TRUSTED | checks.PEER_CLIENT, trust)
            server.set_certificate_validator(validator)
        tokens: list[type] = [ua.X509IdentityToken] if user_manager is not None else []
        if config.allow_anonymous:
            tokens.append(ua.AnonymousIdentityToken)
        server.set_identity_tokens(tokens)
        self.namespace_index = await server.register_namespace(NAMESPACE_URI)
        await self._build_address_space(server)
        server.subscribe_server_callback(CallbackType.PreWrite, self._client_writing)
        server.subscribe_server_callback(CallbackType.PostWrite, self._client_wrote)
        await server.start()
        self._server = server
        await self.publish_once()
        self._task = asyncio.create_task(self._publish_forever(), name="opcua-publish")

    async def _build_address_space(self, server: Server) -> None:
        ns = self.namespace_index
        folder = await server.nodes.objects.add_folder(
            ua.NodeId(ua.String(self.config.program), ua.Int16(ns)), ua.QualifiedName(self.config.program, ns)
        )
        writable = {name.casefold() for name in self.config.writable}
        for name, type_name in self.config.variables:
            vtype = variant_type(type_name)
            initial = ua.Variant(ua.get_default_value(vtype), vtype)
            node = await folder.add_variable(
                ua.NodeId(ua.String(name), ua.Int16(ns)), ua.QualifiedName(name, ns), initial, varianttype=vtype
            )
            if name.casefold() in writable:
                await node.set_writable()
            self._nodes[name] = (node.nodeid, vtype)
            self._by_nodeid[node.nodeid] = name

    async def _client_writing(self, event: ServerItemCallback, _dispatcher: Any = None) -> None:
        """Before the address space changes: a runtime that does not drive the process refuses the whole Write.

        Only clients' writes: asyncua's own writes (server status at start, its clock every second) go through the
        same callback and must not be refused, or a runtime waiting for its lock could not start its server."""
        if event.is_external and self._writes_allowed is not None and not self._writes_allowed():
            raise ServiceError(ua.StatusCodes.BadInvalidState)

    async def _client_wrote(self, event: ServerItemCallback, _dispatcher: Any = None) -> None:
        results = event.response_params or []
        for item, status in zip(event.request_params.NodesToWrite, results, strict=False):
            name = self._by_nodeid.get(item.NodeId)
            if name is None or item.AttributeId != ua.AttributeIds.Value or not status.is_good():
                continue
            with contextlib.suppress(WriteRefused):  # the lock ran out between the check and the write
                self._writes.put(name, item.Value.Value.Value)

    async def publish_once(self) -> None:
        server = self._server
        if server is None:
            return
        values = self._snapshot().values
        for name, (nodeid, vtype) in self._nodes.items():
            value = values.get(name)
            if value is None or self._published.get(name, _UNSET) == value:
                continue
            self._published[name] = value
            await server.write_attribute_value(nodeid, ua.DataValue(ua.Variant(value, vtype)))
        if self._on_sessions is not None:
            self._on_sessions(len(server.iserver._external_sessions))

    async def _publish_forever(self) -> None:
        last_seq = -1
        while True:
            snapshot = self._snapshot()
            if snapshot.seq != last_seq:
                last_seq = snapshot.seq
                try:
                    await self.publish_once()
                except Exception as exc:  # a value the type cannot carry must not stop publishing the others
                    log.error("OPC UA publish failed: %s", exc)
            await asyncio.sleep(self.config.publish_interval_s)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._server is not None:
            await self._server.stop()
            self._server = None


_UNSET = object()


def _format_of(path: Path) -> str:
    """Secrets hold PEM (tls.crt, tls.key); OPC UA tools often write DER: tell them apart by content."""
    return "pem" if path.read_bytes().lstrip().startswith(b"-----BEGIN") else "der"


def _certificate_uri(certificate: Any) -> str | None:
    """The application URI in a certificate's subject alternative names, if it has one."""
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, AttributeError):
        return None
    uris = names.get_values_for_type(x509.UniformResourceIdentifier)
    return str(uris[0]) if uris else None
