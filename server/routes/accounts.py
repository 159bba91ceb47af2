"""Register, log in, log out, and who am I (API.md "Accounts")."""

from __future__ import annotations

import asyncio
import math

from aiohttp import web

from server import accounts, ledger, validate
from server.appkeys import CONFIG, DB, LOGIN_LIMIT_ACCOUNT, LOGIN_LIMIT_IP, PASSWORDS
from server.auth import CSRF_COOKIE, SESSION_COOKIE, is_secure, session_of
from server.errors import Forbidden, TooManyRequests, Unauthorized, Unprocessable
from server.money import musdt_to_tokens_str


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
    password_hash = await asyncio.to_thread(request.app[PASSWORDS].hash, password)
    user = await request.app[DB].tx(
        accounts.insert_user, email, password_hash, role, display_name
    )
    return web.json_response({"user": user.public()}, status=201)


def _client_ip(request: web.Request) -> str:
    return request.remote or "unknown"


async def login(request: web.Request) -> web.Response:
    body = await validate.read_json(request)
    email = validate.string(body, "email", max_len=254).strip().lower()
    password = validate.string(body, "password", max_len=accounts.MAX_PASSWORD_CHARS)
    by_account = request.app[LOGIN_LIMIT_ACCOUNT]
    by_ip = request.app[LOGIN_LIMIT_IP]
    ip = _client_ip(request)
    wait_s = max(by_account.retry_after(email), by_ip.retry_after(ip))
    if wait_s > 0:
        raise TooManyRequests(
            "too many failed logins; try again later",
            headers={"Retry-After": str(math.ceil(wait_s))},
        )
    db = request.app[DB]
    user, password_hash = await db.read(accounts.password_hash_for, email)
    ok = await asyncio.to_thread(request.app[PASSWORDS].verify, password_hash, password)
    if not ok or user is None:
        by_account.hit(email)
        by_ip.hit(ip)
        raise Unauthorized("wrong email or password", "invalid_credentials")
    if user.banned:
        raise Forbidden("this account is banned", "banned")
    by_account.reset(email)
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
    resp = web.Response(status=204)
    resp.del_cookie(SESSION_COOKIE, path="/")
    resp.del_cookie(CSRF_COOKIE, path="/")
    return resp


async def me(request: web.Request) -> web.Response:
    session = await session_of(request)
    balances = await request.app[DB].read(ledger.user_balances, session.user.id)
    return web.json_response({"user": session.user.public(), "balance": balances_json(balances)})


def setup(app: web.Application) -> None:
    app.router.add_post("/api/auth/register", register)
    app.router.add_post("/api/auth/login", login)
    app.router.add_post("/api/auth/logout", logout)
    app.router.add_get("/api/me", me)
