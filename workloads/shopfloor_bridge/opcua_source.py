"""Subscribes to the nodes of one OPC UA server (asyncua) and writes back to them.

Monitored items, not polling: the server reports changes at the sampling interval. Each connection reads the
nodes' data types first (the bridge publishes them, e.g. as Sparkplug datatypes), then subscribes. A failed keep-alive
or a server restart turns the tags bad; the source reconnects with backoff and subscribes again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from asyncua import Client, Node, ua
from asyncua.common.subscription import DataChangeNotif
from asyncua.crypto import security_policies, uacrypto

from shopfloor_bridge.metrics import BridgeMetrics
from shopfloor_bridge.modbus_source import Emit, WriteError
from shopfloor_bridge.tags import DataType, Quality, TagValue, Value, now_ms
from shopfloor_inpod.endpoints import resolve

log = logging.getLogger(__name__)

APPLICATION_URI = "urn:shopfloor:bridge"

_FROM_VARIANT = {
    ua.VariantType.Boolean: DataType.BOOL,
    ua.VariantType.SByte: DataType.INT,
    ua.VariantType.Int16: DataType.INT,
    ua.VariantType.Byte: DataType.UINT,
    ua.VariantType.UInt16: DataType.UINT,
    ua.VariantType.Int32: DataType.DINT,
    ua.VariantType.Int64: DataType.DINT,
    ua.VariantType.UInt32: DataType.UDINT,
    ua.VariantType.UInt64: DataType.UDINT,
    ua.VariantType.Float: DataType.REAL,
    ua.VariantType.Double: DataType.REAL,
}


@dataclass(frozen=True)
class OpcUaSecurity:
    """A security policy as named in the API (e.g. Basic256Sha256_SignAndEncrypt) and the client's certificate."""

    policy: str
    certificate: Path
    private_key: Path
    server_certificate: Path | None = None

    async def apply(self, client: Client) -> None:
        name, _, mode = self.policy.rpartition("_")
        policy = getattr(security_policies, "SecurityPolicy" + name.replace("_", ""), None)
        if policy is None or mode not in ("Sign", "SignAndEncrypt"):
            raise ValueError(f"securityPolicy: unsupported {self.policy!r}")
        await client.set_security(
            policy,
            certificate_file(self.certificate),
            certificate_file(self.private_key),
            server_certificate=certificate_file(self.server_certificate) if self.server_certificate else None,
            mode=getattr(ua.MessageSecurityMode, mode),
        )


def certificate_file(path: Path) -> uacrypto.CertProperties:
    """A certificate or key file, PEM or DER by content (Secrets name them tls.crt/tls.key, not .pem/.der)."""
    with path.open("rb") as f:
        pem = f.read(11) == b"-----BEGIN "
    return uacrypto.CertProperties(path, extension="pem" if pem else "der")


@dataclass(frozen=True)
class OpcUaDevice:
    name: str
    url: str
    nodes: dict[str, str]  # tag name -> node id
    sampling_interval: float
    security: OpcUaSecurity | None = None
    timeout: float = 4.0
    backoff: tuple[float, float] = (0.2, 5.0)


def resolve_url(url: str) -> str:
    """The endpoint URL with host and port resolved through the site's endpoint map (if any)."""
    parts = urlsplit(url)
    if parts.hostname is None:
        return url
    host, port = resolve(parts.hostname, parts.port or 4840)
    return urlunsplit(parts._replace(netloc=f"[{host}]:{port}" if ":" in host else f"{host}:{port}"))


TypesFound = Callable[[dict[str, DataType]], None]


def to_value(datatype: DataType, raw: Any) -> Value:
    if datatype is DataType.BOOL:
        return bool(raw)
    if datatype is DataType.REAL:
        return float(raw)
    return int(raw)


