"""Economy over HTTP: tips, the buyer's limits, self-exclusion, privacy and spending, the
seller's stats and chart, the public supporters board, and the operator's promotions.
Reading the input (tip tokens, percents, times; 4xx for anything else) happens here, the
rest in the domain modules. Also copies the configured bonus tiers into the database at
start-up and refuses to start on a bonus that could be laundered."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

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
    HOUR_MS,
    AmountError,
    commission_ppm_from_percent,
    tokens_to_musdt,
    usdt_to_musdt,
)
from meterchat.economy import bonuses, limits, promotions, stats, tips

log = logging.getLogger("meterchat.economy")


# ---- reading the input -----------------------------------------------------------------

def whole_tokens(value: object, name: str = "tokens") -> int:
    """A whole number of tokens from JSON (an integer or a string of digits), at least 1."""
    if isinstance(value, bool) or value is None:
        raise Unprocessable(f"{name} must be a whole number of tokens", "invalid_type")
    if isinstance(value, int):
        n = value
    elif isinstance(value, str | float):
        try:
            d = Decimal(str(value).strip())
        except ArithmeticError:
            raise Unprocessable(f"{name} must be a whole number of tokens",
                                "invalid_value") from None
        if not d.is_finite() or d != d.to_integral_value():
            raise Unprocessable(f"{name}: tips are whole tokens only", "whole_tokens_only")
        n = int(d)
    else:
        raise Unprocessable(f"{name} must be a whole number of tokens", "invalid_type")
    if n < 1:
        raise Unprocessable(f"{name} must be at least 1", "invalid_value")
    return n


def percent_ppm(text: str | None) -> int:
    """"12.5" percent -> 125000 ppm; above 0, at most 100, up to 4 decimals."""
    try:
        d = Decimal(str(text))
    except ArithmeticError:
        d = Decimal("NaN")
    if not d.is_finite() or not Decimal(0) < d <= Decimal(100) or \
            d * 10_000 != (d * 10_000).to_integral_value():
        raise Unprocessable("percent must be above 0 and at most 100, with up to 4 decimals",
                            "invalid_value")
    return int(d * 10_000)


def parse_iso_ms(value: object, name: str) -> int:
    """An ISO 8601 time (UTC if no offset is given) as integer ms."""
    if not isinstance(value, str):
        raise Unprocessable(f"{name} must be an ISO 8601 time like 2025-01-31T00:00:00Z",
                            "invalid_type")
    try:
        t = dt.datetime.fromisoformat(value)
    except ValueError:
        raise Unprocessable(f"{name} must be an ISO 8601 time like 2025-01-31T00:00:00Z",
                            "invalid_value") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return int(t.timestamp() * 1000)


def _limit_value(body: dict[str, Any], name: str) -> int | None:
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


def _hours_ms(hours: float) -> int:
    return int(hours * HOUR_MS)


# ---- start-up --------------------------------------------------------------------------

def _commission_floor(app: web.Application) -> int:
    cfg = app[CONFIG]
    return commission_floor_ppm(cfg.billing.commission_percent,
                                cfg.economy.tip_commission_percent)


async def bonus_tiers_ctx(app: web.Application) -> AsyncIterator[None]:
    """The configured tiers into the database before anything can credit a deposit, and
    no start while the bonus in force (tiers, promotions not ended) could be laundered at
    the lowest commission in force (sellers' own commissions live in the database)."""
    await app[DB].tx(bonuses.sync_tiers_tx, app[CONFIG].economy.bonus_tiers_ppm)
    problem = await app[DB].read(bonuses.bonus_bound_problem, _commission_floor(app), now_ms())
    if problem is not None:
        raise ConfigError(problem)
    yield


# ---- handlers --------------------------------------------------------------------------

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
    tokens = whole_tokens(body.get("tokens"))
    if tokens > cfg.max_tip_tokens:
        raise Unprocessable(f"a tip is at most {cfg.max_tip_tokens} tokens", "tip_too_large")
    ppm = (None if cfg.tip_commission_percent < 0
           else commission_ppm_from_percent(cfg.tip_commission_percent))
    tip_view, replayed = await request.app[DB].tx(
        tips.tip_tx, user.id, call_id, tokens, key, _hours_ms(cfg.tip_window_hours), ppm,
        now_ms())
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
    return web.json_response({"tips": await request.app[DB].read(tips.tips_of_call, call_id)})


async def get_limits(request: web.Request) -> web.Response:
    user = await require_role(request, "buyer")
    state = await request.app[DB].read(limits.limits_state, user.id, now_ms())
    return web.json_response({"limits": limits.limits_json(state)})


async def put_limits(request: web.Request) -> web.Response:
    user = await require_role(request, "buyer")
    body = await validate.read_json(request)
    changes = {name: _limit_value(body, name) for name in ("daily", "monthly") if name in body}
    if not changes:
        raise Unprocessable("give daily and/or monthly (tokens, or null for no limit)",
                            "missing_field")
    delay_ms = _hours_ms(request.app[CONFIG].economy.limit_raise_delay_hours)
    view = await request.app[DB].tx(limits.set_limits_tx, user.id, changes, delay_ms, now_ms())
    return web.json_response({"limits": view})


async def self_exclude(request: web.Request) -> web.Response:
    user = await require_role(request, "buyer")
    body = await validate.read_json(request)
    days = validate.integer(body, "days", min=1,
                            max=request.app[CONFIG].economy.max_self_exclusion_days)
    view = await request.app[DB].tx(limits.self_exclude_tx, user.id, days, now_ms())
    logs.event(log, "self_excluded", user_id=user.id, days=days)
    await request.app[CALLS].end_calls_of_user(user.id, "self_excluded")
    return web.json_response({"limits": view})


async def put_privacy(request: web.Request) -> web.Response:
    user = await require_role(request, "buyer")
    body = await validate.read_json(request)
    show = validate.boolean(body, "show_on_leaderboard")
    privacy = await request.app[DB].tx(limits.set_privacy_tx, user.id, show, now_ms())
    return web.json_response({"privacy": privacy})


async def spending(request: web.Request) -> web.Response:
    user = await require_role(request, "buyer")
    days = validate.query_int(request, "days", default=30, min=1, max=366)
    view = await request.app[DB].read(limits.spending_view, user.id, days, now_ms())
    return web.json_response({"spending": view})


async def seller_stats(request: web.Request) -> web.Response:
    user = await require_role(request, "seller")
    view = await request.app[DB].read(stats.seller_stats, user.id, now_ms())
    return web.json_response({"stats": view})


async def seller_chart(request: web.Request) -> web.Response:
    user = await require_role(request, "seller")
    svg = await request.app[DB].read(stats.stats_chart, user.id, now_ms())
    return web.Response(text=svg, content_type="image/svg+xml",
                        headers={"Cache-Control": "private, max-age=60",
                                 "Content-Security-Policy": "default-src 'none'; style-src "
                                                            "'unsafe-inline'"})


async def supporters(request: web.Request) -> web.Response:
    seller_id = _id(request, "seller")
    board = await request.app[DB].read(stats.supporters_board, seller_id)
    return web.json_response({"supporters": board})


async def admin_promotions(request: web.Request) -> web.Response:
    await require_role(request, "admin")
    return web.json_response(await request.app[DB].read(promotions.promotions_view, now_ms()))


async def admin_create_promotion(request: web.Request) -> web.Response:
    admin = await require_role(request, "admin")
    body = await validate.read_json(request)
    name = validate.string(body, "name", max_len=100).strip()
    if not name:
        raise Unprocessable("name must not be empty", "invalid_value")
    ppm = percent_ppm(validate.decimal_string(body, "percent"))
    from_text = validate.decimal_string(body, "from_usdt", required=False)
    try:
        from_musdt = usdt_to_musdt(from_text) if from_text is not None else 0
    except AmountError as exc:
        raise Unprocessable(f"from_usdt: {exc}", "invalid_value") from None
    if from_musdt < 0:
        raise Unprocessable("from_usdt must not be negative", "invalid_value")
    starts = parse_iso_ms(body.get("starts_at"), "starts_at")
    ends = parse_iso_ms(body.get("ends_at"), "ends_at")
    promo = await request.app[DB].tx(promotions.create_promotion_tx, name, ppm,
                                     from_musdt, starts, ends, admin.id, now_ms(),
                                     _commission_floor(request.app))
    return web.json_response({"promotion": promo}, status=201)


async def admin_end_promotion(request: web.Request) -> web.Response:
    admin = await require_role(request, "admin")
    promotion_id = validate.path_id(request, "promotion")
    promo = await request.app[DB].tx(promotions.end_promotion_tx, promotion_id, admin.id,
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
