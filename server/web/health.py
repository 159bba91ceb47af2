"""GET /api/health: the database (503 and ok false when it fails) and the chain node (its
solidified block through the gateway, with a short timeout; a node that does not answer is
reported as "unreachable" without failing the check: the server still serves calls).

The chain reading is shared: however many clients ask, the node is read at most once per
`operator.health_chain_cache_s` (one read at a time, the others wait for it), so /api/health
cannot spend the node quota the deposit watcher needs."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from meterchat.appkeys import CONFIG, DB
from meterchat.chain.gateway import ChainError
from meterchat.chain_ctx import GATEWAY
from meterchat.core import logs

log = logging.getLogger("meterchat.health")


# What /api/health says of the chain: {"solidified_block": n}, or "unreachable".
Reading = dict[str, int] | str


class ChainReading:
    """The node's answer for /api/health, reused for `max_age_s` (an "unreachable" too, so a
    dead node is not asked again by every request)."""

    def __init__(self, read: Callable[[], Awaitable[int] | None], timeout_s: float,
                 max_age_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.read = read
        self.timeout_s = timeout_s
        self.max_age_s = max_age_s
        self.clock = clock
        self._value: Reading | None = None
        self._at: float | None = None
        self._lock = asyncio.Lock()

    def _fresh(self) -> Reading | None:
        if self._at is not None and self.clock() - self._at < self.max_age_s:
            return self._value
        return None

    async def get(self) -> Reading:
        if (fresh := self._fresh()) is not None:
            return fresh
        async with self._lock:
            if (fresh := self._fresh()) is not None:  # read by another request meanwhile
                return fresh
            value = self._value = await self._read()
            self._at = self.clock()
            return value

    async def _read(self) -> Reading:
        pending = self.read()
        if pending is None:
            return "unreachable"
        try:
            async with asyncio.timeout(self.timeout_s):
                return {"solidified_block": await pending}
        except (TimeoutError, ChainError):
            return "unreachable"


CHAIN_READING = web.AppKey("health_chain_reading", ChainReading)


async def health(request: web.Request) -> web.Response:
    app = request.app
    body: dict[str, Any] = {"ok": True, "database": "ok"}
    try:
        await app[DB].fetchone("SELECT 1")
    except Exception as exc:  # whatever broke, the answer is "not healthy", never a 500
        logs.event(log, "health_database_failed", logging.WARNING, error=type(exc).__name__)
        body.update(ok=False, database="unreachable")
    body["chain"] = await app[CHAIN_READING].get()
    return web.json_response(body, status=200 if body["ok"] else 503)


def setup(app: web.Application) -> None:
    cfg = app[CONFIG].operator

    def read() -> Awaitable[int] | None:
        gateway = app.get(GATEWAY)
        return gateway.solidified_block_number() if gateway is not None else None

    app[CHAIN_READING] = ChainReading(read, cfg.health_chain_timeout_s, cfg.health_chain_cache_s)
    app.router.add_get("/api/health", health)