class OpcUaSource:
    def __init__(self, device: OpcUaDevice, emit: Emit, metrics: BridgeMetrics, on_types: TypesFound) -> None:
        self.device = device
        self._emit = emit
        self._metrics = metrics
        self._on_types = on_types
        self._client: Client | None = None
        self._types: dict[str, DataType] = dict.fromkeys(device.nodes, DataType.REAL)
        self._variant: dict[str, ua.VariantType] = {}
        self._by_node: dict[str, str] = {}

    async def run(self) -> None:
        delay = self.device.backoff[0]
        connected = self._metrics.source_connected.labels(self.device.name)
        while True:
            client = Client(resolve_url(self.device.url), timeout=self.device.timeout)
            client.application_uri = APPLICATION_URI
            try:
                if self.device.security is not None:
                    await self.device.security.apply(client)
                await client.connect()
                self._client = client
                await self._subscribe(client)
                connected.set(1)
                delay = self.device.backoff[0]
                while True:
                    await asyncio.sleep(min(1.0, self.device.timeout / 2))
                    await client.check_connection()
            except (OSError, TimeoutError, ua.UaError, ConnectionError) as exc:
                self._metrics.polls.labels(self.device.name, "error").inc()
                log.warning("OPC UA source %s: %s; reconnecting in %.1fs", self.device.name, exc, delay)
                self._emit([TagValue(name, None, Quality.BAD) for name in self.device.nodes])
            except Exception:  # whatever the server or the stack throws, keep the bridge running and retry
                self._metrics.polls.labels(self.device.name, "error").inc()
                log.exception("OPC UA source %s: unexpected failure; reconnecting in %.1fs", self.device.name, delay)
                self._emit([TagValue(name, None, Quality.BAD) for name in self.device.nodes])
            finally:
                self._client = None
                connected.set(0)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.disconnect(), 2)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.device.backoff[1])

    async def _subscribe(self, client: Client) -> None:
        nodes: list[Node] = []
        for name, node_id in self.device.nodes.items():
            node = client.get_node(node_id)
            variant = await node.read_data_type_as_variant_type()
            self._variant[name] = variant
            self._types[name] = _FROM_VARIANT.get(variant, DataType.REAL)
            self._by_node[node.nodeid.to_string()] = name
            nodes.append(node)
        self._on_types(dict(self._types))
        subscription = await client.create_subscription(self.device.sampling_interval * 1000, self)
        await subscription.subscribe_data_change(
            nodes, sampling_interval=ua.Double(self.device.sampling_interval * 1000)
        )

    # asyncua's subscription handler interface
    def datachange_notification(self, node: Node, val: Any, data: DataChangeNotif) -> None:
        name = self._by_node.get(node.nodeid.to_string())
        if name is None:
            return
        datavalue = data.monitored_item.Value
        timestamp = datavalue.SourceTimestamp
        source_ms = int(timestamp.timestamp() * 1000) if timestamp is not None else now_ms()
        status = datavalue.StatusCode
        good = (status is None or status.is_good()) and val is not None
        try:
            value = to_value(self._types[name], val) if good else None
        except (TypeError, ValueError):
            good, value = False, None
        self._metrics.polls.labels(self.device.name, "ok").inc()
        self._emit([TagValue(name, value, Quality.GOOD if good else Quality.BAD, source_ms)])

    def status_change_notification(self, status: Any) -> None:
        log.info("OPC UA source %s: subscription status %s", self.device.name, status)

    async def write(self, name: str, value: Value) -> None:
        node_id = self.device.nodes.get(name)
        if node_id is None:
            raise WriteError(f"{name}: not a node of OPC UA source {self.device.name}")
        client = self._client
        if client is None or name not in self._variant:
            raise WriteError(f"{name}: OPC UA source {self.device.name} is not connected")
        try:
            variant = ua.Variant(to_value(self._types[name], value), self._variant[name])
            await client.get_node(node_id).write_value(ua.DataValue(variant))
        except (ua.UaError, OSError, TimeoutError, ValueError, TypeError) as exc:
            raise WriteError(f"{name}: {exc}") from exc
