"""Moderation: the queue of user reports, bans and unbans.

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

from meterchat.accounts import users as accounts
from meterchat.core.errors import Conflict, NotFound
from meterchat.core.units import iso_ms
from meterchat.operator import audit_log

REVIEW_ACCOUNT_BANNED = "account_banned"
MAX_REASON_CHARS = 2000


def _user(conn: sqlite3.Connection, user_id: int) -> accounts.User:
    u = accounts.get_user(conn, user_id)
    if u is None:
        raise NotFound("no such user", "user_not_found")
    return u


def user_view(conn: sqlite3.Connection, user_id: int) -> dict:
    row = conn.execute(
        "SELECT id, email, role, display_name, banned_at_ms, ban_reason, withdrawals_blocked"
        " FROM users WHERE id = ?", (user_id,)).fetchone()
    if row is None:
        raise NotFound("no such user", "user_not_found")
    return {"id": str(row[0]), "email": row[1], "role": row[2], "display_name": row[3],
            "banned": row[4] is not None, "banned_at": iso_ms(row[4]), "ban_reason": row[5],
            "withdrawals_blocked": bool(row[6])}


def ban_tx(conn: sqlite3.Connection, user_id: int, actor_id: int, reason: str,
           at_ms: int) -> dict:
    u = _user(conn, user_id)
    if u.role == "admin":
        raise Conflict("operator accounts cannot be banned here", "cannot_ban_admin")
    if not u.banned:
        conn.execute(
            "UPDATE users SET banned_at_ms = ?, ban_reason = ?, withdrawals_blocked = 1"
            " WHERE id = ?", (at_ms, reason, user_id))
    else:
        conn.execute("UPDATE users SET withdrawals_blocked = 1 WHERE id = ?", (user_id,))
    accounts.revoke_all_sessions(conn, user_id)
    conn.execute("UPDATE sellers SET online = 0, updated_at_ms = ? WHERE user_id = ?",
                 (at_ms, user_id))
    held = conn.execute(
        "UPDATE withdrawals SET status = 'review', review_reason = ?, updated_at_ms = ?"
        " WHERE user_id = ? AND status = 'queued'",
        (REVIEW_ACCOUNT_BANNED, at_ms, user_id)).rowcount
    closed = conn.execute(
        "UPDATE user_reports SET closed_at_ms = ?, closed_by = ?, outcome = 'banned'"
        " WHERE reported_id = ? AND closed_at_ms IS NULL", (at_ms, actor_id, user_id)).rowcount
    audit_log.record(conn, actor_id, "user.ban", f"user:{user_id}", reason, at_ms,
                     withdrawals_held=held, reports_closed=closed,
                     already_banned=u.banned)
    return user_view(conn, user_id)


def unban_tx(conn: sqlite3.Connection, user_id: int, actor_id: int, reason: str | None,
             at_ms: int) -> dict:
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
    return bool(row and row[0])


def reports(conn: sqlite3.Connection, status: str | None, limit: int = 500) -> list[dict]:
    where = {"open": "r.closed_at_ms IS NULL", "closed": "r.closed_at_ms IS NOT NULL",
             None: "1"}[status]
    rows = conn.execute(
        "SELECT r.id, r.reporter_id, ru.email, r.reported_id, tu.email, tu.role,"
        " tu.banned_at_ms, r.reason, r.created_at_ms, r.closed_at_ms, r.outcome,"
        " (SELECT COUNT(*) FROM user_reports x WHERE x.reported_id = r.reported_id)"
        " FROM user_reports r JOIN users ru ON ru.id = r.reporter_id"
        f" JOIN users tu ON tu.id = r.reported_id WHERE {where}"
        " ORDER BY r.id DESC LIMIT ?", (limit,)).fetchall()
    return [{
        "id": str(r[0]), "reporter_id": str(r[1]), "reporter_email": r[2],
        "reported_id": str(r[3]), "reported_email": r[4], "reported_role": r[5],
        "reported_banned": r[6] is not None, "reason": r[7], "created_at": iso_ms(r[8]),
        "status": "open" if r[9] is None else "closed", "closed_at": iso_ms(r[9]),
        "outcome": r[10], "reports_about_user": r[11],
    } for r in rows]


def dismiss_report_tx(conn: sqlite3.Connection, report_id: int, actor_id: int,
                      reason: str | None, at_ms: int) -> dict:
    row = conn.execute("SELECT reported_id, closed_at_ms FROM user_reports WHERE id = ?",
                       (report_id,)).fetchone()
    if row is None:
        raise NotFound("no such report", "report_not_found")
    if row[1] is None:
        conn.execute(
            "UPDATE user_reports SET closed_at_ms = ?, closed_by = ?, outcome = 'dismissed'"
            " WHERE id = ?", (at_ms, actor_id, report_id))
        audit_log.record(conn, actor_id, "report.dismiss", f"report:{report_id}", reason,
                         at_ms, reported_id=row[0])
    out = conn.execute("SELECT closed_at_ms, outcome FROM user_reports WHERE id = ?",
                       (report_id,)).fetchone()
    return {"id": str(report_id), "status": "closed", "closed_at": iso_ms(out[0]),
            "outcome": out[1]}
