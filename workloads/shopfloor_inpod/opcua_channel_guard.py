"""OPC UA servers that hold clients to the secure channels they offer (shared by the vPLC runtime and the bridge).

asyncua 2.1.0 advertises only the configured security policies, but it does not hold clients to them:

- a channel opened with SecurityPolicy None is accepted even when None is not offered (asyncua falls back to its
  initial None policy when no configured one matches, so that discovery works), and nothing checks the channel at
  CreateSession or ActivateSession: a client could create, activate and use a session in clear text;
- the client certificate is checked (by the server's certificate validator) only at CreateSession, so an untrusted
  client still opens a secure channel.

`ChannelGuardedServer` is an asyncua `Server` whose connections are handled by `ChannelGuardProcessor`:

- OpenSecureChannel (ERR message, then the connection is closed: the channel never opens): a secured policy the
  server does not offer gets BadSecurityPolicyRejected, an offered policy in a mode it is not offered in
  BadSecurityModeRejected (asyncua would not answer at all). The client certificate goes through the server's
  certificate validator before anything else (OPC 10000-4 §5.5.2, OPC 10000-6 §6.7.6); a refused certificate gets
  the validator's status code (BadCertificateUntrusted, BadCertificateTimeInvalid, ...), and a missing or
  unreadable one, or a validator that fails, BadSecurityChecksFailed. A None channel always opens, for discovery.
- On a channel whose security policy and message security mode are not those of an endpoint the server offers
  (in practice: a None channel when None is not configured), only discovery is answered (GetEndpoints,
  FindServers, CloseSecureChannel). Every other request, CreateSession and ActivateSession first, gets a
  ServiceFault BadSecurityPolicyRejected (BadSecurityModeRejected when only the mode differs); with no session,
  no session service (Read, Write, Browse, ...) can be reached either.
- A CreateSession that fails leaves no half-made session behind for a following ActivateSession to activate.

The certificate validator is the one given to `Server.set_certificate_validator`; at OpenSecureChannel there is no
ApplicationDescription yet, so it is called with an empty one for a client application (a validator that checks
the application URI must leave that to CreateSession).
"""

from __future__ import annotations

import functools
import logging
import socket
from typing import Any, cast

from asyncua import Server, ua
from asyncua.common.utils import ServiceError
from asyncua.crypto import uacrypto
from asyncua.crypto.security_policies import SecurityPolicyNone
from asyncua.server.binary_server_asyncio import BinaryServer, OPCUAProtocol
from asyncua.server.uaprocessor import UaProcessor
from asyncua.ua.ua_binary import struct_from_binary, uatcp_to_binary

log = logging.getLogger(__name__)

NONE_POLICY_URI = SecurityPolicyNone.URI

# What a client may ask on a channel the server does not offer: find the endpoints, or leave.
_DISCOVERY_REQUESTS = frozenset(
    ua.NodeId(ua.Int32(identifier))
    for identifier in (
        ua.ObjectIds.GetEndpointsRequest_Encoding_DefaultBinary,
        ua.ObjectIds.FindServersRequest_Encoding_DefaultBinary,
        ua.ObjectIds.FindServersOnNetworkRequest_Encoding_DefaultBinary,
        ua.ObjectIds.CloseSecureChannelRequest_Encoding_DefaultBinary,
    )
)
_CREATE_SESSION = ua.NodeId(ua.Int32(ua.ObjectIds.CreateSessionRequest_Encoding_DefaultBinary))
_ERROR = cast(ua.MessageType, ua.MessageType.Error)


def _request_name(typeid: ua.NodeId) -> str:
    name = ua.ObjectIdNames.get(typeid.Identifier) if isinstance(typeid.Identifier, int) else None
    return name.removesuffix("_Encoding_DefaultBinary") if name else str(typeid)


def offered_channels(endpoints: list[ua.EndpointDescription]) -> frozenset[tuple[str, ua.MessageSecurityMode]]:
    """(security policy URI, message security mode) of every endpoint a server offers."""
    return frozenset((e.SecurityPolicyUri, e.SecurityMode) for e in endpoints)


def channel_refusal(
    policy_uri: str, mode: ua.MessageSecurityMode, offered: frozenset[tuple[str, ua.MessageSecurityMode]]
) -> int | None:
    """The status code refusing a request on a channel with this policy and mode, or None when it is offered."""
    if (policy_uri, mode) in offered:
        return None
    if any(uri == policy_uri for uri, _ in offered):
        return ua.StatusCodes.BadSecurityModeRejected
    return ua.StatusCodes.BadSecurityPolicyRejected


class _ChannelRefused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = ua.StatusCode(ua.UInt32(status))


