"""Login sessions: a random token (only its SHA-256 is stored), a CSRF token for cookie
writes, an expiry, what it was opened from (client address, user agent) and when it was last
seen; revoked at logout, one by one from the sessions list, all but the current one at a
password change, and all of a user's at a ban, a password reset or "log out everywhere".
Also the client addresses a user logged in from (a login from a new one is mailed)."""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from dataclasses import dataclass

from meterchat.accounts.users import USER_COLUMNS, User, user_from_row
from meterchat.core.db import now_ms
from meterchat.core.errors import Unauthorized


@dataclass(frozen=True)
class Session:
    id: int
    user: User
    csrf_token: str
    last_seen_at_ms: int | None = None
    otp_at_ms: int | None = None


MAX_USER_AGENT_CHARS = 300
# A session's last_seen is written at most once per this (not one write per request).
TOUCH_EVERY_MS = 60_000


def token_sha256(token: str) -> str:
    """What is stored of a secret token (a session's, or a mailed one's: accounts/tokens.py).
    surrogatepass: a header's byte that is not UTF-8 arrives as a surrogate; its hash then
    matches no token instead of raising."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def create_session_tx(conn: sqlite3.Connection, user_id: int, lifetime_ms: int,
                      client_address: str | None = None, user_agent: str | None = None,
                      otp_verified: bool = False) -> tuple[str, str]:
    """A new session; returns (token, csrf_token). Only the token's hash is stored."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(24)
    now = now_ms()
    conn.execute(
        "INSERT INTO sessions (user_id, token_sha256, csrf_token, created_at_ms, expires_at_ms,"
        " client_address, user_agent, last_seen_at_ms, otp_at_ms)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (user_id, token_sha256(token), csrf, now, now + lifetime_ms, client_address,
         (user_agent or "")[:MAX_USER_AGENT_CHARS] or None, now,
         now if otp_verified else None),
    )
    return token, csrf


def session_for_token(conn: sqlite3.Connection, token: str) -> Session | None:
    """The live session of a token: not revoked, not expired; None otherwise."""
    user_cols = ", ".join(f"u.{c}" for c in USER_COLUMNS)
    row = conn.execute(
        f"SELECT s.id AS session_id, s.csrf_token, s.last_seen_at_ms, s.otp_at_ms, {user_cols}"
        " FROM sessions s JOIN users u ON u.id = s.user_id"
        " WHERE s.token_sha256 = ? AND s.revoked_at_ms IS NULL AND s.expires_at_ms > ?",
        (token_sha256(token), now_ms()),
    ).fetchone()
    if row is None:
        return None
    return Session(id=row["session_id"], csrf_token=row["csrf_token"], user=user_from_row(row),
                   last_seen_at_ms=row["last_seen_at_ms"], otp_at_ms=row["otp_at_ms"])


def require_session(conn: sqlite3.Connection, token: str) -> Session:
    s = session_for_token(conn, token)
    if s is None:
        raise Unauthorized("log in first: the session is missing, expired or revoked")
    return s


def revoke_session_tx(conn: sqlite3.Connection, session_id: int) -> None:
    conn.execute(
        "UPDATE sessions SET revoked_at_ms = ? WHERE id = ? AND revoked_at_ms IS NULL",
        (now_ms(), session_id),
    )


def revoke_all_sessions_tx(conn: sqlite3.Connection, user_id: int,
                           except_session: int | None = None) -> list[int]:
    """Log a user out everywhere (a ban, a reset, "log out everywhere"), or everywhere but
    one session (a password change); returns the ids revoked."""
    rows = conn.execute(
        "UPDATE sessions SET revoked_at_ms = ? WHERE user_id = ? AND revoked_at_ms IS NULL"
        " AND id IS NOT ? RETURNING id",
        (now_ms(), user_id, except_session),
    ).fetchall()
    return [r["id"] for r in rows]


def revoke_own_session_tx(conn: sqlite3.Connection, user_id: int, session_id: int) -> bool:
    """Revoke one of the user's live sessions; False when it is not theirs or not live."""
    cur = conn.execute(
        "UPDATE sessions SET revoked_at_ms = ? WHERE id = ? AND user_id = ?"
        " AND revoked_at_ms IS NULL AND expires_at_ms > ?",
        (now_ms(), session_id, user_id, now_ms()))
    return cur.rowcount == 1


def touch_session_tx(conn: sqlite3.Connection, session_id: int, at_ms: int) -> None:
    conn.execute("UPDATE sessions SET last_seen_at_ms = ? WHERE id = ?", (at_ms, session_id))


def note_otp_tx(conn: sqlite3.Connection, session_id: int, at_ms: int) -> None:
    """This session just gave a valid 2FA code (security.admin_otp_fresh_minutes)."""
    conn.execute("UPDATE sessions SET otp_at_ms = ? WHERE id = ?", (at_ms, session_id))


@dataclass(frozen=True)
class SessionInfo:
    id: int
    created_at_ms: int
    last_seen_at_ms: int | None
    expires_at_ms: int
    client_address: str | None
    user_agent: str | None


def live_sessions(conn: sqlite3.Connection, user_id: int) -> list[SessionInfo]:
    rows = conn.execute(
        "SELECT id, created_at_ms, last_seen_at_ms, expires_at_ms, client_address, user_agent"
        " FROM sessions WHERE user_id = ? AND revoked_at_ms IS NULL AND expires_at_ms > ?"
        " ORDER BY COALESCE(last_seen_at_ms, created_at_ms) DESC, id DESC",
        (user_id, now_ms())).fetchall()
    return [SessionInfo(*r) for r in rows]


def note_login_address_tx(conn: sqlite3.Connection, user_id: int, address_key: str,
                          at_ms: int) -> bool:
    """Record a login from this address (IPv6: its /64); True when the user never logged in
    from it before (the first login of an account is not "new": it has no earlier one)."""
    seen_any = conn.execute("SELECT 1 FROM login_addresses WHERE user_id = ? LIMIT 1",
                            (user_id,)).fetchone() is not None
    cur = conn.execute(
        "INSERT INTO login_addresses (user_id, address_key, first_at_ms, last_at_ms)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (user_id, address_key) DO UPDATE SET"
        " last_at_ms = excluded.last_at_ms RETURNING first_at_ms", (user_id, address_key,
                                                                   at_ms, at_ms))
    first = cur.fetchone()["first_at_ms"]
    return seen_any and first == at_ms
