"""Seller profile, online status and the public listing (API.md "Sellers"); blocks and
reports between users. Parses the input, calls the store, answers with the JSON views."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from meterchat.accounts.auth import current_user, require_role, session_of
from meterchat.appkeys import CONFIG, DB
from meterchat.calls.manager import CALLS, HUB
from meterchat.core import validate
from meterchat.core.errors import NotFound, Unauthorized
from meterchat.core.units import PPM, commission_ppm_from_percent, musdt_to_tokens_str
from meterchat.money.billing_rules import commission_split, segment_price_musdt
from meterchat.sellers import blocks, rules, store
from meterchat.sellers.store import Seller


def seller_json(seller: Seller) -> dict[str, Any]:
    """A seller as the API shows one (ids as strings, the rating with one decimal)."""
    return {
        "id": str(seller.user_id),
        "display_name": seller.display_name,
        "rate": seller.rate,
        "online": seller.online,
        "busy": seller.busy,
        "rating": None if seller.rating is None else f"{seller.rating:.1f}",
        "calls": seller.calls,
        "bio": seller.bio,
        "tags": seller.tags,
        "languages": seller.languages,
    }


def _percent(ppm: int) -> str:
    """250000 -> "25", 125000 -> "12.5"."""
    whole, frac = divmod(ppm * 100, PPM)
    return str(whole) if frac == 0 else f"{whole}.{str(frac).rjust(6, '0').rstrip('0')}"


async def own_seller_json(request: web.Request, seller: Seller) -> dict[str, Any]:
    """The seller's own view: the public one, plus the commission the platform takes of
    this seller's calls and what a minute at the saved rate earns after it (the split the
    billing makes of each minute)."""
    ppm = await request.app[DB].read(store.commission_ppm_of, seller.user_id)
    if ppm is None:
        ppm = commission_ppm_from_percent(request.app[CONFIG].billing.commission_percent)
    earned, _ = commission_split(10 * segment_price_musdt(seller.rate), ppm)
    return {**seller_json(seller), "commission_percent": _percent(ppm),
            "earns_per_minute": musdt_to_tokens_str(earned)}


def _user_id(request: web.Request) -> int:
    return validate.path_id(request, "user")


def _labels(body: validate.Body, name: str) -> list[str] | None:
    """Tags or languages from the body; None when left out (the saved ones stay)."""
    if body.get(name) is None:
        return None
    return rules.clean_labels(validate.string_list(body, name), name)


async def put_profile(request: web.Request) -> web.Response:
    user = await require_role(request, "seller")
    body = await validate.read_json(request)
    billing = request.app[CONFIG].billing
    rate = validate.integer(body, "rate")
    rules.check_rate(rate, billing.min_rate, billing.max_rate)
    bio = validate.string(body, "bio", required=False, max_len=rules.MAX_BIO_CHARS)
    tags = _labels(body, "tags")
    languages = _labels(body, "languages")
    seller = await request.app[DB].tx(store.save_profile_tx, user.id, rate, bio, tags,
                                      languages)
    return web.json_response({"seller": await own_seller_json(request, seller)})


async def get_own_profile(request: web.Request) -> web.Response:
    """The seller's own profile, or null before the first save (a new seller's dashboard asks
    this on every visit, so "none yet" is an answer, not a 404)."""
    user = await require_role(request, "seller")
    try:
        seller = await request.app[DB].read(store.get_seller, user.id)
    except NotFound:
        return web.json_response({"seller": None})
    return web.json_response({"seller": await own_seller_json(request, seller)})


async def put_status(request: web.Request) -> web.Response:
    user = await require_role(request, "seller")
    body = await validate.read_json(request)
    online = validate.boolean(body, "online")
    seller = await request.app[DB].tx(store.set_online_tx, user.id, online)
    if online:
        request.app[HUB].watch_presence(user.id)
    else:
        # Going offline ends the seller's call; its end changes `busy`, so read again.
        await request.app[CALLS].end_calls_of_user(user.id, "seller_offline")
        seller = await request.app[DB].read(store.get_seller, user.id)
    return web.json_response({"seller": seller_json(seller)})


async def list_sellers(request: web.Request) -> web.Response:
    viewer_id = None
    try:
        viewer_id = (await session_of(request)).user.id
    except Unauthorized:
        pass  # the listing is public
    max_rate = validate.query_int(request, "max_rate")
    online = validate.query_flag(request, "online")
    tag = request.query.get("tag")
    language = request.query.get("language")
    found = await request.app[DB].read(
        lambda c: store.list_sellers(c, online=online, max_rate=max_rate, tag=tag,
                                     language=language, viewer_id=viewer_id))
    return web.json_response({"sellers": [seller_json(s) for s in found]})


async def get_seller(request: web.Request) -> web.Response:
    seller = await request.app[DB].read(store.get_seller, _user_id(request))
    return web.json_response({"seller": seller_json(seller)})


async def block(request: web.Request) -> web.Response:
    user = await current_user(request)
    body = await validate.read_json(request)
    reason = validate.string(body, "reason", required=False, max_len=rules.MAX_REASON_CHARS)
    await request.app[DB].tx(blocks.block_tx, user.id, _user_id(request), reason)
    return web.Response(status=204)


async def unblock(request: web.Request) -> web.Response:
    user = await current_user(request)
    await request.app[DB].tx(blocks.unblock_tx, user.id, _user_id(request))
    return web.Response(status=204)


async def report(request: web.Request) -> web.Response:
    user = await current_user(request)
    body = await validate.read_json(request)
    reason = validate.string(body, "reason", required=False, max_len=rules.MAX_REASON_CHARS)
    await request.app[DB].tx(blocks.report_tx, user.id, _user_id(request), reason)
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
