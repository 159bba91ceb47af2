"""Wallet and operator endpoints of deposits: intents, TXID claims, the user's deposits and
ledger, and the operator's view and assignment of unmatched transfers. The input they read
(a TXID, an asked amount) is parsed here; 400 / 422 name the field."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from meterchat.accounts.auth import client_key, current_user, enforce, require_role
from meterchat.appkeys import CONFIG, DB, LIMITS
from meterchat.chain_ctx import CHAIN_INFO, GATEWAY
from meterchat.core import validate
from meterchat.core.db import now_ms
from meterchat.core.errors import BadRequest, Unprocessable
from meterchat.core.units import AmountError, musdt_to_usdt_str, usdt_to_musdt
from meterchat.deposits import addresses, claims, credits, intents, personal, sweeps, views
from meterchat.deposits.rules import (
    ASKED_STEP_MUSDT,
    MAX_DEPOSIT_MUSDT,
    PersonalAddressesOff,
    normalize_txid,
)
from meterchat.deposits.sweeper import SWEEPER
from meterchat.deposits.watcher import ADDRESSES
from meterchat.economy import limits as economy_limits


def parse_txid(value: Any) -> str:
    """A TXID as 64 hex characters (an optional 0x and surrounding spaces are forgiven);
    400 `invalid_txid` for anything else."""
    if not isinstance(value, str):
        raise BadRequest("txid must be a string of 64 hex characters", "invalid_txid")
    txid = normalize_txid(value)
    if txid is None:
        raise BadRequest("txid must be 64 hex characters (the transaction hash)", "invalid_txid")
    return txid


def requested_musdt(value: Any, min_musdt: int) -> int:
    """The asked top-up in µUSDT: a decimal string with at most 2 decimals, >= min."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise Unprocessable('usdt must be a decimal string like "10"', "invalid_amount")
    try:
        amount = usdt_to_musdt(str(value).strip())
    except AmountError:
        raise Unprocessable('usdt must be a decimal string like "10"', "invalid_amount") from None
    if amount % ASKED_STEP_MUSDT:
        raise Unprocessable("usdt allows at most 2 decimals (the server adds the exact "
                            "suffix)", "invalid_amount")
    if amount < min_musdt:
        raise Unprocessable(f"the smallest top-up is {musdt_to_usdt_str(min_musdt)} USDT",
                            "amount_too_small")
    if amount > MAX_DEPOSIT_MUSDT:
        raise Unprocessable(f"the largest top-up is {musdt_to_usdt_str(MAX_DEPOSIT_MUSDT)} "
                            "USDT", "amount_too_large")
    return amount


async def create_intent(request: web.Request) -> web.Response:
    user = await current_user(request)
    body = await validate.read_json(request)
    cfg = request.app[CONFIG].deposits
    info = request.app[CHAIN_INFO]
    await request.app[DB].read(economy_limits.check_not_excluded, user.id, now_ms())
    base = requested_musdt(validate.decimal_string(body, "usdt"), cfg.min_musdt)
    intent = await request.app[DB].tx(
        intents.create_intent_tx, user.id, base, info.deposit_address, info.usdt_contract,
        cfg.intent_ttl_minutes * 60_000, now_ms(), max_open=cfg.max_open_intents_per_user,
    )
    view = views.intent_view(intent, now_ms())
    view["qr"] = views.qr_svg_data_uri(intent.address)
    view["network"] = info.network
    return web.json_response({"intent": view}, status=201)


async def deposit_address(request: web.Request) -> web.Response:
    """GET /api/deposits/address: the user's own deposit address (address_per_user), the
    same every time; allocated at the first ask."""
    user = await current_user(request)
    cfg = request.app[CONFIG].deposits
    info = request.app[CHAIN_INFO]
    if cfg.mode != "address_per_user" or not info.deposit_xpub:
        raise PersonalAddressesOff(
            "this server takes top-ups by exact amount to its shared address: ask for a "
            "top-up with POST /api/deposits/intents", "personal_addresses_off")
    await request.app[DB].read(economy_limits.check_not_excluded, user.id, now_ms())
    mine = await request.app[DB].tx(addresses.allocate_tx, user.id, info.deposit_xpub,
                                    now_ms())
    known = request.app[ADDRESSES]
    if mine.address not in known:
        known.add(mine)  # the watcher credits it from its next block on
    pending = await request.app[DB].read(personal.pending_musdt, mine.address)
    return web.json_response({
        "address": mine.address,
        "qr": views.qr_svg_data_uri(mine.address),
        "min_usdt": musdt_to_usdt_str(cfg.min_musdt),
        "network": info.network,
        "pending_usdt": musdt_to_usdt_str(pending),
    })


