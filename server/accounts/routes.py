"""Register, log in, log out, and who am I (API.md "Accounts")."""

from __future__ import annotations

import asyncio
import math

from aiohttp import web

from meterchat.accounts import users as accounts
from meterchat.accounts.auth import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    client_address,
    client_key,
    enforce,
    is_secure,
    session_of,
)
from meterchat.appkeys import CONFIG, DB, LIMITS, PASSWORDS
from meterchat.calls.manager import HUB
from meterchat.core import validate
from meterchat.core.db import now_ms
from meterchat.core.errors import Forbidden, TooManyRequests, Unauthorized, Unprocessable
from meterchat.core.units import musdt_to_tokens_str
from meterchat.economy import bonuses, consents
from meterchat.money import ledger


def balances_json(b: dict[str, int]) -> dict[str, str]:
    return {bucket: musdt_to_tokens_str(b[bucket]) for bucket in ("available", "held", "pending")}


async def register(request: web.Request) -> web.Response:
    body = await validate.read_json(request)
    email = accounts.normalize_email(validate.string(body, "email", max_len=254))
    password = validate.string(body, "password", max_len=accounts.MAX_PASSWORD_CHARS)
    role = validate.string(body, "role", max_len=20)
    display_name = accounts.check_display_name(
        validate.string(body, "display_name", max_len=200)
    )
    if role == "admin":
        raise Forbidden(
            "admin accounts are created by the operator with `meterchat user create`",
            "role_not_allowed",
        )
    if role not in accounts.SELF_REGISTER_ROLES:
        raise Unprocessable("role must be buyer or seller", "invalid_role")
    accounts.check_password_rules(password)
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
    user = await request.app[DB].tx(_insert_with_consent, email, password_hash, role,
                                    display_name)
    return web.json_response({"user": user.public()}, status=201)


def _insert_with_consent(conn, email: str, password_hash: str, role: str,
                         display_name: str) -> accounts.User:
    user = accounts.insert_user(conn, email, password_hash, role, display_name)
    consents.record_consent_tx(conn, user.id, now_ms())
    return user


async def login(request: web.Request) -> web.Response:
    body = await validate.read_json(request)
    email = validate.string(body, "email", max_len=254).strip().lower()
    password = validate.string(body, "password", max_len=accounts.MAX_PASSWORD_CHARS)
    guard = request.app[LIMITS].login
    address = client_address(request)
    wait_s = guard.retry_after(email, address)
    if wait_s > 0:
        raise TooManyRequests(
            "too many failed logins; try again later",
            headers={"Retry-After": str(math.ceil(wait_s))},
        )
    db = request.app[DB]
    user, password_hash = await db.read(accounts.password_hash_for, email)
    ok = await asyncio.to_thread(request.app[PASSWORDS].verify, password_hash, password)
    if not ok or user is None:
        guard.failed(email, address)
        raise Unauthorized("wrong email or password", "invalid_credentials")
    if user.banned:
        raise Forbidden("this account is banned", "banned")
    guard.succeeded(email, address)
    config = request.app[CONFIG]
    token, csrf = await db.tx(
        accounts.create_session, user.id, config.server.session_days * 86_400_000
    )
    resp = web.json_response({"user": user.public(), "token": token, "csrf_token": csrf})
    secure = is_secure(request)
    max_age = config.server.session_days * 86_400
    resp.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="Lax", secure=secure,
                    max_age=max_age, path="/")
    resp.set_cookie(CSRF_COOKIE, csrf, httponly=False, samesite="Lax", secure=secure,
                    max_age=max_age, path="/")
    return resp


async def logout(request: web.Request) -> web.Response:
    session = await session_of(request)
    await request.app[DB].tx(accounts.revoke_session, session.id)
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


def _me_money(conn, user_id: int) -> tuple[dict, dict]:
    return ledger.user_balances(conn, user_id), bonuses.bonus_view(conn, user_id)


def setup(app: web.Application) -> None:
    app.router.add_post("/api/auth/register", register)
    app.router.add_post("/api/auth/login", login)
    app.router.add_post("/api/auth/logout", logout)
    app.router.add_get("/api/me", me)
