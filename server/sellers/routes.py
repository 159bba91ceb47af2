"""Seller profile, online status and the public listing (API.md "Sellers"); blocks and
reports between users."""

from __future__ import annotations

from aiohttp import web

from meterchat.accounts.auth import current_user, require_role, session_of
from meterchat.appkeys import CONFIG, DB
from meterchat.calls.manager import CALLS, HUB
from meterchat.core import validate
from meterchat.core.errors import NotFound, Unauthorized, Unprocessable
from meterchat.sellers import store as sellers


def _user_id(request: web.Request) -> int:
    return validate.path_id(request, "user")


async def put_profile(request: web.Request) -> web.Response:
    user = await require_role(request, "seller")
    body = await validate.read_json(request)
    billing = request.app[CONFIG].billing
    rate = validate.integer(body, "rate")
    sellers.check_rate(rate, billing.min_rate, billing.max_rate)
    bio = validate.string(body, "bio", required=False, max_len=sellers.MAX_BIO_CHARS)
    tags = sellers.clean_labels(validate.string_list(body, "tags"), "tags") \
        if body.get("tags") is not None else None
    languages = sellers.clean_labels(validate.string_list(body, "languages"), "languages") \
        if body.get("languages") is not None else None
    seller = await request.app[DB].tx(sellers.save_profile, user.id, rate, bio, tags, languages)
    return web.json_response({"seller": seller})


async def get_own_profile(request: web.Request) -> web.Response:
    """The seller's own profile, or null before the first save (a new seller's dashboard asks
    this on every visit, so "none yet" is an answer, not a 404)."""
    user = await require_role(request, "seller")
    try:
        seller = await request.app[DB].read(sellers.get_seller, user.id)
    except NotFound:
        seller = None
    return web.json_response({"seller": seller})


async def put_status(request: web.Request) -> web.Response:
    user = await require_role(request, "seller")
    body = await validate.read_json(request)
    online = validate.boolean(body, "online")
    seller = await request.app[DB].tx(sellers.set_online, user.id, online)
    if online:
        request.app[HUB].watch_presence(user.id)
    else:
        await request.app[CALLS].end_calls_of_user(user.id, "seller_offline")
        seller = await request.app[DB].read(sellers.get_seller, user.id)
    return web.json_response({"seller": seller})


def _flag(request: web.Request, name: str) -> bool | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    if raw.lower() in ("true", "1", "yes"):
        return True
    if raw.lower() in ("false", "0", "no"):
        return False
    raise Unprocessable(f"{name} must be true or false", "invalid_value")


async def list_sellers(request: web.Request) -> web.Response:
    viewer_id = None
    try:
        viewer_id = (await session_of(request)).user.id
    except Unauthorized:
        pass  # the listing is public
    max_rate = validate.query_int(request, "max_rate")
    filters = {"online": _flag(request, "online"), "max_rate": max_rate,
               "tag": request.query.get("tag"), "language": request.query.get("language"),
               "viewer_id": viewer_id}
    found = await request.app[DB].read(lambda c: sellers.list_sellers(c, **filters))
    return web.json_response({"sellers": found})


async def get_seller(request: web.Request) -> web.Response:
    seller = await request.app[DB].read(sellers.get_seller, _user_id(request))
    return web.json_response({"seller": seller})


async def block(request: web.Request) -> web.Response:
    user = await current_user(request)
    body = await validate.read_json(request)
    reason = validate.string(body, "reason", required=False, max_len=sellers.MAX_REASON_CHARS)
    await request.app[DB].tx(sellers.block, user.id, _user_id(request), reason)
    return web.Response(status=204)


async def unblock(request: web.Request) -> web.Response:
    user = await current_user(request)
    await request.app[DB].tx(sellers.unblock, user.id, _user_id(request))
    return web.Response(status=204)


async def report(request: web.Request) -> web.Response:
    user = await current_user(request)
    body = await validate.read_json(request)
    reason = validate.string(body, "reason", required=False, max_len=sellers.MAX_REASON_CHARS)
    await request.app[DB].tx(sellers.report, user.id, _user_id(request), reason)
    return web.Response(status=204)


def setup(app: web.Application) -> None:
    app.router.add_get("/api/seller/profile", get_own_profile)
    app.router.add_put("/api/seller/profile", put_profile)
    app.router.add_put("/api/seller/status", put_status)
    app.router.add_get("/api/sellers", list_sellers)
    app.router.add_get("/api/sellers/{id}", get_seller)
    app.router.add_post("/api/users/{id}/block", block)
    app.router.add_delete("/api/users/{id}/block", unblock)
    app.router.add_post("/api/users/{id}/report", report)
