"""Register, log in, log out, and who am I (API.md "Accounts"); the account's security
(API.md "Accounts and security"): password change and reset by mail, email verification,
TOTP two-factor, the sessions list. The mails these changes cause are written to the outbox
in the same transaction (accounts comes before mail, so the joins are here)."""

from __future__ import annotations

import asyncio
import math
import sqlite3
import time
from typing import Any

from aiohttp import web

from meterchat.accounts import rules, sessions, tokens, totp, two_factor, users
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
from meterchat.core.config import Config
from meterchat.core.db import now_ms
from meterchat.core.errors import (
    Forbidden,
    NotFound,
    TooManyRequests,
    Unauthorized,
    Unprocessable,
)
from meterchat.core.ratelimit import address_key
from meterchat.core.units import DAY_MS, SECOND_MS, iso_ms, musdt_to_tokens_str
from meterchat.economy import bonuses, consents
from meterchat.mail import messages, outbox
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
    user = await request.app[DB].tx(_register_tx, email, password_hash, role, display_name,
                                    request.app[CONFIG])
    return web.json_response({"user": user.public()}, status=201)


def _register_tx(conn: sqlite3.Connection, email: str, password_hash: str, role: str,
                 display_name: str, config: Config) -> User:
    """The user, their ledger accounts, the consent they gave and the mail that verifies
    their address, in one transaction (the consent is the economy's record and the mail the
    outbox's, which accounts may not import: joined here)."""
    at = now_ms()
    user = insert_user_tx(conn, email, password_hash, role, display_name)
    consents.record_consent_tx(conn, user.id, at)
    _verification_mail_tx(conn, user, config, at)
    return user


def _verification_mail_tx(conn: sqlite3.Connection, user: User, config: Config,
                          at: int) -> None:
    ttl_h = config.mail.verify_ttl_hours
    token = tokens.create_token_tx(conn, user.id, tokens.EMAIL_VERIFY, ttl_h * 3_600_000, at)
    outbox.enqueue_tx(conn, user.email, messages.verify_email(
        messages.links_base(config), user.display_name, token, ttl_h), at, user.id)


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
    if user.two_factor:
        await _login_code(request, user, body.get("otp"), email, address)
    guard.succeeded(email, address)
    config = request.app[CONFIG]
    token, csrf = await db.tx(
        _login_tx, user, config.server.session_days * DAY_MS, address,
        validate.header_text(request, "User-Agent"), user.two_factor, config)
    resp = web.json_response({"user": user.public(), "token": token, "csrf_token": csrf})
    secure = is_secure(request)
    max_age = config.server.session_days * DAY_MS // SECOND_MS
    resp.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="Lax", secure=secure,
                    max_age=max_age, path="/")
    resp.set_cookie(CSRF_COOKIE, csrf, httponly=False, samesite="Lax", secure=secure,
                    max_age=max_age, path="/")
    return resp


async def _login_code(request: web.Request, user: User, otp: Any, email: str,
                      address: str) -> None:
    """The second factor of a login: 401 otp_required without a code, 401 otp_invalid for a
    wrong or used one (counted as a failed login, and per account)."""
    if otp is None or otp == "":
        raise Unauthorized("two-factor authentication is on: send the code of your "
                           "authenticator app (or a recovery code) as otp", "otp_required")
    code = two_factor.code_field(otp)
    failures = request.app[LIMITS].otp_failures
    wait_s = failures.retry_after(str(user.id))
    if wait_s > 0:
        raise TooManyRequests("too many wrong codes; try again later",
                              headers={"Retry-After": str(math.ceil(wait_s))})
    if not await request.app[DB].tx(two_factor.check_code_tx, user.id, code, time.time(),
                                    now_ms()):
        request.app[LIMITS].login.failed(email, address)
        failures.hit(str(user.id))
        raise Unauthorized("the code is wrong, expired or was used already",
                           "otp_invalid")


