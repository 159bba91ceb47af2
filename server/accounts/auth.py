"""Who is asking: the client address behind a request (through trusted proxies only), the
session behind it (cookie or bearer token), CSRF protection for cookie-authenticated writes,
and role checks. Used by handlers at the edge."""

from __future__ import annotations

import functools
import hmac
import inspect
import ipaddress
import logging
import math
import time
from collections.abc import Awaitable
from typing import TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler

from meterchat.accounts import two_factor
from meterchat.accounts.sessions import (
    TOUCH_EVERY_MS,
    Session,
    note_otp_tx,
    require_session,
    touch_session_tx,
)
from meterchat.accounts.users import User
from meterchat.appkeys import CONFIG, DB, LIMITS
from meterchat.core import logs
from meterchat.core.db import now_ms
from meterchat.core.errors import ApiError, Forbidden, TooManyRequests, Unauthorized
from meterchat.core.ratelimit import SlidingWindow, address_key

log = logging.getLogger("meterchat.http")
T = TypeVar("T")

SESSION_COOKIE = "mc_session"
CSRF_COOKIE = "mc_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
OTP_HEADER = "X-OTP"
SESSION = web.RequestKey("session", Session)
CLIENT = web.RequestKey("client_address", str)


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return None


async def session_of(request: web.Request, *, allow_query_token: bool = False) -> Session:
    """The request's session; raises 401 when there is none, 403 for a banned user or a
    cookie-authenticated write without the CSRF header."""
    if SESSION in request:
        return request[SESSION]
    token = bearer_token(request)
    via_cookie = False
    if token is None and allow_query_token:
        token = request.query.get("token") or None
    if token is None:
        token = request.cookies.get(SESSION_COOKIE)
        via_cookie = token is not None
    if not token:
        raise Unauthorized("log in first: send the session cookie or a bearer token")
    session = await request.app[DB].read(require_session, token)
    if session.user.banned:
        raise Forbidden("this account is banned", "banned")
    if via_cookie and request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        # surrogatepass: a header byte that is not UTF-8 is a wrong token, not an error.
        if not hmac.compare_digest(sent.encode("utf-8", "surrogatepass"),
                                   session.csrf_token.encode()):
            raise Forbidden(
                f"cookie-authenticated writes need the {CSRF_HEADER} header from login",
                "csrf_failed",
            )
    now = now_ms()
    if session.last_seen_at_ms is None or now - session.last_seen_at_ms >= TOUCH_EVERY_MS:
        await request.app[DB].tx(touch_session_tx, session.id, now)
    request[SESSION] = session
    return session


# -- two-factor step-up (withdrawals, operator writes)


async def check_otp(request: web.Request, user: User, otp: object) -> None:
    """For a user with 2FA on: `otp` must be a fresh code (or an unused recovery code), used
    up by this call; 403 otp_required without one, 403 otp_invalid for a wrong or used one,
    429 after security.otp_attempts_per_account wrong ones. Nothing for a user without 2FA."""
    db = request.app[DB]
    if not await db.read(two_factor.is_enabled, user.id):
        return
    if otp is None or otp == "":
        raise Forbidden("two-factor authentication is on: send the code of your "
                        "authenticator app as otp", "otp_required")
    code = two_factor.code_field(otp)
    failures = request.app[LIMITS].otp_failures
    key = str(user.id)
    wait_s = failures.retry_after(key)
    if wait_s > 0:
        raise TooManyRequests("too many wrong codes; try again later",
                              headers={"Retry-After": str(math.ceil(wait_s))})
    ok = await db.tx(two_factor.check_code_tx, user.id, code, time.time(), now_ms())
    if not ok:
        failures.hit(key)
        raise Forbidden("the code is wrong, expired or was used already; wait for the next "
                        "one", "otp_invalid")
    if SESSION in request:
        await db.tx(note_otp_tx, request[SESSION].id, now_ms())


async def otp_counted(request: web.Request, user: User, step: Awaitable[T]) -> T:
    """Await a step that checks a 2FA code (a withdrawal's transaction); a wrong code counts
    against security.otp_attempts_per_account, and past it the step is not run (429)."""
    failures = request.app[LIMITS].otp_failures
    wait_s = failures.retry_after(str(user.id))
    if wait_s > 0:
        if inspect.iscoroutine(step):
            step.close()
        raise TooManyRequests("too many wrong codes; try again later",
                              headers={"Retry-After": str(math.ceil(wait_s))})
    try:
        return await step
    except ApiError as exc:
        if exc.code == "otp_invalid":
            failures.hit(str(user.id))
        raise


