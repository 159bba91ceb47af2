"""Operator endpoints (role admin) for disputes, moderation, the audit log and
reconciliation, plus the buyer's POST /api/calls/{id}/dispute. Opens the earnings release
job with the app."""

from __future__ import annotations

from aiohttp import web

from meterchat.accounts.auth import require_role
from meterchat.appkeys import CONFIG, DB
from meterchat.calls.manager import CALLS, HUB
from meterchat.chain.gateway import ChainUnavailable
from meterchat.chain_ctx import CHAIN_INFO, DEVNET, GATEWAY
from meterchat.core import validate
from meterchat.core.db import now_ms
from meterchat.core.errors import Unprocessable
from meterchat.core.units import SUN_PER_TRX, AmountError, tokens_to_musdt
from meterchat.operator import (
    audit_log,
    costs,
    disputes,
    earnings,
    finder,
    finder_views,
    moderation,
    reconcile,
)


def _id(request: web.Request, what: str) -> int:
    return validate.path_id(request, what)


def _reason(body: dict[str, object], required: bool) -> str | None:
    text = validate.string(body, "reason", required=required, max_len=2000)
    if text is not None:
        text = text.strip()
        if required and not text:
            raise Unprocessable("reason must not be empty", "invalid_value")
    return text or None


# -- disputes

async def open_dispute(request: web.Request) -> web.Response:
    user = await require_role(request, "buyer")
    call_id = _id(request, "call")
    body = await validate.read_json(request)
    reason = _reason(body, True)
    d = await request.app[DB].tx(disputes.open_tx, call_id, user.id, reason,
                                 request.app[CONFIG].operator.dispute_window_days, now_ms())
    return web.json_response({"dispute": d.view()}, status=201)


async def list_disputes(request: web.Request) -> web.Response:
    await require_role(request, "admin")
    status = validate.query_status(request, ("open", "resolved"))
    return web.json_response(
        {"disputes": await request.app[DB].read(disputes.list_for_admin, status)})


async def get_dispute(request: web.Request) -> web.Response:
    await require_role(request, "admin")
    return web.json_response(
        await request.app[DB].read(disputes.record_of_dispute, _id(request, "dispute")))


async def call_record(request: web.Request) -> web.Response:
    await require_role(request, "admin")
    return web.json_response(
        await request.app[DB].read(disputes.call_record, _id(request, "call")))


async def resolve_dispute(request: web.Request) -> web.Response:
    admin = await require_role(request, "admin")
    dispute_id = _id(request, "dispute")
    body = await validate.read_json(request)
    text = validate.decimal_string(body, "refund_tokens")
    try:
        refund = tokens_to_musdt(text)
    except AmountError as exc:
        raise Unprocessable(f"refund_tokens: {exc}", "invalid_value") from None
    if refund < 0:
        raise Unprocessable("refund_tokens must not be negative", "invalid_value")
    note = validate.string(body, "note", required=False, max_len=2000)
    d, replayed = await request.app[DB].tx(disputes.resolve_tx, dispute_id, refund, note,
                                           admin.id, now_ms())
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return web.json_response({"dispute": d.view()}, headers=headers)


# -- moderation

async def list_reports(request: web.Request) -> web.Response:
    await require_role(request, "admin")
    status = validate.query_status(request, ("open", "closed"))
    return web.json_response({"reports": await request.app[DB].read(moderation.reports,
                                                                     status)})


async def dismiss_report(request: web.Request) -> web.Response:
    admin = await require_role(request, "admin")
    report_id = _id(request, "report")
    body = await validate.read_json(request)
    out = await request.app[DB].tx(moderation.dismiss_report_tx, report_id, admin.id,
                                   _reason(body, False), now_ms())
    return web.json_response({"report": out})


async def get_user(request: web.Request) -> web.Response:
    """A user's page: moderation state and balance, their calls, deposits, withdrawals,
    reports by and about them, audit-log lines (operator/finder.py)."""
    await require_role(request, "admin")
    page = await request.app[DB].read(finder.user_page, _id(request, "user"))
    return web.json_response(finder_views.user_page_view(page, request.app[CALLS].view))


async def ban(request: web.Request) -> web.Response:
    admin = await require_role(request, "admin")
    user_id = _id(request, "user")
    body = await validate.read_json(request)
    reason = _reason(body, True)
    user = await request.app[DB].tx(moderation.ban_tx, user_id, admin.id, reason, now_ms())
    # Sessions are revoked; now end their call (billed up to this moment) and close their
    # sockets, so nothing of theirs keeps running on the server.
    await request.app[CALLS].end_calls_of_user(user_id, "banned")
    request.app[HUB].disconnect_user(user_id)
    return web.json_response({"user": user})


async def unban(request: web.Request) -> web.Response:
    admin = await require_role(request, "admin")
    user_id = _id(request, "user")
    body = await validate.read_json(request)
    user = await request.app[DB].tx(moderation.unban_tx, user_id, admin.id,
                                    _reason(body, False), now_ms())
    return web.json_response({"user": user})


async def list_audit_log(request: web.Request) -> web.Response:
    await require_role(request, "admin")
    before = validate.query_int(request, "before")
    target = request.query.get("target") or None
    rows = await request.app[DB].read(audit_log.entries, target=target, before_id=before)
    return web.json_response({"entries": rows})


# -- reconciliation

async def wallet_address(app: web.Application) -> str | None:
    info = app[CHAIN_INFO]
    if info.hot_wallet_address:
        return info.hot_wallet_address
    node = app.get(DEVNET)
    return node.hot_wallet_address if node is not None else None


async def reconcile_view(request: web.Request) -> web.Response:
    await require_role(request, "admin")
    app = request.app
    owed = await app[DB].read(reconcile.liabilities)
    at = now_ms()
    rows = await app[DB].read(costs.gather, at)
    info = app[CHAIN_INFO]
    report = await reconcile.reconcile(
        owed, app[GATEWAY], info.network, await wallet_address(app), info.deposit_address,
        app[CONFIG].withdrawals.fee_limit_trx * SUN_PER_TRX, rows, at)
    return web.json_response(report.as_dict())


async def costs_view(request: web.Request) -> web.Response:
    """The TRX costs alone (operator/costs.py): per day, per USDT moved, the runway."""
    await require_role(request, "admin")
    app = request.app
    at = now_ms()
    rows = await app[DB].read(costs.gather, at)
    address = await wallet_address(app)
    balance = None
    if address:
        try:
            balance = await app[GATEWAY].trx_balance_sun(address)
        except ChainUnavailable:
            balance = None  # the figures from the database stand; the runway waits
    return web.json_response({"costs": costs.report(rows, at, balance),
                              "wallet_address": address})


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(earnings.release_ctx)
    app.router.add_post("/api/calls/{id}/dispute", open_dispute)
    app.router.add_get("/api/admin/disputes", list_disputes)
    app.router.add_get("/api/admin/disputes/{id}", get_dispute)
    app.router.add_post("/api/admin/disputes/{id}/resolve", resolve_dispute)
    app.router.add_get("/api/admin/calls/{id}/record", call_record)
    app.router.add_get("/api/admin/reports", list_reports)
    app.router.add_post("/api/admin/reports/{id}/dismiss", dismiss_report)
    app.router.add_get("/api/admin/users/{id}", get_user)
    app.router.add_post("/api/admin/users/{id}/ban", ban)
    app.router.add_post("/api/admin/users/{id}/unban", unban)
    app.router.add_get("/api/admin/audit-log", list_audit_log)
    app.router.add_get("/api/admin/reconcile", reconcile_view)
    app.router.add_get("/api/admin/costs", costs_view)
