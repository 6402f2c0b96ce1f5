"""The OPC UA server sink: every bridged tag as a variable, quality as its status code, writes gated.

Variables live in namespace `urn:shopfloor:bridge` with string node ids equal to the tag name (`<source>/<tag>`),
organised in one folder per source. Values are written by one task that always takes the newest value of each tag,
so a slow address space never holds up the sources. Only tags in writes.allow are writable; a client write to them
is forwarded to the source, other writes are refused by the server and counted. Sessions are refused on any channel
but the configured policies, untrusted client certificates at OpenSecureChannel (shopfloor_inpod.opcua_channel_guard).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from asyncua import Node, Server, ua
from asyncua.common.callback import CallbackType, ServerItemCallback
from asyncua.common.utils import ServiceError
from cryptography import x509
from cryptography.exceptions import InvalidSignature

from shopfloor_bridge.metrics import BridgeMetrics
from shopfloor_bridge.opcua_source import certificate_file, to_value
from shopfloor_bridge.tags import DataType, Quality, TagTable, TagValue
from shopfloor_bridge.writes import WriteGate
from shopfloor_inpod.opcua_channel_guard import ChannelGuardedServer
from shopfloor_inpod.opcua_policies import SECURITY_POLICIES, security_policies

log = logging.getLogger(__name__)

NAMESPACE = "urn:shopfloor:bridge"
_VARIANT = {
    DataType.BOOL: ua.VariantType.Boolean,
    DataType.INT: ua.VariantType.Int16,
    DataType.UINT: ua.VariantType.UInt16,
    DataType.DINT: ua.VariantType.Int32,
    DataType.UDINT: ua.VariantType.UInt32,
    DataType.REAL: ua.VariantType.Float,
}


@dataclass(frozen=True)
class OpcUaServerSettings:
    port: int
    host: str = "0.0.0.0"
    policies: Sequence[str] = ("Basic256Sha256_SignAndEncrypt",)
    certificate: Path | None = None
    private_key: Path | None = None
    trusted_clients: Path | None = None  # PEM bundle (or one DER) of client certificates or the CAs that issue them
    allow_anonymous: bool = False
    sources: dict[str, list[str]] = field(default_factory=dict)  # source name -> its tag names

    def __post_init__(self) -> None:
        unknown = [p for p in self.policies if p not in SECURITY_POLICIES]
        if unknown:
            raise ValueError(f"sinks.opcua.securityPolicies: unknown policy {unknown[0]!r}")
        secured = any(p != "None" for p in self.policies)
        if secured and (self.certificate is None or self.private_key is None):
            raise ValueError(
                "sinks.opcua.certificateSecretRef: a certificate and key are needed unless the policy is None"
            )


class ClientTrustList:
    """Accepts a client certificate listed in the file, or issued by a CA certificate listed there, while valid."""

    def __init__(self, path: Path) -> None:
        data = path.read_bytes()
        if b"-----BEGIN" in data:
            self.trusted = x509.load_pem_x509_certificates(data)
        else:
            self.trusted = [x509.load_der_x509_certificate(data)]

    def trusts(self, cert: x509.Certificate) -> bool:
        now = datetime.now(UTC)
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            return False
        for anchor in self.trusted:
            if anchor == cert:
                return True
            with contextlib.suppress(ValueError, TypeError, InvalidSignature):
                cert.verify_directly_issued_by(anchor)
                return True
        return False

    async def validate(self, cert: x509.Certificate, _app: ua.ApplicationDescription) -> None:
        if not self.trusts(cert):
            log.warning("OPC UA server: refused untrusted client certificate %s", cert.subject.rfc4514_string())
            raise ServiceError(ua.StatusCodes.BadCertificateUntrusted)


class OpcUaServerSink:
    def __init__(self, settings: OpcUaServerSettings, table: TagTable, gate: WriteGate, metrics: BridgeMetrics) -> None:
        self.settings = settings
        self.table = table
        self.gate = gate
        self.metrics = metrics
        # Sessions only on the configured policies; client certificates checked at OpenSecureChannel.
        self.server: Server = ChannelGuardedServer()
        self._variables: dict[str, Node] = {}
        self._types: dict[str, DataType] = {}
        self._by_node: dict[ua.NodeId, str] = {}
        self._pending: dict[str, TagValue] = {}
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://{self.settings.host}:{self.settings.port}/shopfloor/bridge"

    async def start(self) -> None:
        server = self.server
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name("Shopfloor protocol bridge")
        await server.set_application_uri(NAMESPACE)
        server.set_security_policy(security_policies(list(self.settings.policies)))
        if self.settings.certificate is not None and self.settings.private_key is not None:
            cert, key = certificate_file(self.settings.certificate), certificate_file(self.settings.private_key)
            await server.load_certificate(cert.path_or_content, format=cert.extension)
            await server.load_private_key(key.path_or_content, format=key.extension)
        # Without a user database, a session proves who it is with a certificate; anonymous only when allowed.
        server.set_identity_tokens(
            [ua.AnonymousIdentityToken if self.settings.allow_anonymous else ua.X509IdentityToken]
        )
        if self.settings.trusted_clients is not None:
            server.set_certificate_validator(ClientTrustList(self.settings.trusted_clients).validate)
        elif any(p != "None" for p in self.settings.policies):
            log.warning("OPC UA server: no trusted client list (ca.crt): any client certificate is accepted")
        namespace = await server.register_namespace(NAMESPACE)
        for source, names in self.settings.sources.items():
            folder = await server.nodes.objects.add_folder(
                ua.NodeId(ua.String(source), ua.Int16(namespace)), ua.QualifiedName(source, namespace)
            )
            for name in names:
                await self._add_variable(folder, namespace, name)
        server.subscribe_server_callback(CallbackType.PostWrite, self._after_client_write)
        await server.start()
        self._writer = asyncio.create_task(self._write_pending())

    async def _add_variable(self, folder: Node, namespace: int, name: str) -> None:
        datatype = self.table.info[name].datatype
        node_id = ua.NodeId(ua.String(name), ua.Int16(namespace))
        browse_name = ua.QualifiedName(name.split("/", 1)[-1], namespace)
        initial = ua.Variant(to_value(datatype, 0), _VARIANT[datatype])
        variable = await folder.add_variable(node_id, browse_name, initial, _VARIANT[datatype])
        await variable.write_attribute(
            ua.AttributeIds.Value,
            ua.DataValue(StatusCode=ua.StatusCode(ua.UInt32(ua.StatusCodes.BadWaitingForInitialData))),
        )
        if self.gate.allowed(name):
            await variable.set_writable()
        self._variables[name] = variable
        self._types[name] = datatype
        self._by_node[node_id] = name

    def update(self, changes: Sequence[TagValue]) -> None:
        """Queues the newest value of each changed tag for the address space."""
        for change in changes:
            if change.name in self._variables:
                self._pending[change.name] = change
        self._wake.set()

    async def _write_pending(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            pending, self._pending = self._pending, {}
            for name, change in pending.items():
                await self.server.write_attribute_value(self._variables[name].nodeid, self._datavalue(name, change))

    def _datavalue(self, name: str, change: TagValue) -> ua.DataValue:
        timestamp = cast(ua.DateTime, datetime.fromtimestamp(change.source_ms / 1000, UTC))
        if change.quality is Quality.GOOD and change.value is not None:
            variant = ua.Variant(to_value(self._types[name], change.value), _VARIANT[self._types[name]])
            return ua.DataValue(variant, SourceTimestamp=timestamp)
        return ua.DataValue(
            StatusCode=ua.StatusCode(ua.UInt32(ua.StatusCodes.BadNoCommunication)), SourceTimestamp=timestamp
        )

    async def _after_client_write(self, event: ServerItemCallback, _dispatcher: Any) -> None:
        if not event.is_external:
            return
        for item, status in zip(event.request_params.NodesToWrite, event.response_params, strict=False):
            name = self._by_node.get(item.NodeId)
            if name is None or item.AttributeId != ua.AttributeIds.Value:
                continue
            if not status.is_good():
                self.metrics.writes.labels("opcua", "refused").inc()
                log.warning("OPC UA client write to %s refused: %s", name, status.name)
                continue
            value = item.Value.Value.Value if item.Value is not None and item.Value.Value is not None else None
            if value is None:
                continue
            task = asyncio.create_task(self.gate.write_many("opcua", {name: value}))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        await self.server.stop()
