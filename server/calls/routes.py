"""Calls over HTTP (API.md "Calls"): start, accept, decline, end, rate, read; a call's chat
messages and the report of one (calls/chat.py); my calls a page at a time and a call's
receipt (calls/history.py); GET /api/ice.
Also opens and closes the call manager and the socket hub with the app."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from meterchat.accounts.auth import current_user, require_role
from meterchat.appkeys import CLOCK, CONFIG, DB
from meterchat.calls import chat, history, ice, store
from meterchat.calls.manager import CALLS, HUB, CallManager
from meterchat.calls.signalling import Hub
from meterchat.core import validate
from meterchat.core.errors import NotFound, Unprocessable
from meterchat.core.units import SECOND_MS, AmountError, tokens_to_musdt
from meterchat.sellers.rules import MAX_REASON_CHARS
from meterchat.web.metrics import METRICS


def _call_id(request: web.Request) -> int:
    return validate.path_id(request, "call", "no such call of yours")


async def start_call(request: web.Request) -> web.Response:
    user = await require_role(request, "buyer")
    body = await validate.read_json(request)
    seller_id = validate.body_id(body, "seller_id", "a seller's id")
    rate = validate.integer(body, "rate", min=1)
    cap_text = validate.decimal_string(body, "spend_cap", required=False)
    cap_musdt = None
    if cap_text is not None:
        try:
            cap_musdt = tokens_to_musdt(cap_text)
        except AmountError as exc:
            raise Unprocessable(f"spend_cap: {exc}", "invalid_value") from None
        if cap_musdt <= 0:
            raise Unprocessable("spend_cap must be above zero", "invalid_value")
    call = await request.app[CALLS].start_call(user, seller_id, rate, cap_musdt)
    return web.json_response({"call": call}, status=201)


async def list_calls(request: web.Request) -> web.Response:
    """My calls, newest first, a page at a time (`?before=<id>`; `next_before` for the next
    page, null on the last), with what each cost or earned (calls/history.py)."""
    user = await current_user(request)
    before = validate.query_int(request, "before", min=1)
    limit = validate.query_int(request, "limit", default=history.PAGE_SIZE, min=1,
                               max=history.PAGE_SIZE)
    calls, next_before = await request.app[DB].read(history.page, user.id, before, limit)
    return web.json_response({"calls": calls,
                              "next_before": None if next_before is None else str(next_before)})


async def call_receipt(request: web.Request) -> web.Response:
    user = await current_user(request)
    receipt = await request.app[DB].read(history.receipt, user.id, _call_id(request))
    return web.json_response({"call": receipt})


async def get_call(request: web.Request) -> web.Response:
    user = await current_user(request)
    return web.json_response({"call": await request.app[CALLS].get_call(user, _call_id(request))})


async def accept(request: web.Request) -> web.Response:
    user = await current_user(request)
    return web.json_response({"call": await request.app[CALLS].accept(user, _call_id(request))})


async def decline(request: web.Request) -> web.Response:
    user = await current_user(request)
    return web.json_response({"call": await request.app[CALLS].decline(user, _call_id(request))})


async def end(request: web.Request) -> web.Response:
    user = await current_user(request)
    return web.json_response({"call": await request.app[CALLS].end(user, _call_id(request))})


async def rate(request: web.Request) -> web.Response:
    user = await current_user(request)
    body = await validate.read_json(request)
    stars = validate.integer(body, "stars", min=1, max=5)
    comment = validate.string(body, "comment", required=False, max_len=2000)
    row = await request.app[DB].tx(store.rate_call_tx, _call_id(request), user.id, stars,
                                   comment)
    return web.json_response({"call": store.call_json(row)})


async def messages(request: web.Request) -> web.Response:
    user = await current_user(request)
    call_id = _call_id(request)
    after = validate.query_int(request, "after", default=0)
    found, more = await request.app[DB].read(chat.messages_for_party, call_id, user.id, after)
    return web.json_response({"messages": found, "more": more})


async def report_message(request: web.Request) -> web.Response:
    user = await current_user(request)
    call_id = _call_id(request)
    # A stranger learns nothing, not even whether a message id is well formed.
    await request.app[DB].read(chat.party_of, call_id, user.id)
    message_id = validate.parse_id(request.match_info["mid"])
    if message_id is None:
        raise NotFound("no such message in this call", "message_not_found")
    body = await validate.read_json(request)
    reason = validate.string(body, "reason", required=False, max_len=MAX_REASON_CHARS)
    await request.app[DB].tx(chat.report_message_tx, call_id, message_id, user.id, reason)
    return web.Response(status=204)


async def ice_servers(request: web.Request) -> web.Response:
    user = await current_user(request)
    now_s = request.app[CLOCK].now_ms() // SECOND_MS
    servers = ice.ice_servers(request.app[CONFIG].ice, user.id, now_s)
    return web.json_response({"ice_servers": servers})


async def _calls_ctx(app: web.Application) -> AsyncIterator[None]:
    cfg = app[CONFIG]
    hub = Hub.from_config(cfg.server, app[CLOCK])
    manager = CallManager(app[DB], hub, cfg, app[CLOCK])
    app[HUB] = hub
    app[CALLS] = manager
    m = app.get(METRICS)
    if m is not None:
        manager.metrics = m
        m.ws_connections.set_function(lambda: hub.count)
        m.live_calls.set_function(
            lambda: sum(1 for rt in manager.active.values() if rt.state == "live"))
    await manager.start()
    yield
    await manager.stop()
    await hub.close()


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(_calls_ctx)
    app.router.add_post("/api/calls", start_call)
    app.router.add_get("/api/calls", list_calls)
    app.router.add_get("/api/calls/{id}", get_call)
    app.router.add_get("/api/calls/{id}/receipt", call_receipt)
    app.router.add_post("/api/calls/{id}/accept", accept)
    app.router.add_post("/api/calls/{id}/decline", decline)
    app.router.add_post("/api/calls/{id}/end", end)
    app.router.add_post("/api/calls/{id}/rating", rate)
    app.router.add_get("/api/calls/{id}/messages", messages)
    app.router.add_post("/api/calls/{id}/messages/{mid}/report", report_message)
    app.router.add_get("/api/ice", ice_servers)
