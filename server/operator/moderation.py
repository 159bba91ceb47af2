"""Moderation: the queue of user reports (a report of a chat message carries the message),
bans and unbans.

A ban, in one transaction: the user is marked banned (requests with any of their tokens are
refused from then on), every session is revoked (logged out everywhere), a seller goes
offline, their withdrawals are blocked (`users.withdrawals_blocked`; queued ones go back to
`review` with review_reason `account_banned`, so the sender never takes them) and open
reports about them are closed. Ending their call (billed up to that moment) and closing
their sockets happen right after, in the handler, through the call manager and the hub.
An unban is the operator's review: it lifts the ban and the withdrawal block; withdrawals
sent back to review stay there for the operator to approve or reject.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from meterchat.accounts import users as accounts
from meterchat.accounts.sessions import revoke_all_sessions_tx
from meterchat.core.errors import Conflict, NotFound
from meterchat.core.units import iso_ms
from meterchat.events import rules as event_types
from meterchat.operator import audit_log
from meterchat.withdrawals import sending

REVIEW_ACCOUNT_BANNED = "account_banned"
MAX_REASON_CHARS = 2000


def _user(conn: sqlite3.Connection, user_id: int) -> accounts.User:
    u = accounts.get_user(conn, user_id)
    if u is None:
        raise NotFound("no such user", "user_not_found")
    return u


def user_view(conn: sqlite3.Connection, user_id: int) -> dict[str, Any]:
    """A user's moderation state as the operator sees it."""
    row = conn.execute(
        "SELECT id, email, role, display_name, banned_at_ms, ban_reason, withdrawals_blocked"
        " FROM users WHERE id = ?", (user_id,)).fetchone()
    if row is None:
        raise NotFound("no such user", "user_not_found")
    return {"id": str(row["id"]), "email": row["email"], "role": row["role"],
            "display_name": row["display_name"], "banned": row["banned_at_ms"] is not None,
            "banned_at": iso_ms(row["banned_at_ms"]), "ban_reason": row["ban_reason"],
            "withdrawals_blocked": bool(row["withdrawals_blocked"])}


def ban_tx(conn: sqlite3.Connection, user_id: int, actor_id: int, reason: str,
           at_ms: int) -> dict[str, Any]:
    u = _user(conn, user_id)
    if u.role == "admin":
        raise Conflict("operator accounts cannot be banned here", "cannot_ban_admin")
    if not u.banned:
        conn.execute(
            "UPDATE users SET banned_at_ms = ?, ban_reason = ?, withdrawals_blocked = 1"
            " WHERE id = ?", (at_ms, reason, user_id))
    else:
        conn.execute("UPDATE users SET withdrawals_blocked = 1 WHERE id = ?", (user_id,))
    revoke_all_sessions_tx(conn, user_id)
    conn.execute("UPDATE sellers SET online = 0, updated_at_ms = ? WHERE user_id = ?",
                 (at_ms, user_id))
    held_ids = [r["id"] for r in conn.execute(
        "UPDATE withdrawals SET status = 'review', review_reason = ?, updated_at_ms = ?"
        " WHERE user_id = ? AND status = 'queued' RETURNING id",
        (REVIEW_ACCOUNT_BANNED, at_ms, user_id)).fetchall()]
    for wid in sorted(held_ids):
        sending.emit_tx(conn, event_types.WITHDRAWAL_REVIEW, wid, at_ms,
                        reason=REVIEW_ACCOUNT_BANNED)
    held = len(held_ids)
    closed = conn.execute(
        "UPDATE user_reports SET closed_at_ms = ?, closed_by = ?, outcome = 'banned'"
        " WHERE reported_id = ? AND closed_at_ms IS NULL", (at_ms, actor_id, user_id)).rowcount
    audit_log.record(conn, actor_id, "user.ban", f"user:{user_id}", reason, at_ms,
                     withdrawals_held=held, reports_closed=closed,
                     already_banned=u.banned)
    return user_view(conn, user_id)


def unban_tx(conn: sqlite3.Connection, user_id: int, actor_id: int, reason: str | None,
             at_ms: int) -> dict[str, Any]:
    u = _user(conn, user_id)
    conn.execute(
        "UPDATE users SET banned_at_ms = NULL, ban_reason = NULL, withdrawals_blocked = 0"
        " WHERE id = ?", (user_id,))
    audit_log.record(conn, actor_id, "user.unban", f"user:{user_id}", reason, at_ms,
                     was_banned=u.banned)
    return user_view(conn, user_id)


