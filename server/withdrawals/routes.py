"""Withdrawal endpoints: a user's quote (the fees before confirming), request (with its
Idempotency-Key) and list, and the
operator's list, approve, reject and confirm-by-transfer (API.md "Wallet", "Operator"). The
input they read (the Idempotency-Key, the tokens asked for) is parsed here."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from meterchat.accounts.auth import current_user, enforce, otp_counted, require_role
from meterchat.appkeys import CONFIG, DB, LIMITS
from meterchat.chain_ctx import CHAIN_INFO, CHAIN_PRICES, GATEWAY
from meterchat.core import validate
from meterchat.core.db import now_ms
from meterchat.core.errors import Forbidden, Unprocessable
from meterchat.core.units import AmountError, tokens_to_musdt
from meterchat.deposits.routes import parse_txid
from meterchat.mail.messages import links_base
from meterchat.withdrawals import holds, requests, rules
from meterchat.withdrawals.network_fee import NetworkFeeReader

FEE_READER = web.AppKey("withdrawal_fee_reader", NetworkFeeReader)


def parse_tokens(value: Any) -> int:
    """The tokens asked for, in µUSDT: a decimal string with up to 4 decimals, > 0."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise Unprocessable('tokens must be a decimal string like "400"', "invalid_amount")
    try:
        amount = tokens_to_musdt(str(value).strip())
    except AmountError:
        raise Unprocessable('tokens must be a decimal string like "400" (up to 4 decimals)',
                            "invalid_amount") from None
    if amount <= 0:
        raise Unprocessable("tokens must be more than 0", "invalid_amount")
    if amount > rules.MAX_WITHDRAWAL_MUSDT:
        raise Unprocessable("tokens is far more than any balance", "invalid_amount")
    return amount