@web.middleware
async def admin_2fa_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every write under /api/admin/: with security.require_2fa_for_admins an admin without
    2FA is refused (403 2fa_required); an admin with 2FA sends `otp` (in the JSON body or the
    X-OTP header), unless this session gave a valid code within
    security.admin_otp_fresh_minutes. Requests that are not authenticated pass on to their
    handler, which answers 401."""
    if request.method in SAFE_METHODS or not request.path.startswith("/api/admin/"):
        return await handler(request)
    try:
        session = await session_of(request)
    except ApiError:
        return await handler(request)
    user = session.user
    if user.role != "admin":
        return await handler(request)
    sec = request.app[CONFIG].security
    if not user.two_factor:
        if sec.require_2fa_for_admins:
            raise Forbidden("turn on two-factor authentication (Account page) before "
                            "operator writes", "2fa_required")
        return await handler(request)
    fresh_ms = int(sec.admin_otp_fresh_minutes * 60_000)
    if session.otp_at_ms is not None and now_ms() - session.otp_at_ms < fresh_ms:
        return await handler(request)
    otp: object = request.headers.get(OTP_HEADER) or None
    if otp is None and request.content_type == "application/json" and request.can_read_body:
        try:
            body = await request.json()
        except ValueError:
            body = None  # the handler answers the bad body
        if isinstance(body, dict):
            otp = body.get("otp")
    await check_otp(request, user, otp)
    return await handler(request)


async def current_user(request: web.Request) -> User:
    return (await session_of(request)).user


async def require_role(request: web.Request, *roles: str) -> User:
    user = await current_user(request)
    if user.role not in roles:
        raise Forbidden(f"only {' or '.join(roles)} accounts may do this", "wrong_role")
    return user


# -- the client address


Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_warned_untrusted_proxy = False


@functools.lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(e.strip(), strict=False) for e in entries)


def _ip(text: str) -> Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:
        text = text[1:text.index("]")]  # [2001:db8::1]:443
    elif text.count(":") == 1:
        text = text.split(":")[0]  # 203.0.113.7:5000
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # a dual-stack socket's view of an IPv4 peer
    return ip


def _trusted(ip: Address | None, networks: tuple[Network, ...]) -> bool:
    return ip is not None and any(ip in n for n in networks)


def forwarded_client(peer: str | None, forwarded_for: list[str],
                     networks: tuple[Network, ...]) -> str:
    """The client address of a request that came from `peer` with these X-Forwarded-For
    headers. Pure rule: the headers count only when the peer is a trusted proxy; then the
    client is the right-most address that is not a trusted proxy (every proxy appends the
    address it saw, so whatever a client wrote itself stands further left and is never
    believed). Addresses are canonical text (IPv4 peers of a dual-stack socket as IPv4)."""
    peer_ip = _ip(peer or "")
    client = str(peer_ip) if peer_ip is not None else (peer or "unknown")
    if not _trusted(peer_ip, networks):
        return client
    hops = [h.strip() for header in forwarded_for for h in header.split(",")]
    for hop in reversed([h for h in hops if h]):
        ip = _ip(hop)
        if ip is None:
            return hop[:64]  # written by the client, behind no trusted proxy: what it is
        client = str(ip)
        if not _trusted(ip, networks):
            return client
    return client


def client_address(request: web.Request) -> str:
    """The address of whoever sent this request (for limits and logs)."""
    if CLIENT in request:
        return request[CLIENT]
    entries = tuple(request.app[CONFIG].server.trusted_proxies)
    forwarded = request.headers.getall("X-Forwarded-For", [])
    address = forwarded_client(request.remote, forwarded, _networks(entries))
    if forwarded and not entries:
        _warn_untrusted_proxy(request.remote)
    request[CLIENT] = address
    return address


def client_key(request: web.Request) -> str:
    """What per-address limits count for this request (IPv6: its /64)."""
    return address_key(client_address(request))


def _warn_untrusted_proxy(peer: str | None) -> None:
    global _warned_untrusted_proxy
    ip = _ip(peer or "")
    if _warned_untrusted_proxy or ip is None or not (ip.is_loopback or ip.is_private):
        return
    _warned_untrusted_proxy = True
    logs.event(log, "proxy_not_trusted", logging.WARNING, peer=str(ip),
               hint="requests carry X-Forwarded-For from a local address but "
                    "server.trusted_proxies is empty: every client counts as this peer for "
                    "login and sign-up limits; set it to the proxy's address")


def from_trusted_proxy(request: web.Request) -> bool:
    networks = _networks(tuple(request.app[CONFIG].server.trusted_proxies))
    return _trusted(_ip(request.remote or ""), networks)


def is_secure(request: web.Request) -> bool:
    """Did the user reach us over https? Our own TLS, an https public_url, or a trusted
    proxy saying so with X-Forwarded-Proto (from anybody else that header means nothing)."""
    if request.secure or request.app[CONFIG].server.public_url.startswith("https://"):
        return True
    proto = request.headers.get("X-Forwarded-Proto", "")
    # The right-most value is the one the nearest proxy saw.
    nearest = proto.rsplit(",", 1)[-1].strip().lower()
    return nearest == "https" and from_trusted_proxy(request)


def enforce(message: str, *limits: tuple[SlidingWindow, str]) -> None:
    """429 with Retry-After while any (window, key) is full; otherwise count one event in
    each. Refused requests are not counted."""
    wait_s = max(window.retry_after(key) for window, key in limits)
    if wait_s > 0:
        raise TooManyRequests(message, headers={"Retry-After": str(math.ceil(wait_s))})
    for window, key in limits:
        window.hit(key)
