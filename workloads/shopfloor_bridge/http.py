"""/metrics, /healthz and /readyz over aiohttp (HTTP probes, never exec probes)."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shopfloor_bridge.metrics import BridgeMetrics
from shopfloor_bridge.state import Health


class HealthServer:
    def __init__(self, health: Health, metrics: BridgeMetrics, host: str, port: int) -> None:
        self.health = health
        self.metrics = metrics
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:  # an ephemeral port was asked for: report the one the OS chose
            server = site._server
            assert server is not None
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _metrics(self, _request: web.Request) -> web.Response:
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, _request: web.Request) -> web.Response:
        ok = self.health.live
        return web.Response(status=200 if ok else 503, text=f"{self.health.state}\n")

    async def _readyz(self, _request: web.Request) -> web.Response:
        not_ready = " ".join(self.health.sinks_not_ready())
        text = "ready\n" if self.health.ready else f"not ready: {self.health.state} {not_ready}\n"
        return web.Response(status=200 if self.health.ready else 503, text=text)
