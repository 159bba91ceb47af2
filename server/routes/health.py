"""GET /api/health."""

from __future__ import annotations

from aiohttp import web

from server.appkeys import DB


async def health(request: web.Request) -> web.Response:
    await request.app[DB].fetchone("SELECT 1")
    return web.json_response({"ok": True, "database": "ok"})


def setup(app: web.Application) -> None:
    app.router.add_get("/api/health", health)