def _login_tx(conn: sqlite3.Connection, user: User, lifetime_ms: int, address: str,
              user_agent: str, otp_verified: bool, config: Config) -> tuple[str, str]:
    """The session, and a mail when the user never logged in from this address before."""
    at = now_ms()
    made = sessions.create_session_tx(conn, user.id, lifetime_ms, address, user_agent,
                                      otp_verified)
    if sessions.note_login_address_tx(conn, user.id, address_key(address), at):
        outbox.enqueue_tx(conn, user.email, messages.new_login(address, user_agent,
                                                               iso_ms(at)), at, user.id)
    return made


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
    user = {**session.user.public(), "email_verified": session.user.email_verified,
            "two_factor": session.user.two_factor}
    return web.json_response({"user": user, "balance": balances_json(balances),
                              "bonus": bonus})


def _me_money(conn: sqlite3.Connection, user_id: int
              ) -> tuple[dict[str, int], dict[str, Any]]:
    return ledger.user_balances(conn, user_id), bonuses.bonus_view(conn, user_id)


# -- passwords


def _new_password(body: validate.Body) -> str:
    password: str = validate.string(body, "new_password", max_len=rules.MAX_PASSWORD_CHARS)
    rules.check_password_rules(password)
    return password


async def change_password(request: web.Request) -> web.Response:
    """The current password and a new one; every other session of the user is revoked."""
    session = await session_of(request)
    body = await validate.read_json(request)
    current = validate.string(body, "current_password", max_len=rules.MAX_PASSWORD_CHARS)
    new = _new_password(body)
    user = session.user
    guard = request.app[LIMITS].login
    address = client_address(request)
    wait_s = guard.retry_after(user.email, address)
    if wait_s > 0:
        raise TooManyRequests("too many wrong passwords; try again later",
                              headers={"Retry-After": str(math.ceil(wait_s))})
    db, pw = request.app[DB], request.app[PASSWORDS]
    stored = await db.read(users.password_hash_of, user.id)
    if not await asyncio.to_thread(pw.verify, stored, current):
        guard.failed(user.email, address)
        raise Forbidden("the current password is wrong", "wrong_password")
    new_hash = await asyncio.to_thread(pw.hash, new)
    revoked = await db.tx(_set_password_tx, user, new_hash, "changed", session.id, False)
    for sid in revoked:
        request.app[HUB].disconnect_session(sid)
    return web.Response(status=204)


def _set_password_tx(conn: sqlite3.Connection, user: User, password_hash: str, how: str,
                     keep_session: int | None, reset: bool) -> list[int]:
    at = now_ms()
    users.set_password_tx(conn, user.id, password_hash, at, reset=reset)
    revoked = sessions.revoke_all_sessions_tx(conn, user.id, except_session=keep_session)
    outbox.enqueue_tx(conn, user.email, messages.password_changed(how), at, user.id)
    return revoked


async def request_reset(request: web.Request) -> web.Response:
    """202 whatever the email: a reset mail goes out only when it has an account. Both
    paths do the same work (an argon2id verify and one database transaction), so neither
    the answer nor its time tells whether an account exists."""
    body = await validate.read_json(request)
    email = rules.normalize_email(validate.string(body, "email",
                                                  max_len=rules.MAX_EMAIL_CHARS))
    limits = request.app[LIMITS]
    enforce("too many password reset requests from this address; try again later",
            (limits.resets_by_address, client_key(request)))
    db = request.app[DB]
    user, password_hash = await db.read(password_hash_for, email)
    # The known path verifies against the real hash, the unknown one against the dummy.
    await asyncio.to_thread(request.app[PASSWORDS].verify, password_hash, "reset:" + email)
    # Per email, silently: a 429 here would tell which addresses are being mailed.
    send = limits.mails_by_email.retry_after(email) == 0
    if send:
        limits.mails_by_email.hit(email)
    await db.tx(_reset_request_tx, user if send and user and not user.banned else None,
                request.app[CONFIG])
    return web.json_response({"status": "if this email has an account, a reset link was "
                                        "sent to it"}, status=202)


