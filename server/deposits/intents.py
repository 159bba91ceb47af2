"""Storage of top-up intents (`deposit_intents`): handing out an exact amount that no intent
still reserved uses, and reading intents back by name (the `Intent` of rules.py).

An intent lives `intent_ttl_minutes`; its amount stays reserved 24 h more for a late transfer
(rules.REUSE_AFTER_EXPIRY_MS), so no two reserved intents share an amount at an address.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from meterchat.chain.gateway import TransferLog
from meterchat.core.errors import Conflict
from meterchat.deposits.rules import (
    REUSE_AFTER_EXPIRY_MS,
    SUFFIX_MAX,
    Intent,
    match_intent,
    pick_suffix,
    too_many_open,
)

_COLUMNS = ("id, user_id, amount_musdt, address, usdt_contract, created_at_ms, expires_at_ms,"
            " reserved_until_ms, paid_deposit_id")


def intent_from_row(row: sqlite3.Row) -> Intent:
    return Intent(
        id=row["id"], user_id=row["user_id"], amount_musdt=row["amount_musdt"],
        address=row["address"], usdt_contract=row["usdt_contract"],
        created_at_ms=row["created_at_ms"], expires_at_ms=row["expires_at_ms"],
        reserved_until_ms=row["reserved_until_ms"], paid_deposit_id=row["paid_deposit_id"],
    )


def create_intent_tx(conn: sqlite3.Connection, user_id: int, base_musdt: int, address: str,
                     usdt_contract: str, ttl_ms: int, at_ms: int,
                     choose: Callable[[list[int]], int] | None = None,
                     max_open: int | None = None) -> Intent:
    """Hand out base + a suffix that no intent still reserved uses; refused (429
    too_many_intents) when the user already holds `max_open` open intents."""
    if max_open is not None:
        row = conn.execute(
            "SELECT COUNT(*) AS open_count, MIN(expires_at_ms) AS first_expiry_ms"
            " FROM deposit_intents WHERE user_id = ? AND paid_deposit_id IS NULL"
            " AND expires_at_ms > ?", (user_id, at_ms),
        ).fetchone()
        refusal = too_many_open(row["open_count"], row["first_expiry_ms"], max_open, at_ms)
        if refusal is not None:
            raise refusal
    used = {
        r["amount_musdt"] - base_musdt
        for r in conn.execute(
            "SELECT amount_musdt FROM deposit_intents WHERE amount_musdt BETWEEN ? AND ?"
            " AND reserved_until_ms >= ? AND address = ?",
            (base_musdt + 1, base_musdt + SUFFIX_MAX, at_ms, address),
        )
    }
    suffix = pick_suffix(used, choose)
    if suffix is None:
        raise Conflict("too many open top-ups of this amount; ask for a slightly different "
                       "amount", "no_free_amount")
    expires = at_ms + ttl_ms
    row = conn.execute(
        "INSERT INTO deposit_intents (user_id, amount_musdt, address, usdt_contract,"
        " created_at_ms, expires_at_ms, reserved_until_ms) VALUES (?, ?, ?, ?, ?, ?, ?)"
        f" RETURNING {_COLUMNS}",
        (user_id, base_musdt + suffix, address, usdt_contract, at_ms, expires,
         expires + REUSE_AFTER_EXPIRY_MS),
    ).fetchone()
    return intent_from_row(row)


def candidates(conn: sqlite3.Connection, t: TransferLog) -> list[Intent]:
    """The unpaid intents of this transfer's exact amount at its address."""
    return [
        intent_from_row(r) for r in conn.execute(
            f"SELECT {_COLUMNS} FROM deposit_intents WHERE amount_musdt = ?"
            " AND paid_deposit_id IS NULL AND address = ?",
            (t.amount, t.to_address),
        )
    ]


def preview_owner(conn: sqlite3.Connection, t: TransferLog, block_time_ms: int) -> int | None:
    """Whose intent would this transfer pay (before it is final)?"""
    intent = match_intent(candidates(conn, t), t, block_time_ms)
    return intent.user_id if intent else None


def mark_paid_tx(conn: sqlite3.Connection, intent_id: int, deposit_id: int) -> None:
    conn.execute("UPDATE deposit_intents SET paid_deposit_id = ? WHERE id = ?",
                 (deposit_id, intent_id))


def user_intents(conn: sqlite3.Connection, user_id: int, limit: int = 50) -> list[Intent]:
    """A user's intents, newest first."""
    return [
        intent_from_row(r) for r in conn.execute(
            f"SELECT {_COLUMNS} FROM deposit_intents WHERE user_id = ?"
            " ORDER BY id DESC LIMIT ?", (user_id, limit),
        )
    ]
