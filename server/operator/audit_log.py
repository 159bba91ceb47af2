"""The operator's audit log: every operator action (who, what, on what, when, why), written
in the same transaction as the action itself by `record` (core/audit.py, the one writer,
re-exported here), and the list the operator reads."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from meterchat.core.audit import record
from meterchat.core.units import iso_ms

__all__ = ["entries", "record"]


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
    rows = conn.execute(
        "SELECT l.id, l.at_ms, l.actor_user_id, u.email AS actor_email, l.action, l.target,"
        " l.detail, l.reason FROM audit_log l LEFT JOIN users u ON u.id = l.actor_user_id"
        f" WHERE {' AND '.join(where)} ORDER BY l.id DESC LIMIT ?",
        (*args, limit),
    ).fetchall()
    return [
        {
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
        for r in rows
    ]
