"""GET /api/health: the database (503 and ok false when it fails) and the chain node (its
solidified block through the gateway, with a short timeout; a node that does not answer is
reported as "unreachable" without failing the check: the server still serves calls)."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from chain.gateway import ChainError
from server import logs
from server.appkeys import CONFIG, DB
from server.chain_ctx import GATEWAY

log = logging.getLogger("meterchat.health")


async def health(request: web.Request) -> web.Response:
    app = request.app
    body: dict = {"ok": True, "database": "ok"}
    try:
        await app[DB].fetchone("SELECT 1")
    except Exception as exc:  # whatever broke, the answer is "not healthy", never a 500
        logs.event(log, "health_database_failed", logging.WARNING, error=type(exc).__name__)
        body.update(ok=False, database="unreachable")
    gateway = app.get(GATEWAY)
    if gateway is None:
        body["chain"] = "unreachable"
    else:
        try:
            async with asyncio.timeout(app[CONFIG].operator.health_chain_timeout_s):
                body["chain"] = {"solidified_block": await gateway.solidified_block_number()}
        except (TimeoutError, ChainError):
            body["chain"] = "unreachable"
    return web.json_response(body, status=200 if body["ok"] else 503)


def setup(app: web.Application) -> None:
    app.router.add_get("/api/health", health)
