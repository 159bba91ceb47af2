"""The operator's audit log: every operator action (who, what, on what, when, why), written
in the same transaction as the action itself by `record` (core/audit.py, the one writer,
re-exported here), and the list the operator reads."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from meterchat.core.audit import record
from meterchat.core.units import iso_ms

__all__ = ["about_user", "entries", "record"]

_SELECT = ("SELECT l.id, l.at_ms, l.actor_user_id, u.email AS actor_email, l.action, l.target,"
           " l.detail, l.reason FROM audit_log l LEFT JOIN users u ON u.id = l.actor_user_id")


def entries(conn: sqlite3.Connection, *, target: str | None = None,
            before_id: int | None = None, limit: int = 200) -> list[dict[str, Any]]:
    """Newest first; `before_id` pages back."""
    where: list[str] = ["1"]
    args: list[Any] = []
    if target is not None:
        where.append("l.target = ?")
        args.append(target)
    if before_id is not None:
        where.append("l.id < ?")
        args.append(before_id)
    rows = conn.execute(f"{_SELECT} WHERE {' AND '.join(where)} ORDER BY l.id DESC LIMIT ?",
                        (*args, limit)).fetchall()
    return [_entry(r) for r in rows]


def about_user(conn: sqlite3.Connection, user_id: int, limit: int) -> list[dict[str, Any]]:
    """Newest first, the lines about a user: on the user (ban, unban, password reset,
    2FA off), on their withdrawals, on reports by or about them, on disputes of their calls
    and on deposits the operator assigned to them."""
    rows = conn.execute(
        f"{_SELECT} WHERE l.target = 'user:' || :u"
        " OR l.target IN (SELECT 'withdrawal:' || id FROM withdrawals WHERE user_id = :u)"
        " OR l.target IN (SELECT 'report:' || id FROM user_reports"
        "                 WHERE reported_id = :u OR reporter_id = :u)"
        " OR l.target IN (SELECT 'dispute:' || id FROM disputes"
        "                 WHERE buyer_id = :u OR seller_id = :u)"
        " OR l.target IN (SELECT txid || ':' || log_index FROM deposits"
        "                 WHERE user_id = :u AND source = 'operator')"
        " ORDER BY l.id DESC LIMIT :n", {"u": user_id, "n": limit}).fetchall()
    return [_entry(r) for r in rows]


def _entry(r: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": str(r["id"]),
        "at": iso_ms(r["at_ms"]),
        "actor_id": None if r["actor_user_id"] is None else str(r["actor_user_id"]),
        "actor_email": r["actor_email"],
        "action": r["action"],
        "target": r["target"],
        # A JSON object (core/audit.py writes every line so; older text lines were
        # migrated to {"text": ...}), or null.
        "detail": None if r["detail"] is None else json.loads(r["detail"]),
        "reason": r["reason"],
    }
