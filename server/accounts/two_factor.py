"""Two-factor state of an account: a setup (a secret not yet in force), enabling it with a
first code (ten recovery codes, stored hashed), checking a code (a TOTP code once, or an
unused recovery code), disabling it. The rules are in totp.py."""

from __future__ import annotations

import sqlite3

from meterchat.accounts import totp
from meterchat.core.errors import Conflict, Unprocessable

MAX_CODE_CHARS = 64


def setup_tx(conn: sqlite3.Connection, user_id: int) -> str:
    """A new secret for the user to enrol; 2FA is not on until enable_tx. A setup again
    before enabling replaces the secret."""
    row = conn.execute("SELECT totp_enabled_at_ms FROM users WHERE id = ?",
                       (user_id,)).fetchone()
    if row is not None and row["totp_enabled_at_ms"] is not None:
        raise Conflict("two-factor authentication is on already; turn it off first",
                       "2fa_already_enabled")
    secret = totp.new_secret()
    conn.execute("UPDATE users SET totp_secret = ?, totp_last_step = NULL WHERE id = ?",
                 (secret, user_id))
    return secret


def enable_tx(conn: sqlite3.Connection, user_id: int, code: str, now_s: float,
              at_ms: int) -> list[str] | None:
    """2FA on when the code matches the set-up secret; returns the ten recovery codes (the
    only time they are seen), or None for a wrong code."""
    row = conn.execute("SELECT totp_secret, totp_enabled_at_ms, totp_last_step FROM users"
                       " WHERE id = ?", (user_id,)).fetchone()
    if row is None or row["totp_enabled_at_ms"] is not None:
        raise Conflict("two-factor authentication is on already", "2fa_already_enabled")
    if row["totp_secret"] is None:
        raise Conflict("set it up first (POST /api/auth/2fa/setup)", "2fa_not_set_up")
    step = totp.matching_step(row["totp_secret"], code, now_s, row["totp_last_step"])
    if step is None:
        return None
    conn.execute("UPDATE users SET totp_enabled_at_ms = ?, totp_last_step = ?,"
                 " security_changed_at_ms = ? WHERE id = ?", (at_ms, step, at_ms, user_id))
    conn.execute("DELETE FROM recovery_codes WHERE user_id = ?", (user_id,))
    codes = totp.new_recovery_codes()
    conn.executemany("INSERT INTO recovery_codes (user_id, code_sha256) VALUES (?, ?)",
                     [(user_id, totp.recovery_sha256(c)) for c in codes])
    return codes


def is_enabled(conn: sqlite3.Connection, user_id: int) -> bool:
    row = conn.execute("SELECT totp_enabled_at_ms FROM users WHERE id = ?",
                       (user_id,)).fetchone()
    return row is not None and row["totp_enabled_at_ms"] is not None


def check_code_tx(conn: sqlite3.Connection, user_id: int, code: str, now_s: float,
                  at_ms: int) -> bool:
    """True when `code` is a current TOTP code not used before (its step is stored) or an
    unused recovery code (used up now). False otherwise, with nothing written."""
    if len(code) > MAX_CODE_CHARS:
        return False
    row = conn.execute("SELECT totp_secret, totp_enabled_at_ms, totp_last_step FROM users"
                       " WHERE id = ?", (user_id,)).fetchone()
    if row is None or row["totp_enabled_at_ms"] is None or row["totp_secret"] is None:
        return False
    if totp.is_recovery_code(code):
        used = conn.execute(
            "UPDATE recovery_codes SET used_at_ms = ? WHERE id = (SELECT id FROM"
            " recovery_codes WHERE user_id = ? AND code_sha256 = ? AND used_at_ms IS NULL"
            " LIMIT 1) RETURNING id", (at_ms, user_id, totp.recovery_sha256(code))).fetchone()
        return used is not None
    step = totp.matching_step(row["totp_secret"], code, now_s, row["totp_last_step"])
    if step is None:
        return False
    # Guarded on the step read, so two requests with one code cannot both pass.
    cur = conn.execute("UPDATE users SET totp_last_step = ? WHERE id = ? AND"
                       " (totp_last_step IS NULL OR totp_last_step < ?)",
                       (step, user_id, step))
    return cur.rowcount == 1


def disable_tx(conn: sqlite3.Connection, user_id: int, at_ms: int) -> None:
    """2FA off: the secret and every recovery code gone."""
    conn.execute("UPDATE users SET totp_secret = NULL, totp_enabled_at_ms = NULL,"
                 " totp_last_step = NULL, security_changed_at_ms = ? WHERE id = ?",
                 (at_ms, user_id))
    conn.execute("DELETE FROM recovery_codes WHERE user_id = ?", (user_id,))


def recovery_codes_left(conn: sqlite3.Connection, user_id: int) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM recovery_codes WHERE user_id = ? AND"
                            " used_at_ms IS NULL", (user_id,)).fetchone()[0])


def code_field(value: object) -> str:
    """The `otp` / `code` of a body or the X-OTP header: a string of at most MAX_CODE_CHARS,
    ASCII (digits and recovery codes are; a header's byte that is not UTF-8 is refused here,
    not met by the comparison)."""
    if (not isinstance(value, str) or not value.strip() or len(value) > MAX_CODE_CHARS
            or not value.isascii()):
        raise Unprocessable("the code must be the 6 digits your app shows, or a recovery "
                            "code", "invalid_code")
    return value.strip()