class ChannelGuardProcessor(UaProcessor):
    """asyncua's UaProcessor, holding one client connection to the channels its server offers (module docstring)."""

    @functools.cached_property
    def _offered(self) -> frozenset[tuple[str, ua.MessageSecurityMode]]:
        return offered_channels(self.iserver.endpoints)  # final: processors exist only once the server started

    async def process(self, header: Any, body: Any) -> bool:
        try:
            if header.MessageType == ua.MessageType.SecureOpen and not self._connection.is_open():
                await self._check_channel_request(body.copy(header.body_size))
            return bool(await super().process(header, body))
        except _ChannelRefused as refused:
            log.warning("OPC UA: OpenSecureChannel from %s refused (%s): %s", self.name, refused.status.name, refused)
            message = ua.ErrorMessage(refused.status, ua.String(str(refused)))
            self._transport.write(uatcp_to_binary(_ERROR, message))
            return False  # asyncua closes the connection

    async def _check_channel_request(self, data: Any) -> None:
        """Refuses an OpenSecureChannel (Issue) from its asymmetric security header, which is in clear text.

        Per OPC 10000-6 §6.7.6 the certificate is checked for trust first; asyncua then checks the signature and
        decrypts as usual (and open_secure_channel below checks the requested mode)."""
        try:
            header = struct_from_binary(ua.AsymmetricAlgorithmHeader, data)
        except Exception:
            raise _ChannelRefused(ua.StatusCodes.BadSecurityChecksFailed, "unreadable security header") from None
        uri = header.SecurityPolicyURI
        if uri == NONE_POLICY_URI:
            return  # discovery; sessions are refused on it unless None is offered
        if uri not in {offered_uri for offered_uri, _ in self._offered}:
            raise _ChannelRefused(ua.StatusCodes.BadSecurityPolicyRejected, f"security policy {uri} is not offered")
        validator = self.iserver.certificate_validator
        if validator is None:
            return
        try:
            certificate = uacrypto.x509_from_der(header.SenderCertificate)
        except ValueError:
            certificate = None
        if certificate is None:
            raise _ChannelRefused(ua.StatusCodes.BadSecurityChecksFailed, "no readable client certificate")
        try:
            await validator(certificate, ua.ApplicationDescription(ApplicationType=ua.ApplicationType.Client))
        except (ServiceError, ua.UaStatusCodeError) as refused:
            raise _ChannelRefused(refused.code, f"client certificate {certificate.subject.rfc4514_string()}") from None
        except Exception as failed:  # a validator that breaks must not let the client in
            log.exception("OPC UA: certificate validator failed")
            raise _ChannelRefused(ua.StatusCodes.BadSecurityChecksFailed, "certificate check failed") from failed

    def open_secure_channel(self, algohdr: Any, seqhdr: Any, body: Any) -> None:
        # The requested mode is in the (decrypted) request. asyncua raises on a mode it has no policy for, without
        # answering the client; answer BadSecurityModeRejected instead. None/None is discovery, always opened.
        if not self._connection.is_open():
            mode = struct_from_binary(ua.OpenSecureChannelRequest, body.copy()).Parameters.SecurityMode
            uri = algohdr.SecurityPolicyURI
            if not (uri == NONE_POLICY_URI and mode == ua.MessageSecurityMode.None_):
                refusal = channel_refusal(uri, mode, self._offered)
                if refusal is not None:
                    raise _ChannelRefused(refusal, f"security mode {mode.name} is not offered with {uri}")
        super().open_secure_channel(algohdr, seqhdr, body)

    async def _process_message(self, typeid: ua.NodeId, requesthdr: Any, seqhdr: Any, body: Any) -> Any:
        if typeid not in _DISCOVERY_REQUESTS:
            policy = self._connection.security_policy
            refusal = channel_refusal(policy.URI, policy.Mode, self._offered)
            if refusal is not None:
                log.warning(
                    "OPC UA: %s from %s refused (%s): the channel's security policy %s, mode %s, is not offered",
                    _request_name(typeid),
                    self.name,
                    ua.StatusCode(ua.UInt32(refusal)).name,
                    policy.URI.rsplit("#", 1)[-1],
                    policy.Mode.name,
                )
                raise ServiceError(refusal)  # answered as a ServiceFault by UaProcessor.process_message
        if typeid != _CREATE_SESSION:
            return await super()._process_message(typeid, requesthdr, seqhdr, body)
        try:
            return await super()._process_message(typeid, requesthdr, seqhdr, body)
        except Exception:
            # asyncua keeps the session it made before the check that failed (e.g. the certificate validator);
            # an ActivateSession must not find it.
            if self.session is not None and not self.session.is_activated():
                session, self.session = self.session, None
                await session.close_session(True)
            raise


class _GuardedProtocol(OPCUAProtocol):
    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        if self.processor is not None:  # None when asyncua refused the connection (max_connections)
            # asyncua made a plain UaProcessor; no message has reached it yet (they are processed by a task).
            processor = ChannelGuardProcessor(self.iserver, self.transport, self.limits)
            processor.set_policies(self.policies)
            self.processor = processor


class _GuardedBinaryServer(BinaryServer):
    def _make_protocol(self) -> OPCUAProtocol:
        return _GuardedProtocol(
            iserver=self.iserver,
            policies=self._policies,
            clients=self.clients,
            closing_tasks=self.closing_tasks,
            limits=self.limits,
        )


class ChannelGuardedServer(Server):
    """An asyncua Server whose client connections go through ChannelGuardProcessor (module docstring)."""

    async def start(self) -> None:
        # asyncua 2.1.0's Server.start(), except for the BinaryServer. asyncua builds it inline, and its protocol
        # makes a UaProcessor in connection_made(), with no factory to hand in; patching either module would change
        # every asyncua server in the process. Subclassing here changes this server only. Re-read Server.start()
        # when upgrading asyncua.
        if self.iserver.certificate is not None:
            uacrypto.check_certificate(self.iserver.certificate, self._application_uri, socket.gethostname())
        await self._setup_server_nodes()
        await self.iserver.start()
        try:
            host, port = self._get_bind_socket_info()
            self.bserver = _GuardedBinaryServer(self.iserver, host, port, self.limits)  # type: ignore[arg-type]
            self.bserver.set_policies(self._policies)
            await self.bserver.start()
        except Exception:
            log.exception("OPC UA server failed to start")
            await self.iserver.stop()
            raise
