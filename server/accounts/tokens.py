"""Single-use tokens sent by mail (a password reset, an email verification): random, only
their SHA-256 stored, expiring, used once. A new token of a purpose voids the user's older
unused ones of that purpose."""

from __future__ import annotations

import secrets
import sqlite3

from meterchat.accounts.sessions import token_sha256
from meterchat.core.errors import BadRequest

PASSWORD_RESET = "password_reset"
EMAIL_VERIFY = "email_verify"
MAX_TOKEN_CHARS = 200


def create_token_tx(conn: sqlite3.Connection, user_id: int, purpose: str, ttl_ms: int,
                    at_ms: int) -> str:
    """A new token (returned once, to be mailed); the user's older unused ones of this
    purpose stop working."""
    conn.execute("UPDATE account_tokens SET used_at_ms = ? WHERE user_id = ? AND purpose = ?"
                 " AND used_at_ms IS NULL", (at_ms, user_id, purpose))
    token = secrets.token_urlsafe(32)
    conn.execute(
        "INSERT INTO account_tokens (user_id, purpose, token_sha256, created_at_ms,"
        " expires_at_ms) VALUES (?, ?, ?, ?, ?)",
        (user_id, purpose, token_sha256(token), at_ms, at_ms + ttl_ms))
    return token


def consume_token_tx(conn: sqlite3.Connection, purpose: str, token: str, at_ms: int) -> int:
    """The user id of a live token, which is used up by this call; a token that is unknown,
    used, voided or expired is 400 invalid_token (one answer for all: nothing to probe)."""
    row = conn.execute(
        "UPDATE account_tokens SET used_at_ms = ? WHERE token_sha256 = ? AND purpose = ?"
        " AND used_at_ms IS NULL AND expires_at_ms > ? RETURNING user_id",
        (at_ms, token_sha256(token), purpose, at_ms)).fetchone()
    if row is None:
        raise BadRequest("this link is invalid, expired or was used already; ask for a new "
                         "one", "invalid_token")
    user_id: int = row["user_id"]
    return user_id
