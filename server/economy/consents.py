"""The 18+ and terms confirmations a user gives at sign-up (table `user_consents`): recorded
once, in the sign-up's transaction, and read back with their times."""

from __future__ import annotations

import sqlite3
from typing import Any

from meterchat.core.units import iso_ms


def record_consent_tx(conn: sqlite3.Connection, user_id: int, at_ms: int) -> None:
    """Both confirmations, given now; a second call keeps the first times."""
    conn.execute("INSERT OR IGNORE INTO user_consents (user_id, adult_confirmed_at_ms,"
                 " terms_confirmed_at_ms) VALUES (?, ?, ?)", (user_id, at_ms, at_ms))


def consent_of(conn: sqlite3.Connection, user_id: int) -> dict[str, Any] | None:
    row = conn.execute("SELECT adult_confirmed_at_ms, terms_confirmed_at_ms FROM user_consents"
                       " WHERE user_id = ?", (user_id,)).fetchone()
    if row is None:
        return None
    return {"adult_confirmed_at": iso_ms(row["adult_confirmed_at_ms"]),
            "terms_confirmed_at": iso_ms(row["terms_confirmed_at_ms"])}
