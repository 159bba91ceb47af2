"""Economy over HTTP: tips, the buyer's limits, self-exclusion, privacy and spending, the
seller's stats and chart, the public supporters board, and the operator's promotions.
Also copies the configured bonus tiers into the database at start-up."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from meterchat.accounts.auth import current_user, require_role
from meterchat.appkeys import CONFIG, DB
from meterchat.calls.manager import CALLS, HUB
from meterchat.core import logs, validate
from meterchat.core.bonus_bound import commission_floor_ppm
from meterchat.core.config import ConfigError
from meterchat.core.db import now_ms
from meterchat.core.errors import Unprocessable
from meterchat.core.units import (
    AmountError,
    commission_ppm_from_percent,
    tokens_to_musdt,
    usdt_to_musdt,
)
from meterchat.economy import store as economy

log = logging.getLogger("meterchat.economy")


def _commission_floor(app: web.Application) -> int:
    cfg = app[CONFIG]
    return commission_floor_ppm(cfg.billing.commission_percent,
                                        cfg.economy.tip_commission_percent)


async def bonus_tiers_ctx(app: web.Application) -> AsyncIterator[None]:
    """The configured tiers into the database before anything can credit a deposit, and
    no start while the bonus in force (tiers, promotions not ended) could be laundered at
    the lowest commission in force (sellers' own commissions live in the database)."""
    await app[DB].tx(economy.sync_tiers_tx, app[CONFIG].economy.bonus_tiers_ppm)
    problem = await app[DB].read(economy.bonus_bound_problem, _commission_floor(app), now_ms())
    if problem is not None:
        raise ConfigError(problem)
    yield


def _id(request: web.Request, what: str) -> int:
    return validate.path_id(request, what)


async def tip(request: web.Request) -> web.Response:
    user = await require_role(request, "buyer")
    call_id = _id(request, "call")
    await request.app[CALLS].get_call(user, call_id)  # strangers learn nothing (404)
    key = validate.idempotency_key(request.headers.get("Idempotency-Key"),
                                   "a new random value per tip")
    body = await validate.read_json(request)
    cfg = request.app[CONFIG].economy
    tokens = economy.whole_tokens(body.get("tokens"))
    if tokens > cfg.max_tip_tokens:
        raise Unprocessable(f"a tip is at most {cfg.max_tip_tokens} tokens", "tip_too_large")
    ppm = (None if cfg.tip_commission_percent < 0
           else commission_ppm_from_percent(cfg.tip_commission_percent))
    tip_view, replayed = await request.app[DB].tx(
        economy.tip_tx, user.id, call_id, tokens, key, int(cfg.tip_window_hours * 3_600_000),
        ppm, now_ms())
    if not replayed:
        logs.event(log, "tip", call_id=call_id, tokens=tokens)
        msg = {"type": "tip", "call_id": str(call_id), "tip": tip_view}
        hub = request.app[HUB]
        for uid in (user.id, int(tip_view["seller_id"])):
            hub.send(uid, msg)
    return web.json_response({"tip": tip_view, "replayed": replayed},
                             status=200 if replayed else 201)


async def call_tips(request: web.Request) -> web.Response:
    user = await current_user(request)
    call_id = _id(request, "call")
    await request.app[CALLS].get_call(user, call_id)  # 404 unless it is theirs
    return web.json_response({"tips": await request.app[DB].read(economy.tips_of_call, call_id)})


def _limit_value(body: dict, name: str) -> int | None:
    value = body[name]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise Unprocessable(f'{name} must be a token amount like "100" or null for no limit',
                            "invalid_type")
    try:
        musdt = tokens_to_musdt(str(value))
    except AmountError as exc:
        raise Unprocessable(f"{name}: {exc}", "invalid_value") from None
    if musdt < 0:
        raise Unprocessable(f"{name} must not be negative", "invalid_value")
    return musdt


async def get_limits(request: web.Request) -> web.Response:
    user = await require_role(request, "buyer")
    state = await request.app[DB].read(economy.limits_state, user.id, now_ms())
    return web.json_response({"limits": economy.limits_json(state)})


async def put_limits(request: web.Request) -> web.Response:
    user = await require_role(request, "buyer")
    body = await validate.read_json(request)
    changes = {name: _limit_value(body, name) for name in ("daily", "monthly") if name in body}
    if not changes:
        raise Unprocessable("give daily and/or monthly (tokens, or null for no limit)",
                            "missing_field")
    delay_ms = int(request.app[CONFIG].economy.limit_raise_delay_hours * 3_600_000)
    limits = await request.app[DB].tx(economy.set_limits_tx, user.id, changes, delay_ms,
                                      now_ms())
    return web.json_response({"limits": limits})


async def self_exclude(request: web.Request) -> web.Response:
    user = await require_role(request, "buyer")
    body = await validate.read_json(request)
    days = validate.integer(body, "days", min=1,
                            max=request.app[CONFIG].economy.max_self_exclusion_days)
    limits = await request.app[DB].tx(economy.self_exclude_tx, user.id, days, now_ms())
    logs.event(log, "self_excluded", user_id=user.id, days=days)
    await request.app[CALLS].end_calls_of_user(user.id, "self_excluded")
    return web.json_response({"limits": limits})


async def put_privacy(request: web.Request) -> web.Response:
    user = await require_role(request, "buyer")
    body = await validate.read_json(request)
    show = validate.boolean(body, "show_on_leaderboard")
    privacy = await request.app[DB].tx(economy.set_privacy_tx, user.id, show, now_ms())
    return web.json_response({"privacy": privacy})


async def spending(request: web.Request) -> web.Response:
    user = await require_role(request, "buyer")
    days = validate.query_int(request, "days", default=30, min=1, max=366)
    view = await request.app[DB].read(economy.spending_view, user.id, days, now_ms())
    return web.json_response({"spending": view})


async def seller_stats(request: web.Request) -> web.Response:
    user = await require_role(request, "seller")
    stats = await request.app[DB].read(economy.seller_stats, user.id, now_ms())
    return web.json_response({"stats": stats})


async def seller_chart(request: web.Request) -> web.Response:
    user = await require_role(request, "seller")
    svg = await request.app[DB].read(economy.stats_chart, user.id, now_ms())
    return web.Response(text=svg, content_type="image/svg+xml",
                        headers={"Cache-Control": "private, max-age=60",
                                 "Content-Security-Policy": "default-src 'none'; style-src "
                                                            "'unsafe-inline'"})


async def supporters(request: web.Request) -> web.Response:
    seller_id = _id(request, "seller")
    board = await request.app[DB].read(economy.supporters_board, seller_id)
    return web.json_response({"supporters": board})


async def admin_promotions(request: web.Request) -> web.Response:
    await require_role(request, "admin")
    return web.json_response(await request.app[DB].read(economy.promotions_view, now_ms()))


async def admin_create_promotion(request: web.Request) -> web.Response:
    admin = await require_role(request, "admin")
    body = await validate.read_json(request)
    name = validate.string(body, "name", max_len=100).strip()
    if not name:
        raise Unprocessable("name must not be empty", "invalid_value")
    ppm = economy.percent_ppm(validate.decimal_string(body, "percent"))
    from_text = validate.decimal_string(body, "from_usdt", required=False)
    try:
        from_musdt = usdt_to_musdt(from_text) if from_text is not None else 0
    except AmountError as exc:
        raise Unprocessable(f"from_usdt: {exc}", "invalid_value") from None
    if from_musdt < 0:
        raise Unprocessable("from_usdt must not be negative", "invalid_value")
    starts = economy.parse_iso_ms(body.get("starts_at"), "starts_at")
    ends = economy.parse_iso_ms(body.get("ends_at"), "ends_at")
    promo = await request.app[DB].tx(economy.create_promotion_tx, name, ppm,
                                     from_musdt, starts, ends, admin.id, now_ms(),
                                     _commission_floor(request.app))
    return web.json_response({"promotion": promo}, status=201)


async def admin_end_promotion(request: web.Request) -> web.Response:
    admin = await require_role(request, "admin")
    promotion_id = validate.path_id(request, "promotion")
    promo = await request.app[DB].tx(economy.end_promotion_tx, promotion_id, admin.id,
                                     now_ms())
    return web.json_response({"promotion": promo})


def setup(app: web.Application) -> None:
    app.router.add_post("/api/calls/{id}/tip", tip)
    app.router.add_get("/api/calls/{id}/tips", call_tips)
    app.router.add_get("/api/me/limits", get_limits)
    app.router.add_put("/api/me/limits", put_limits)
    app.router.add_post("/api/me/self-exclusion", self_exclude)
    app.router.add_put("/api/me/privacy", put_privacy)
    app.router.add_get("/api/me/spending", spending)
    app.router.add_get("/api/seller/stats", seller_stats)
    app.router.add_get("/api/seller/stats/chart.svg", seller_chart)
    app.router.add_get("/api/sellers/{id}/supporters", supporters)
    app.router.add_get("/api/admin/promotions", admin_promotions)
    app.router.add_post("/api/admin/promotions", admin_create_promotion)
    app.router.add_post("/api/admin/promotions/{id}/end", admin_end_promotion)
