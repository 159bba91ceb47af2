"""Who is asking: the session behind a request (cookie or bearer token), CSRF protection for
cookie-authenticated writes, and role checks. Used by handlers at the edge."""

from __future__ import annotations

import hmac

from aiohttp import web

from server import accounts
from server.accounts import Session, User
from server.appkeys import CONFIG, DB
from server.errors import Forbidden, Unauthorized

SESSION_COOKIE = "mc_session"
CSRF_COOKIE = "mc_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SESSION = web.RequestKey("session", Session)



def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return None


async def session_of(request: web.Request, *, allow_query_token: bool = False) -> Session:
    """The request's session; raises 401 when there is none, 403 for a banned user or a
    cookie-authenticated write without the CSRF header."""
    cached = request.get(SESSION)
    if cached is not None:
        return cached
    token = bearer_token(request)
    via_cookie = False
    if token is None and allow_query_token:
        token = request.query.get("token") or None
    if token is None:
        token = request.cookies.get(SESSION_COOKIE)
        via_cookie = token is not None
    if not token:
        raise Unauthorized("log in first: send the session cookie or a bearer token")
    session = await request.app[DB].read(accounts.require_session, token)
    if session.user.banned:
        raise Forbidden("this account is banned", "banned")
    if via_cookie and request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
            raise Forbidden(
                f"cookie-authenticated writes need the {CSRF_HEADER} header from login",
                "csrf_failed",
            )
    request[SESSION] = session
    return session


async def current_user(request: web.Request) -> User:
    return (await session_of(request)).user


async def require_role(request: web.Request, *roles: str) -> User:
    user = await current_user(request)
    if user.role not in roles:
        raise Forbidden(f"only {' or '.join(roles)} accounts may do this", "wrong_role")
    return user


def is_secure(request: web.Request) -> bool:
    return request.secure or request.app[CONFIG].server.public_url.startswith("https://")
