"""Operator endpoints (role admin). More arrive with withdrawals, deposits and disputes."""

from __future__ import annotations

from aiohttp import web

from meterchat.accounts.auth import require_role
from meterchat.appkeys import DB
from meterchat.money import ledger


async def audit(request: web.Request) -> web.Response:
    await require_role(request, "admin")
    report = await request.app[DB].read(ledger.audit)
    return web.json_response(report.as_dict())


def setup(app: web.Application) -> None:
    app.router.add_get("/api/admin/audit", audit)
