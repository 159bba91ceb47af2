"""Login sessions: a random token (only its SHA-256 is stored), a CSRF token for cookie
writes, an expiry; revoked at logout, and all of a user's at a ban."""

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


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_session_tx(conn: sqlite3.Connection, user_id: int, lifetime_ms: int
                      ) -> tuple[str, str]:
    """A new session; returns (token, csrf_token). Only the token's hash is stored."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(24)
    now = now_ms()
    conn.execute(
        "INSERT INTO sessions (user_id, token_sha256, csrf_token, created_at_ms, expires_at_ms)"
        " VALUES (?, ?, ?, ?, ?)",
        (user_id, token_sha256(token), csrf, now, now + lifetime_ms),
    )
    return token, csrf


def session_for_token(conn: sqlite3.Connection, token: str) -> Session | None:
    """The live session of a token: not revoked, not expired; None otherwise."""
    user_cols = ", ".join(f"u.{c}" for c in USER_COLUMNS)
    row = conn.execute(
        f"SELECT s.id AS session_id, s.csrf_token, {user_cols}"
        " FROM sessions s JOIN users u ON u.id = s.user_id"
        " WHERE s.token_sha256 = ? AND s.revoked_at_ms IS NULL AND s.expires_at_ms > ?",
        (token_sha256(token), now_ms()),
    ).fetchone()
    if row is None:
        return None
    return Session(id=row["session_id"], csrf_token=row["csrf_token"], user=user_from_row(row))


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


def revoke_all_sessions_tx(conn: sqlite3.Connection, user_id: int) -> None:
    """Log a user out everywhere (a ban)."""
    conn.execute(
        "UPDATE sessions SET revoked_at_ms = ? WHERE user_id = ? AND revoked_at_ms IS NULL",
        (now_ms(), user_id),
    )