def _reset_request_tx(conn: sqlite3.Connection, user: User | None, config: Config) -> None:
    if user is None:
        return
    at = now_ms()
    ttl = config.mail.reset_ttl_minutes
    token = tokens.create_token_tx(conn, user.id, tokens.PASSWORD_RESET, ttl * 60_000, at)
    outbox.enqueue_tx(conn, user.email, messages.password_reset(messages.links_base(config), token,
                                                                ttl), at, user.id)


async def confirm_reset(request: web.Request) -> web.Response:
    """A reset token from the mail and a new password: every session revoked."""
    body = await validate.read_json(request)
    token = validate.string(body, "token", max_len=tokens.MAX_TOKEN_CHARS)
    new = _new_password(body)
    new_hash = await asyncio.to_thread(request.app[PASSWORDS].hash, new)
    revoked = await request.app[DB].tx(_confirm_reset_tx, token, new_hash)
    for sid in revoked:
        request.app[HUB].disconnect_session(sid)
    return web.Response(status=204)


def _confirm_reset_tx(conn: sqlite3.Connection, token: str, password_hash: str) -> list[int]:
    at = now_ms()
    user = users.get_user(conn, tokens.consume_token_tx(conn, tokens.PASSWORD_RESET, token, at))
    if user is None:  # pragma: no cover - a token always has its user (foreign key)
        raise NotFound("no such user")
    # The link reached the mailbox: that verifies the address too.
    users.mark_email_verified_tx(conn, user.id, at)
    return _set_password_tx(conn, user, password_hash, "reset with a link sent by mail",
                            None, True)


# -- email verification


async def verify_email(request: web.Request) -> web.Response:
    body = await validate.read_json(request)
    token = validate.string(body, "token", max_len=tokens.MAX_TOKEN_CHARS)
    await request.app[DB].tx(_verify_tx, token)
    return web.Response(status=204)


def _verify_tx(conn: sqlite3.Connection, token: str) -> None:
    at = now_ms()
    users.mark_email_verified_tx(conn, tokens.consume_token_tx(conn, tokens.EMAIL_VERIFY,
                                                               token, at), at)


async def resend_verification(request: web.Request) -> web.Response:
    """Another verification mail (the first one's link expired or was lost)."""
    session = await session_of(request)
    user = session.user
    if user.email_verified:
        return web.json_response({"status": "the email is verified already"}, status=200)
    enforce("too many mails to this address; try again later",
            (request.app[LIMITS].mails_by_email, user.email))
    await request.app[DB].tx(_verification_mail_tx, user, request.app[CONFIG], now_ms())
    return web.json_response({"status": "a verification link was sent"}, status=202)


# -- two-factor


async def setup_2fa(request: web.Request) -> web.Response:
    session = await session_of(request)
    secret = await request.app[DB].tx(two_factor.setup_tx, session.user.id)
    uri = totp.otpauth_uri(secret, session.user.email, request.app[CONFIG].security.totp_issuer)
    import segno  # the QR code library, for this page alone

    qr = segno.make(uri, error="m").svg_data_uri(scale=4, border=2)
    return web.json_response({"secret": secret, "otpauth_uri": uri, "qr": qr})


async def enable_2fa(request: web.Request) -> web.Response:
    session = await session_of(request)
    body = await validate.read_json(request)
    code = two_factor.code_field(body.get("code"))
    codes = await request.app[DB].tx(_enable_2fa_tx, session.user, code, session.id)
    if codes is None:
        raise Forbidden("the code is wrong or expired: type the one your app shows now",
                        "otp_invalid")
    return web.json_response({"recovery_codes": codes})


def _enable_2fa_tx(conn: sqlite3.Connection, user: User, code: str,
                   session_id: int) -> list[str] | None:
    at = now_ms()
    codes = two_factor.enable_tx(conn, user.id, code, time.time(), at)
    if codes is not None:
        sessions.note_otp_tx(conn, session_id, at)
        outbox.enqueue_tx(conn, user.email, messages.two_factor_changed(True), at, user.id)
    return codes


