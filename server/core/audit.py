"""The one writer of the audit log: who did what to what, when and why, with a JSON detail,
written in the same transaction as the action itself. Every room that records an operator's
action writes through `record`; the operator reads the log (operator/audit_log.py)."""

from __future__ import annotations

import json
import sqlite3


def record(conn: sqlite3.Connection, actor_id: int | None, action: str, target: str,
           reason: str | None, at_ms: int, **detail: object) -> None:
    """One line of the audit log. `detail` is stored as a JSON object (keys sorted), or NULL
    when empty."""
    conn.execute(
        "INSERT INTO audit_log (at_ms, actor_user_id, action, target, detail, reason)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (at_ms, actor_id, action, target,
         json.dumps(detail, sort_keys=True) if detail else None, reason),
    )
