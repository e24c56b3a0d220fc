"""The operator's HTTP endpoint, on the bot's own event loop (aiohttp comes with discord.py):

    GET /metrics   Prometheus text exposition of the bot's registry
    GET /healthz   200 {"status": "ok"}: the event loop answers
    GET /readyz    200 or 503 {"status": "ready" | "not ready", "checks": {name: "ok" | why}}

Off unless `metrics.port` is set; bound to `metrics.host` (default 127.0.0.1: the numbers say
how busy the bot is, which is nobody else's business unless the operator opens it up).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import discord
from aiohttp import web

from bot.errors import MetricsServerError
from bot.ops.health import Readiness, readiness, shard_states
from bot.ops.metrics import CONTENT_TYPE_LATEST, Metrics

if TYPE_CHECKING:
    from bot.core.services import Services

log = logging.getLogger(__name__)


async def serve_ops(client: discord.Client, services: Services) -> OpsServer | None:
    """The client's gateway joins the metrics; the endpoint starts when `metrics.port` is set."""
    metrics = services.metrics
    metrics.watch_gateway(lambda: shard_states(client))
    section = services.config.metrics
    if not section.port:
        return None
    server = OpsServer(metrics, lambda: readiness(client, services), section.host, section.port)
    await server.start()
    return server


class OpsServer:
    def __init__(
        self,
        metrics: Metrics,
        readiness: Callable[[], Awaitable[Readiness]],
        host: str,
        port: int,
    ) -> None:
        self.metrics = metrics
        self.readiness = readiness
        self.host = host
        self.port = port
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise MetricsServerError(
                f"Cannot serve metrics on {self.host}:{self.port}: {exc.strerror or exc}."
            ) from exc
        log.info("metrics and health endpoints on http://%s:%d/", self.host, self.port)

    async def close(self) -> None:
        await self._runner.cleanup()

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, request: web.Request) -> web.Response:
        verdict = await self.readiness()
        return web.json_response(
            {"status": "ready" if verdict.ready else "not ready", "checks": dict(verdict.checks)},
            status=200 if verdict.ready else 503,
        )