async def disable_2fa(request: web.Request) -> web.Response:
    session = await session_of(request)
    body = await validate.read_json(request)
    password = validate.string(body, "password", max_len=rules.MAX_PASSWORD_CHARS)
    code = two_factor.code_field(body.get("code"))
    user = session.user
    db = request.app[DB]
    if not await db.read(two_factor.is_enabled, user.id):
        raise Unprocessable("two-factor authentication is not on", "2fa_not_enabled")
    stored = await db.read(users.password_hash_of, user.id)
    if not await asyncio.to_thread(request.app[PASSWORDS].verify, stored, password):
        request.app[LIMITS].login.failed(user.email, client_address(request))
        raise Forbidden("the password is wrong", "wrong_password")
    if not await db.tx(_disable_2fa_tx, user, code):
        request.app[LIMITS].otp_failures.hit(str(user.id))
        raise Forbidden("the code is wrong, expired or was used already", "otp_invalid")
    return web.Response(status=204)


def _disable_2fa_tx(conn: sqlite3.Connection, user: User, code: str) -> bool:
    at = now_ms()
    if not two_factor.check_code_tx(conn, user.id, code, time.time(), at):
        return False
    two_factor.disable_tx(conn, user.id, at)
    outbox.enqueue_tx(conn, user.email, messages.two_factor_changed(False), at, user.id)
    return True


# -- sessions


async def list_sessions(request: web.Request) -> web.Response:
    session = await session_of(request)
    rows = await request.app[DB].read(sessions.live_sessions, session.user.id)
    return web.json_response({"sessions": [{
        "id": str(r.id), "current": r.id == session.id,
        "created_at": iso_ms(r.created_at_ms), "last_seen_at": iso_ms(r.last_seen_at_ms),
        "expires_at": iso_ms(r.expires_at_ms), "client_address": r.client_address,
        "user_agent": r.user_agent,
    } for r in rows]})


async def revoke_session(request: web.Request) -> web.Response:
    session = await session_of(request)
    sid = validate.path_id(request, "session")
    if not await request.app[DB].tx(sessions.revoke_own_session_tx, session.user.id, sid):
        raise NotFound("no such session of yours", "session_not_found")
    request.app[HUB].disconnect_session(sid)
    resp = web.Response(status=204)
    if sid == session.id:
        resp.del_cookie(SESSION_COOKIE, path="/")
        resp.del_cookie(CSRF_COOKIE, path="/")
    return resp


async def logout_everywhere(request: web.Request) -> web.Response:
    """Every session of the user revoked, this one too."""
    session = await session_of(request)
    for sid in await request.app[DB].tx(sessions.revoke_all_sessions_tx, session.user.id):
        request.app[HUB].disconnect_session(sid)
    resp = web.Response(status=204)
    resp.del_cookie(SESSION_COOKIE, path="/")
    resp.del_cookie(CSRF_COOKIE, path="/")
    return resp


def setup(app: web.Application) -> None:
    app.router.add_post("/api/auth/register", register)
    app.router.add_post("/api/auth/login", login)
    app.router.add_post("/api/auth/logout", logout)
    app.router.add_post("/api/auth/logout-everywhere", logout_everywhere)
    app.router.add_post("/api/auth/password", change_password)
    app.router.add_post("/api/auth/password-reset", request_reset)
    app.router.add_post("/api/auth/password-reset/confirm", confirm_reset)
    app.router.add_post("/api/auth/email/verify", verify_email)
    app.router.add_post("/api/auth/email/resend", resend_verification)
    app.router.add_post("/api/auth/2fa/setup", setup_2fa)
    app.router.add_post("/api/auth/2fa/enable", enable_2fa)
    app.router.add_post("/api/auth/2fa/disable", disable_2fa)
    app.router.add_get("/api/me", me)
    app.router.add_get("/api/me/sessions", list_sessions)
    app.router.add_delete("/api/me/sessions/{id}", revoke_session)