async def claim(request: web.Request) -> web.Response:
    user = await current_user(request)
    body = await validate.read_json(request)
    info = request.app[CHAIN_INFO]
    txid = parse_txid(body.get("txid"))
    # A claim reads the node (the TronGrid quota the watcher needs): limited per user and per
    # client address. Claims are optional, the watcher credits without them.
    limits = request.app[LIMITS]
    enforce("too many TXID claims; your top-up is still credited by itself once final",
            (limits.claims_by_user, str(user.id)), (limits.claims_by_address, client_key(request)))
    answer = await claims.claim(
        request.app[DB], request.app[GATEWAY], info.usdt_contract, info.deposit_address,
        user.id, txid, request.app.get(ADDRESSES),
        request.app[CONFIG].deposits.min_musdt,
    )
    return web.json_response({"deposit": answer.deposit}, status=answer.status)


async def list_deposits(request: web.Request) -> web.Response:
    user = await current_user(request)
    return web.json_response(await request.app[DB].read(views.user_deposits, user.id,
                                                        now_ms()))


async def user_ledger(request: web.Request) -> web.Response:
    user = await current_user(request)
    # ?group=calls: each call's lines as one (the wallet shows it so).
    group = request.query.get("group")
    if group not in (None, "", "calls"):
        raise Unprocessable("group must be calls", "invalid_value")
    view = views.ledger_view_grouped if group == "calls" else views.ledger_view
    entries = await request.app[DB].read(view, user.id)
    return web.json_response({"entries": entries})


async def admin_list(request: web.Request) -> web.Response:
    await require_role(request, "admin")
    status = request.query.get("status") or None
    if status not in (None, "unmatched", "credited"):
        raise Unprocessable("status must be unmatched or credited", "invalid_status")
    rows = await request.app[DB].read(views.admin_deposits, status)
    return web.json_response({"deposits": rows})


async def admin_assign(request: web.Request) -> web.Response:
    admin = await require_role(request, "admin")
    body = await validate.read_json(request)
    txid = parse_txid(request.match_info["txid"])
    user_id = validate.body_id(body, "user_id", "a user's id")
    log_index = validate.integer(body, "log_index", required=False, min=0)
    d = await request.app[DB].tx(credits.assign_tx, txid, log_index, user_id, admin.id,
                                 now_ms())
    return web.json_response({"deposit": views.deposit_view(d, admin=True)})


async def admin_sweeps(request: web.Request) -> web.Response:
    """GET /api/admin/sweeps: sweeps of personal addresses, newest first, with the TRX each
    burned and why one waits; and the sweeper's last node error."""
    await require_role(request, "admin")
    body = await request.app[DB].read(sweeps.admin_view)
    sweeper = request.app.get(SWEEPER)
    body["mode"] = request.app[CONFIG].deposits.mode
    body["sweeper_error"] = sweeper.last_error if sweeper is not None else None
    return web.json_response(body)


def setup(app: web.Application) -> None:
    app.router.add_post("/api/deposits/intents", create_intent)
    app.router.add_post("/api/deposits/claim", claim)
    app.router.add_get("/api/deposits/address", deposit_address)
    app.router.add_get("/api/deposits", list_deposits)
    app.router.add_get("/api/ledger", user_ledger)
    app.router.add_get("/api/admin/deposits", admin_list)
    app.router.add_get("/api/admin/sweeps", admin_sweeps)
    app.router.add_post("/api/admin/deposits/{txid}/assign", admin_assign)
