"""Blocks and reports between users: a block hides each side from the other (listing, calls)
until lifted; a report goes to the operator's queue (operator/moderation.py), at most
REPORTS_PER_HOUR per reporter, and may carry a chat message of a call (calls/chat.py)."""

from __future__ import annotations

import sqlite3

from meterchat.core.db import now_ms
from meterchat.core.errors import NotFound, TooManyRequests, Unprocessable
from meterchat.core.units import HOUR_MS
from meterchat.events import outbox as events
from meterchat.events import rules as event_types
from meterchat.sellers.rules import REPORTS_PER_HOUR


def is_blocked_between(conn: sqlite3.Connection, a: int, b: int) -> bool:
    """Has either user blocked the other?"""
    return conn.execute(
        "SELECT 1 FROM user_blocks WHERE (blocker_id = ? AND blocked_id = ?)"
        " OR (blocker_id = ? AND blocked_id = ?)",
        (a, b, b, a),
    ).fetchone() is not None


def _check_target(conn: sqlite3.Connection, actor_id: int, target_id: int) -> None:
    if actor_id == target_id:
        raise Unprocessable("you cannot do this to yourself", "invalid_target")
    if conn.execute("SELECT 1 FROM users WHERE id = ?", (target_id,)).fetchone() is None:
        raise NotFound("no such user", "user_not_found")


def block_tx(conn: sqlite3.Connection, blocker_id: int, blocked_id: int,
             reason: str | None) -> None:
    """Block a user; blocking again changes nothing."""
    _check_target(conn, blocker_id, blocked_id)
    conn.execute(
        "INSERT OR IGNORE INTO user_blocks (blocker_id, blocked_id, reason, created_at_ms)"
        " VALUES (?, ?, ?, ?)",
        (blocker_id, blocked_id, reason, now_ms()),
    )


def unblock_tx(conn: sqlite3.Connection, blocker_id: int, blocked_id: int) -> None:
    conn.execute("DELETE FROM user_blocks WHERE blocker_id = ? AND blocked_id = ?",
                 (blocker_id, blocked_id))


def report_tx(conn: sqlite3.Connection, reporter_id: int, reported_id: int,
              reason: str | None, *, call_message_id: int | None = None) -> None:
    """File a report; 429 past REPORTS_PER_HOUR in the last hour. `call_message_id`: the
    chat message of a call it is about (calls/chat.py checks it first)."""
    _check_target(conn, reporter_id, reported_id)
    now = now_ms()
    recent = conn.execute(
        "SELECT COUNT(*) AS n FROM user_reports WHERE reporter_id = ? AND created_at_ms > ?",
        (reporter_id, now - HOUR_MS),
    ).fetchone()["n"]
    if recent >= REPORTS_PER_HOUR:
        raise TooManyRequests("too many reports in the last hour; try again later")
    report = conn.execute(
        "INSERT INTO user_reports (reporter_id, reported_id, reason, created_at_ms,"
        " call_message_id) VALUES (?, ?, ?, ?, ?) RETURNING id",
        (reporter_id, reported_id, reason, now, call_message_id),
    ).fetchone()
    events.emit_tx(conn, event_types.REPORT_OPENED, {
        "report_id": str(report["id"]), "reporter_id": str(reporter_id),
        "reported_id": str(reported_id), "reason": reason,
        "call_message_id": None if call_message_id is None else str(call_message_id)}, now)
