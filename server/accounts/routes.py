"""Register, log in, log out, and who am I (API.md "Accounts")."""

from __future__ import annotations

import asyncio
import math
import sqlite3
from typing import Any

from aiohttp import web

from meterchat.accounts import rules, sessions
from meterchat.accounts.auth import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    client_address,
    client_key,
    enforce,
    is_secure,
    session_of,
)
from meterchat.accounts.users import User, insert_user_tx, password_hash_for
from meterchat.appkeys import CONFIG, DB, LIMITS, PASSWORDS
from meterchat.calls.manager import HUB
from meterchat.core import validate
from meterchat.core.db import now_ms
from meterchat.core.errors import Forbidden, TooManyRequests, Unauthorized, Unprocessable
from meterchat.core.units import DAY_MS, SECOND_MS, musdt_to_tokens_str
from meterchat.economy import bonuses, consents
from meterchat.money import ledger


def balances_json(b: dict[str, int]) -> dict[str, str]:
    return {bucket: musdt_to_tokens_str(b[bucket]) for bucket in ("available", "held", "pending")}


async def register(request: web.Request) -> web.Response:
    body = await validate.read_json(request)
    email = rules.normalize_email(validate.string(body, "email", max_len=rules.MAX_EMAIL_CHARS))
    password = validate.string(body, "password", max_len=rules.MAX_PASSWORD_CHARS)
    role = validate.string(body, "role", max_len=20)
    display_name = rules.check_display_name(
        validate.string(body, "display_name", max_len=200)
    )
    if role == "admin":
        raise Forbidden(
            "admin accounts are created by the operator with `meterchat user create`",
            "role_not_allowed",
        )
    if role not in rules.SELF_REGISTER_ROLES:
        raise Unprocessable("role must be buyer or seller", "invalid_role")
    rules.check_password_rules(password)
    # Everyone who signs up confirms being 18 or older and accepting the terms.
    if validate.boolean(body, "adult", required=False, default=False) is not True:
        raise Unprocessable("confirm that you are 18 or older (adult: true)",
                            "adult_confirmation_required")
    if validate.boolean(body, "terms", required=False, default=False) is not True:
        raise Unprocessable("accept the terms of service (terms: true)", "terms_required")
    # Each sign-up costs an argon2id hash: limited per client address before hashing.
    enforce("too many sign-ups from this address; try again later",
            (request.app[LIMITS].registrations_by_address, client_key(request)))
    password_hash = await asyncio.to_thread(request.app[PASSWORDS].hash, password)
    user = await request.app[DB].tx(_register_tx, email, password_hash, role, display_name)
    return web.json_response({"user": user.public()}, status=201)


def _register_tx(conn: sqlite3.Connection, email: str, password_hash: str, role: str,
                 display_name: str) -> User:
    """The user, their ledger accounts and the consent they gave, in one transaction (the
    consent is the economy's record, which accounts may not import: joined here)."""
    user = insert_user_tx(conn, email, password_hash, role, display_name)
    consents.record_consent_tx(conn, user.id, now_ms())
    return user


async def login(request: web.Request) -> web.Response:
    body = await validate.read_json(request)
    email = validate.string(body, "email", max_len=rules.MAX_EMAIL_CHARS).strip().lower()
    password = validate.string(body, "password", max_len=rules.MAX_PASSWORD_CHARS)
    guard = request.app[LIMITS].login
    address = client_address(request)
    wait_s = guard.retry_after(email, address)
    if wait_s > 0:
        raise TooManyRequests(
            "too many failed logins; try again later",
            headers={"Retry-After": str(math.ceil(wait_s))},
        )
    db = request.app[DB]
    user, password_hash = await db.read(password_hash_for, email)
    ok = await asyncio.to_thread(request.app[PASSWORDS].verify, password_hash, password)
    if not ok or user is None:
        guard.failed(email, address)
        raise Unauthorized("wrong email or password", "invalid_credentials")
    if user.banned:
        raise Forbidden("this account is banned", "banned")
    guard.succeeded(email, address)
    config = request.app[CONFIG]
    token, csrf = await db.tx(
        sessions.create_session_tx, user.id, config.server.session_days * DAY_MS
    )
    resp = web.json_response({"user": user.public(), "token": token, "csrf_token": csrf})
    secure = is_secure(request)
    max_age = config.server.session_days * DAY_MS // SECOND_MS
    resp.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="Lax", secure=secure,
                    max_age=max_age, path="/")
    resp.set_cookie(CSRF_COOKIE, csrf, httponly=False, samesite="Lax", secure=secure,
                    max_age=max_age, path="/")
    return resp


async def logout(request: web.Request) -> web.Response:
    session = await session_of(request)
    await request.app[DB].tx(sessions.revoke_session_tx, session.id)
    # The sockets opened with this session close too (other sessions' stay open).
    request.app[HUB].disconnect_session(session.id)
    resp = web.Response(status=204)
    resp.del_cookie(SESSION_COOKIE, path="/")
    resp.del_cookie(CSRF_COOKIE, path="/")
    return resp


async def me(request: web.Request) -> web.Response:
    session = await session_of(request)
    balances, bonus = await request.app[DB].read(_me_money, session.user.id)
    # bonus: {unspent, withdrawable} tokens; unspent bonus is part of `available`.
    return web.json_response({"user": session.user.public(), "balance": balances_json(balances),
                              "bonus": bonus})


def _me_money(conn: sqlite3.Connection, user_id: int
              ) -> tuple[dict[str, int], dict[str, Any]]:
    return ledger.user_balances(conn, user_id), bonuses.bonus_view(conn, user_id)


def setup(app: web.Application) -> None:
    app.router.add_post("/api/auth/register", register)
    app.router.add_post("/api/auth/login", login)
    app.router.add_post("/api/auth/logout", logout)
    app.router.add_get("/api/me", me)
