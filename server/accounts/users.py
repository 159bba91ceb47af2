"""User accounts and login sessions: registration rules, argon2id password hashes, session
tokens (stored as SHA-256 hashes, revoked at logout or ban)."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import sqlite3
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from meterchat.core.db import now_ms
from meterchat.core.errors import Conflict, Unauthorized, Unprocessable
from meterchat.money import ledger

ROLES = ("buyer", "seller", "admin")
SELF_REGISTER_ROLES = ("buyer", "seller")
MIN_PASSWORD_CHARS = 10
MAX_PASSWORD_CHARS = 1024
MAX_DISPLAY_NAME_CHARS = 60
# Practical email check: one @, a dot in the domain, no spaces; the mailbox proves the rest.
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s.]{2,}$")


@dataclass(frozen=True)
class User:
    id: int
    email: str
    role: str
    display_name: str
    banned: bool = False

    def public(self) -> dict:
        return {
            "id": str(self.id),
            "email": self.email,
            "role": self.role,
            "display_name": self.display_name,
        }


@dataclass(frozen=True)
class Session:
    id: int
    user: User
    csrf_token: str


def normalize_email(email: str) -> str:
    e = email.strip().lower()
    if len(e) > 254 or not _EMAIL.match(e):
        raise Unprocessable("email is not a valid address", "invalid_email")
    return e


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise Unprocessable(
            f"password must be at least {MIN_PASSWORD_CHARS} characters", "weak_password"
        )
    if len(password) > MAX_PASSWORD_CHARS:
        raise Unprocessable("password is too long", "invalid_password")


def check_display_name(name: str) -> str:
    n = " ".join(name.split())
    if not n or len(n) > MAX_DISPLAY_NAME_CHARS:
        raise Unprocessable(
            f"display_name must be 1 to {MAX_DISPLAY_NAME_CHARS} characters",
            "invalid_display_name",
        )
    return n


class Passwords:
    """argon2id hashing; hashing is CPU work, so callers run it off the event loop."""

    def __init__(self, time_cost: int = 3, memory_kib: int = 65536) -> None:
        self._ph = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=1)
        # Verified against when the email is unknown, so timing does not reveal accounts: a
        # hash of the same cost that no password matches, written out rather than computed
        # (a hash at the default cost would add 0.2 s to every start).
        salt, digest = (base64.b64encode(secrets.token_bytes(n)).rstrip(b"=").decode()
                        for n in (self._ph.salt_len, self._ph.hash_len))
        self._dummy = (f"$argon2id$v=19$m={self._ph.memory_cost},t={self._ph.time_cost},"
                       f"p={self._ph.parallelism}${salt}${digest}")

    def hash(self, password: str) -> str:
        return self._ph.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        try:
            return self._ph.verify(password_hash or self._dummy, password) and bool(
                password_hash
            )
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _user_from_row(row: sqlite3.Row | tuple) -> User:
    return User(
        id=row[0], email=row[1], role=row[2], display_name=row[3], banned=row[4] is not None
    )


_USER_COLS = "id, email, role, display_name, banned_at_ms"


def insert_user(
    conn: sqlite3.Connection, email: str, password_hash: str, role: str, display_name: str
) -> User:
    """Create a user and their ledger accounts (inside a transaction)."""
    if role not in ROLES:
        raise Unprocessable(f"role must be one of {', '.join(ROLES)}", "invalid_role")
    try:
        cur = conn.execute(
            "INSERT INTO users (email, password_hash, role, display_name, created_at_ms)"
            " VALUES (?, ?, ?, ?, ?)",
            (email, password_hash, role, display_name, now_ms()),
        )
    except sqlite3.IntegrityError:
        raise Conflict("an account with this email already exists", "email_taken") from None
    ledger.create_user_accounts(conn, cur.lastrowid)
    return User(cur.lastrowid, email, role, display_name)


def get_user(conn: sqlite3.Connection, user_id: int) -> User | None:
    row = conn.execute(f"SELECT {_USER_COLS} FROM users WHERE id = ?", (user_id,)).fetchone()
    return _user_from_row(row) if row else None


def password_hash_for(conn: sqlite3.Connection, email: str) -> tuple[User | None, str | None]:
    row = conn.execute(
        f"SELECT {_USER_COLS}, password_hash FROM users WHERE email = ?", (email,)
    ).fetchone()
    if row is None:
        return None, None
    return _user_from_row(row), row[5]


def create_session(
    conn: sqlite3.Connection, user_id: int, lifetime_ms: int
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
    row = conn.execute(
        f"SELECT s.id, s.csrf_token, u.{', u.'.join(_USER_COLS.split(', '))}"
        " FROM sessions s JOIN users u ON u.id = s.user_id"
        " WHERE s.token_sha256 = ? AND s.revoked_at_ms IS NULL AND s.expires_at_ms > ?",
        (token_sha256(token), now_ms()),
    ).fetchone()
    if row is None:
        return None
    return Session(id=row[0], csrf_token=row[1], user=_user_from_row(row[2:]))


def revoke_session(conn: sqlite3.Connection, session_id: int) -> None:
    conn.execute(
        "UPDATE sessions SET revoked_at_ms = ? WHERE id = ? AND revoked_at_ms IS NULL",
        (now_ms(), session_id),
    )


def revoke_all_sessions(conn: sqlite3.Connection, user_id: int) -> None:
    conn.execute(
        "UPDATE sessions SET revoked_at_ms = ? WHERE user_id = ? AND revoked_at_ms IS NULL",
        (now_ms(), user_id),
    )


def require_session(conn: sqlite3.Connection, token: str) -> Session:
    s = session_for_token(conn, token)
    if s is None:
        raise Unauthorized("log in first: the session is missing, expired or revoked")
    return s
