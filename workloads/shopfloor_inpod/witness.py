"""The runtime's side of the witness: ask the operator whether it can reach the API server (docs/failover.md).

Only asked when a renewal failed. A runtime that cannot renew cannot tell on its own whether its node is cut off
(then a replacement may be started elsewhere and it must stop driving) or the API server is down for everyone (then
nothing can replace it and stopping would halt a healthy plant). The operator is the only one that can start a
replacement, so its answer decides: "unreachable" extends the runtime's deadline; no answer, or "reachable", does not.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import aiohttp

from shopfloor_api.runtime_contract import WITNESS_API_REACHABLE
from shopfloor_inpod.endpoints import resolve
from shopfloor_inpod.lease import Witness


def witness_client(url: str, timeout_s: float) -> Witness:
    """A coroutine function returning the operator's answer: True/False, or None when there is none."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"witness URL {url!r}: expected http://host:port/path")
    default_port = 443 if parts.scheme == "https" else 80

    async def ask() -> bool | None:
        # Resolved at every call, like a DNS lookup (the local edge site rewrites its endpoint map).
        host, port = resolve(parts.hostname or "", parts.port or default_port)
        target = urlunsplit((parts.scheme, f"{host}:{port}", parts.path or "/", parts.query, ""))
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session,
                session.get(target) as response,
            ):
                if response.status != 200:
                    return None
                answer = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError, OSError):
            return None
        value = answer.get(WITNESS_API_REACHABLE) if isinstance(answer, dict) else None
        return value if isinstance(value, bool) else None

    return ask
