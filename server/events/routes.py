"""The operator's endpoints of events: `GET /api/admin/events` (the newest first, each with
its deliveries to each webhook and its last attempts; ?type=, ?status=dead, ?before=<event
id>, ?limit=) and `POST /api/admin/events/{id}/resend` (a dead or delivered event sent again,
to every webhook it was for or to `{webhook}` only)."""

from __future__ import annotations

import re
import sqlite3

from aiohttp import web

from meterchat.accounts.auth import require_role
from meterchat.appkeys import CONFIG, DB
from meterchat.core import audit, validate
from meterchat.core.db import now_ms
from meterchat.core.errors import NotFound, Unprocessable
from meterchat.events import outbox, rules, webhooks

_EVENT_ID = re.compile(r"evt_[0-9a-f]{1,64}")


def _event_id(text: str) -> str:
    if not _EVENT_ID.fullmatch(text):
        raise NotFound("no such event", "event_not_found")
    return text


async def list_events(request: web.Request) -> web.Response:
    await require_role(request, "admin")
    type_ = request.query.get("type") or None
    if type_ is not None and type_ not in rules.TYPES:
        raise Unprocessable(f"type must be one of {', '.join(rules.TYPES)}", "invalid_type")
    status = request.query.get("status") or None
    if status not in (None, "dead"):
        raise Unprocessable("status may only be dead", "invalid_status")
    limit = validate.query_int(request, "limit", default=50, min=1, max=500)
    before_row = None
    if request.query.get("before"):
        found = await request.app[DB].read(outbox.by_id, _event_id(request.query["before"]))
        if found is None:
            raise NotFound("no such event", "event_not_found")
        before_row = found.row
    view = await request.app[DB].read(webhooks.listing, type_, status == "dead", before_row,
                                      limit)
    view["webhooks"] = [{"url": w.url, "events": w.events or list(rules.TYPES)}
                        for w in request.app[CONFIG].webhooks]
    return web.json_response(view)


async def resend(request: web.Request) -> web.Response:
    admin = await require_role(request, "admin")
    event_id = _event_id(request.match_info["id"])
    body = await validate.read_json(request)
    webhook = validate.string(body, "webhook", required=False, max_len=2000)
    max_age_ms = int(request.app[CONFIG].events.max_age_hours * 3_600_000)

    def run(conn: sqlite3.Connection) -> list[str]:
        again = webhooks.resend_tx(conn, event_id, now_ms(), max_age_ms, webhook)
        audit.record(conn, admin.id, "event.resend", event_id, None, now_ms(), webhooks=again)
        return again

    again = await request.app[DB].tx(run)
    return web.json_response({"event_id": event_id, "resent_to": again})


def setup(app: web.Application) -> None:
    app.router.add_get("/api/admin/events", list_events)
    app.router.add_post("/api/admin/events/{id}/resend", resend)
