"""The witness: tells a runtime that cannot renew its Lease whether the operator can reach the API server.

Only the operator can start a replacement. When it cannot reach the API server either, nobody can, so the runtime
may keep driving (an API outage must not stop a healthy plant); when it can, the runtime is the one cut off and
must fence itself. Answering "unreachable" is a promise: the answer restarts the expiry clock of every Lease
(shopfloor_operator.leases), so no Lease is handed over for a lease period after it. docs/failover.md has the cases.

`GET /witness` → `{"apiReachable": true|false}`. The API server is probed every `PROBE_INTERVAL_S`; a probe that
fails marks the operator blind as well.
"""

from __future__ import annotations

import logging
import threading
import time

from aiohttp import web
from kubernetes import client

from shopfloor_api.runtime_contract import WITNESS_API_REACHABLE, WITNESS_PATH
from shopfloor_operator.leases import LeaseObservations

log = logging.getLogger(__name__)

PROBE_INTERVAL_S = 0.5
PROBE_TIMEOUT_S = 1.0


class ApiProbe:
    """Whether the API server answers, checked in a thread of its own (`/version`, a cheap unauthenticated path)."""

    def __init__(self, api: client.ApiClient, leases: LeaseObservations) -> None:
        self.version_api = client.VersionApi(api)
        self.leases = leases
        self.reachable = False
        self.failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check_once(self) -> bool:
        try:
            self.version_api.get_code(_request_timeout=PROBE_TIMEOUT_S)
        except Exception as error:  # any failure means "cannot act": timeouts, refused, TLS, 5xx
            self.leases.mark_blind()
            self.failures += 1
            if self.reachable or self.failures == 1:
                log.warning("API server unreachable from the operator: %s", getattr(error, "reason", error))
            self.reachable = False
            return False
        if not self.reachable and self.failures:
            log.warning("API server reachable again; Leases are judged from now on")
        self.reachable = True
        return True

    def start(self) -> None:
        self.check_once()
        self._thread = threading.Thread(target=self._loop, name="api-probe", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.check_once()
            self._stop.wait(max(0.0, PROBE_INTERVAL_S - (time.monotonic() - started)))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=PROBE_TIMEOUT_S * 2)


class WitnessServer:
    def __init__(self, probe: ApiProbe, leases: LeaseObservations, port: int, host: str = "0.0.0.0") -> None:
        self.probe, self.leases = probe, leases
        self.host, self.port = host, port
        self.answers = {True: 0, False: 0}
        self._runner: web.AppRunner | None = None

    async def _witness(self, _request: web.Request) -> web.Response:
        reachable = self.probe.reachable
        if not reachable:
            self.leases.mark_blind()  # the promise: no hand-over for a lease period from now
        self.answers[reachable] += 1
        return web.json_response({WITNESS_API_REACHABLE: reachable})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get(WITNESS_PATH, self._witness)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        log.info("witness listening on %s:%d%s", self.host, self.port, WITNESS_PATH)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