def parse_fee(value: Any) -> int:
    """The fee the seller was shown (`fee_tokens` of the quote), in µUSDT; >= 0."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise Unprocessable('fee_tokens must be a decimal string like "250"', "invalid_amount")
    try:
        fee = tokens_to_musdt(str(value).strip())
    except AmountError:
        raise Unprocessable('fee_tokens must be a decimal string like "250" (up to 4 '
                            'decimals)', "invalid_amount") from None
    if fee < 0 or fee > rules.MAX_WITHDRAWAL_MUSDT:
        raise Unprocessable("fee_tokens is out of range", "invalid_amount")
    return fee


async def quote_of(request: web.Request, amount_musdt: int, address: str) -> rules.Quote:
    """The fees of a withdrawal of `amount_musdt` to `address`: the configured ones, or with
    an "auto" network fee read from the chain (withdrawals/network_fee.py)."""
    app = request.app
    cfg = app[CONFIG].withdrawals
    info = app[CHAIN_INFO]
    owner = info.hot_wallet_address or info.deposit_address
    auto = await app[FEE_READER].fee(app[GATEWAY], cfg, owner, address)
    return rules.quote(amount_musdt, cfg, auto)


async def quote_withdrawal(request: web.Request) -> web.Response:
    """GET /api/withdrawals/quote?address=T...&tokens=400: the fees and the net a request
    would be charged now, shown before the seller confirms."""
    user = await current_user(request)
    cfg = request.app[CONFIG].withdrawals
    rules.check_role(user.role, cfg)
    if cfg.network_fee_auto:
        enforce("too many fee quotes; wait a moment",
                (request.app[LIMITS].withdrawal_quotes, str(user.id)))
    address = rules.check_address(request.query.get("address"),
                                  platform_addresses(request.app))
    if request.query.get("tokens") is None:
        raise Unprocessable("tokens is required", "missing_field")
    q = await quote_of(request, parse_tokens(request.query.get("tokens")), address)
    return web.json_response({"quote": {**q.view(cfg), "address": address}})


def platform_addresses(app: web.Application) -> frozenset[str]:
    info = app[CHAIN_INFO]
    return frozenset(a for a in (info.deposit_address, info.hot_wallet_address,
                                 info.usdt_contract) if a)


async def request_withdrawal(request: web.Request) -> web.Response:
    user = await current_user(request)
    cfg = request.app[CONFIG].withdrawals
    rules.check_role(user.role, cfg)
    idem_key = validate.idempotency_key(request.headers.get("Idempotency-Key"),
                                        "any unique string per withdrawal; repeat it to retry"
                                        " safely")
    body = await validate.read_json(request)
    address = rules.check_address(body.get("address"), platform_addresses(request.app))
    if body.get("tokens") is None:
        raise Unprocessable("tokens is required", "missing_field")
    amount = parse_tokens(body.get("tokens"))
    shown = None if body.get("fee_tokens") is None else parse_fee(body.get("fee_tokens"))
    q = await quote_of(request, amount, address)
    if cfg.require_verified_email and not user.email_verified:
        raise Forbidden("verify your email first (the link mailed at sign-up)",
                        "email_not_verified")
    # The 2FA code, the new-address hold and the mail, in the request's transaction.
    done = await otp_counted(request, user, request.app[DB].tx(
        holds.request_tx, user.id, idem_key, address, q, cfg, now_ms(), body.get("otp"),
        time.time(), links_base(request.app[CONFIG]), shown))
    headers = {"Idempotent-Replayed": "true"} if done.replayed else None
    return web.json_response({"withdrawal": done.withdrawal.view()}, status=201,
                             headers=headers)


async def list_withdrawals(request: web.Request) -> web.Response:
    user = await current_user(request)
    rows = await request.app[DB].read(requests.user_withdrawals, user.id)
    return web.json_response({"withdrawals": rows})


async def admin_list(request: web.Request) -> web.Response:
    await require_role(request, "admin")
    status = validate.query_status(request, rules.STATUSES)
    rows = await request.app[DB].read(requests.admin_withdrawals, status)
    return web.json_response({"withdrawals": rows})


def _withdrawal_id(request: web.Request) -> int:
    return validate.path_id(request, "withdrawal")


async def admin_approve(request: web.Request) -> web.Response:
    admin = await require_role(request, "admin")
    w = await request.app[DB].tx(requests.approve_tx, _withdrawal_id(request), admin.id, now_ms())
    return web.json_response({"withdrawal": w.view(admin=True)})


async def admin_reject(request: web.Request) -> web.Response:
    admin = await require_role(request, "admin")
    body = await validate.read_json(request)
    reason = validate.string(body, "reason", required=False, max_len=500)
    w = await request.app[DB].tx(requests.reject_tx, _withdrawal_id(request), admin.id,
                                 now_ms(), reason)
    return web.json_response({"withdrawal": w.view(admin=True)})


async def admin_confirm(request: web.Request) -> web.Response:
    admin = await require_role(request, "admin")
    body = await validate.read_json(request)
    txid = parse_txid(body.get("txid"))
    margin_ms = int(request.app[CONFIG].withdrawals.expiry_margin_s * 1000)
    w = await request.app[DB].tx(requests.confirm_paid_by_tx, _withdrawal_id(request),
                                 txid, admin.id, now_ms(), margin_ms)
    return web.json_response({"withdrawal": w.view(admin=True)})


async def cancel_withdrawal(request: web.Request) -> web.Response:
    user = await current_user(request)
    w = await request.app[DB].tx(holds.cancel_tx, user.id, _withdrawal_id(request), now_ms())
    return web.json_response({"withdrawal": w.view()})


def setup(app: web.Application) -> None:
    app[FEE_READER] = NetworkFeeReader(app[CHAIN_PRICES])
    app.router.add_get("/api/withdrawals/quote", quote_withdrawal)
    app.router.add_post("/api/withdrawals/{id}/cancel", cancel_withdrawal)
    app.router.add_post("/api/withdrawals", request_withdrawal)
    app.router.add_get("/api/withdrawals", list_withdrawals)
    app.router.add_get("/api/admin/withdrawals", admin_list)
    app.router.add_post("/api/admin/withdrawals/{id}/approve", admin_approve)
    app.router.add_post("/api/admin/withdrawals/{id}/reject", admin_reject)
    app.router.add_post("/api/admin/withdrawals/{id}/confirm", admin_confirm)
