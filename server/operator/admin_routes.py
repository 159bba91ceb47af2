"""Operator endpoints (role admin): the ledger audit, and what the operator finds (user
search, the calls list; a user's page is GET /api/admin/users/{id} in routes.py). Parses the
query, reads through finder.py, answers with finder_views.py."""

from __future__ import annotations

from aiohttp import web

from meterchat.accounts.auth import require_role
from meterchat.appkeys import DB
from meterchat.calls.manager import CALLS
from meterchat.core import validate
from meterchat.money import ledger
from meterchat.operator import finder, finder_views, search_rules


async def audit(request: web.Request) -> web.Response:
    await require_role(request, "admin")
    report = await request.app[DB].read(ledger.audit)
    return web.json_response(report.as_dict())


# -- what the operator finds

async def search_users(request: web.Request) -> web.Response:
    """?q= an id, an email or its beginning, a part of a display name (none: every user,
    newest first); ?limit=, ?offset=."""
    await require_role(request, "admin")
    query = search_rules.parse_user_query(request.query.get("q"))
    limit = validate.query_int(request, "limit", default=search_rules.DEFAULT_LIMIT, min=1,
                               max=search_rules.MAX_LIMIT)
    offset = validate.query_int(request, "offset", default=0, max=search_rules.MAX_OFFSET)
    hits, more = await request.app[DB].read(finder.search_users, query, limit, offset)
    return web.json_response({
        "users": [finder_views.user_view(u) for u in hits], "limit": limit, "offset": offset,
        "next_offset": offset + limit if more else None})


async def list_calls(request: web.Request) -> web.Response:
    """?status=live|recent (absent: all), ?before= a call id, ?limit=."""
    await require_role(request, "admin")
    status = validate.query_status(request, finder.CALL_STATUSES)
    before = validate.query_int(request, "before", min=1)
    limit = validate.query_int(request, "limit", default=finder.CALLS_DEFAULT_LIMIT, min=1,
                               max=finder.CALLS_MAX_LIMIT)
    rows, more = await request.app[DB].read(finder.list_calls, status, before, limit)
    view = request.app[CALLS].view
    return web.json_response({
        "calls": [finder_views.call_item(c, view) for c in rows], "limit": limit,
        "next_before": str(rows[-1].call.id) if more else None})


def setup(app: web.Application) -> None:
    app.router.add_get("/api/admin/audit", audit)
    app.router.add_get("/api/admin/users", search_users)
    app.router.add_get("/api/admin/calls", list_calls)
