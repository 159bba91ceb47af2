"""Users: who an account is (`User`) and the `users` table, read by name. Creating a user
also opens their ledger accounts, in the same transaction."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from meterchat.accounts.passwords import Passwords
from meterchat.accounts.rules import (
    ROLES,
    check_display_name,
    check_password_rules,
    check_role,
    normalize_email,
)
from meterchat.core.db import now_ms
from meterchat.core.errors import Conflict
from meterchat.money import ledger

__all__ = [
    "USER_COLUMNS", "User", "get_user", "get_user_by_email", "insert_user", "insert_user_tx",
    "mark_email_verified_tx", "password_hash_for", "password_hash_of", "set_password_tx",
    "user_from_row",
    # Homes in rules.py and passwords.py; also read through this module by the command line
    # (`meterchat user create`).
    "ROLES", "Passwords", "check_display_name", "check_password_rules", "normalize_email",
]


@dataclass(frozen=True)
class User:
    id: int
    email: str
    role: str
    display_name: str
    banned: bool = False
    email_verified: bool = False
    two_factor: bool = False

    def public(self) -> dict[str, str]:
        """What the API shows of a user (ids are strings)."""
        return {
            "id": str(self.id),
            "email": self.email,
            "role": self.role,
            "display_name": self.display_name,
        }


# The columns user_from_row reads (a join may prefix them: "u." + name).
USER_COLUMNS = ("id", "email", "role", "display_name", "banned_at_ms", "email_verified_at_ms",
                "totp_enabled_at_ms")
_SELECT_USER = f"SELECT {', '.join(USER_COLUMNS)} FROM users"


def user_from_row(row: sqlite3.Row) -> User:
    return User(id=row["id"], email=row["email"], role=row["role"],
                display_name=row["display_name"], banned=row["banned_at_ms"] is not None,
                email_verified=row["email_verified_at_ms"] is not None,
                two_factor=row["totp_enabled_at_ms"] is not None)


def insert_user_tx(conn: sqlite3.Connection, email: str, password_hash: str, role: str,
                   display_name: str) -> User:
    """Create a user and their ledger accounts. The email and name are checked already
    (rules.py); a taken email is 409 email_taken."""
    check_role(role)
    try:
        row = conn.execute(
            "INSERT INTO users (email, password_hash, role, display_name, created_at_ms)"
            " VALUES (?, ?, ?, ?, ?) RETURNING id",
            (email, password_hash, role, display_name, now_ms()),
        ).fetchone()
    except sqlite3.IntegrityError:
        raise Conflict("an account with this email already exists", "email_taken") from None
    user_id: int = row["id"]
    ledger.create_user_accounts(conn, user_id)
    return User(user_id, email, role, display_name)


# The former name, still used by the command line and by tests of other rooms.
insert_user = insert_user_tx


def get_user(conn: sqlite3.Connection, user_id: int) -> User | None:
    row = conn.execute(f"{_SELECT_USER} WHERE id = ?", (user_id,)).fetchone()
    return user_from_row(row) if row else None


def password_hash_for(conn: sqlite3.Connection, email: str) -> tuple[User | None, str | None]:
    """The user with this email and their password hash; (None, None) when there is none."""
    row = conn.execute(
        f"SELECT {', '.join(USER_COLUMNS)}, password_hash FROM users WHERE email = ?", (email,)
    ).fetchone()
    if row is None:
        return None, None
    return user_from_row(row), row["password_hash"]


def get_user_by_email(conn: sqlite3.Connection, email: str) -> User | None:
    row = conn.execute(f"{_SELECT_USER} WHERE email = ?", (email,)).fetchone()
    return user_from_row(row) if row else None


def password_hash_of(conn: sqlite3.Connection, user_id: int) -> str | None:
    row = conn.execute("SELECT password_hash FROM users WHERE id = ?", (user_id,)).fetchone()
    return row["password_hash"] if row else None


def set_password_tx(conn: sqlite3.Connection, user_id: int, password_hash: str, at_ms: int,
                    *, reset: bool) -> None:
    """A new password hash. A reset (by mail or by the operator) also counts as a security
    change: withdrawals may be held after it (withdrawals.hold_after_security_change)."""
    conn.execute("UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user_id))
    if reset:
        conn.execute("UPDATE users SET security_changed_at_ms = ? WHERE id = ?",
                     (at_ms, user_id))


def mark_email_verified_tx(conn: sqlite3.Connection, user_id: int, at_ms: int) -> None:
    conn.execute("UPDATE users SET email_verified_at_ms = COALESCE(email_verified_at_ms, ?)"
                 " WHERE id = ?", (at_ms, user_id))