def withdrawals_blocked(conn: sqlite3.Connection, user_id: int) -> bool:
    row = conn.execute("SELECT withdrawals_blocked FROM users WHERE id = ?",
                       (user_id,)).fetchone()
    return bool(row and row["withdrawals_blocked"])


# The call a report is about, if any: the last call between the two users that began before
# the report was made (a report carries no call of its own).
REPORT_CALL_SQL = (
    "(SELECT c.id FROM calls c WHERE c.created_at_ms <= r.created_at_ms AND"
    " ((c.buyer_id = r.reporter_id AND c.seller_id = r.reported_id) OR"
    " (c.buyer_id = r.reported_id AND c.seller_id = r.reporter_id))"
    " ORDER BY c.id DESC LIMIT 1)")

_REPORT_STATUS = {"open": "r.closed_at_ms IS NULL", "closed": "r.closed_at_ms IS NOT NULL",
                  None: "1"}


def reports(conn: sqlite3.Connection, status: str | None, limit: int = 500
            ) -> list[dict[str, Any]]:
    """The queue of reports, newest first, each with how often its user was reported and the
    call it is about, if any."""
    rows = conn.execute(
        "SELECT r.id, r.reporter_id, ru.email AS reporter_email,"
        " ru.display_name AS reporter_display_name, r.reported_id,"
        " tu.email AS reported_email, tu.display_name AS reported_display_name,"
        " tu.role AS reported_role,"
        " tu.banned_at_ms AS reported_banned_at_ms, r.reason, r.created_at_ms,"
        " r.closed_at_ms, r.outcome,"
        " (SELECT COUNT(*) FROM user_reports x WHERE x.reported_id = r.reported_id)"
        # A reported chat message names its call; otherwise the last call between the two.
        f" AS reports_about_user, COALESCE(m.call_id, {REPORT_CALL_SQL}) AS call_id,"
        " m.id AS message_id, m.call_id AS message_call_id,"
        " m.text AS message_text, m.at_ms AS message_at_ms"
        " FROM user_reports r JOIN users ru ON ru.id = r.reporter_id"
        " JOIN users tu ON tu.id = r.reported_id"
        " LEFT JOIN call_messages m ON m.id = r.call_message_id"
        f" WHERE {_REPORT_STATUS[status]}"
        " ORDER BY r.id DESC LIMIT ?", (limit,)).fetchall()
    return [{
        "id": str(r["id"]), "reporter_id": str(r["reporter_id"]),
        "reporter_email": r["reporter_email"],
        "reporter_display_name": r["reporter_display_name"],
        "reported_id": str(r["reported_id"]), "reported_email": r["reported_email"],
        "reported_display_name": r["reported_display_name"],
        "reported_role": r["reported_role"],
        "reported_banned": r["reported_banned_at_ms"] is not None, "reason": r["reason"],
        "created_at": iso_ms(r["created_at_ms"]),
        "status": "open" if r["closed_at_ms"] is None else "closed",
        "closed_at": iso_ms(r["closed_at_ms"]), "outcome": r["outcome"],
        "reports_about_user": r["reports_about_user"],
        "call_id": None if r["call_id"] is None else str(r["call_id"]),
        # A report of a chat message carries it (null for a report about the user only).
        "message": None if r["message_id"] is None else {
            "id": str(r["message_id"]), "call_id": str(r["message_call_id"]),
            "text": r["message_text"], "at": iso_ms(r["message_at_ms"])},
    } for r in rows]


def dismiss_report_tx(conn: sqlite3.Connection, report_id: int, actor_id: int,
                      reason: str | None, at_ms: int) -> dict[str, Any]:
    """Close a report without action; a closed one stays as it was (and is not logged)."""
    row = conn.execute("SELECT reported_id, closed_at_ms FROM user_reports WHERE id = ?",
                       (report_id,)).fetchone()
    if row is None:
        raise NotFound("no such report", "report_not_found")
    if row["closed_at_ms"] is None:
        conn.execute(
            "UPDATE user_reports SET closed_at_ms = ?, closed_by = ?, outcome = 'dismissed'"
            " WHERE id = ?", (at_ms, actor_id, report_id))
        audit_log.record(conn, actor_id, "report.dismiss", f"report:{report_id}", reason,
                         at_ms, reported_id=row["reported_id"])
    out = conn.execute("SELECT closed_at_ms, outcome FROM user_reports WHERE id = ?",
                       (report_id,)).fetchone()
    return {"id": str(report_id), "status": "closed", "closed_at": iso_ms(out["closed_at_ms"]),
            "outcome": out["outcome"]}
