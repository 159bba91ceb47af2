"""The operator's audit log: every operator action (who, what, on what, when, why), written
in the same transaction as the action itself, and the list the operator reads."""

from __future__ import annotations

import json
import sqlite3

from meterchat.core.units import iso_ms


def record(conn: sqlite3.Connection, actor_id: int | None, action: str, target: str,
           reason: str | None, at_ms: int, **detail: object) -> None:
    conn.execute(
        "INSERT INTO audit_log (at_ms, actor_user_id, action, target, detail, reason)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (at_ms, actor_id, action, target,
         json.dumps(detail, sort_keys=True) if detail else None, reason),
    )


def entries(conn: sqlite3.Connection, *, target: str | None = None,
            before_id: int | None = None, limit: int = 200) -> list[dict]:
    """Newest first; `before_id` pages back."""
    where, args = ["1"], []
    if target is not None:
        where.append("l.target = ?")
        args.append(target)
    if before_id is not None:
        where.append("l.id < ?")
        args.append(before_id)
    rows = conn.execute(
        "SELECT l.id, l.at_ms, l.actor_user_id, u.email, l.action, l.target, l.detail,"
        " l.reason FROM audit_log l LEFT JOIN users u ON u.id = l.actor_user_id"
        f" WHERE {' AND '.join(where)} ORDER BY l.id DESC LIMIT ?",
        (*args, limit),
    ).fetchall()
    return [
        {
            "id": str(r[0]),
            "at": iso_ms(r[1]),
            "actor_id": None if r[2] is None else str(r[2]),
            "actor_email": r[3],
            "action": r[4],
            "target": r[5],
            "detail": r[6],
            "reason": r[7],
        }
        for r in rows
    ]
