"""The mail outbox: every mail is a row written in the transaction of the change that causes
it (`enqueue_tx`), so a mail is never lost and never sent for a change that rolled back. The
sender job takes the due rows, and records each attempt: sent, retried later with a doubling
wait, or failed for good (an SMTP 5xx)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from meterchat.mail.messages import Message


@dataclass(frozen=True)
class Mail:
    id: int
    user_id: int | None
    kind: str
    to_address: str
    subject: str
    body_text: str
    body_html: str
    status: str
    attempts: int
    next_attempt_at_ms: int
    last_error: str | None
    created_at_ms: int
    sent_at_ms: int | None


_COLS = ("id, user_id, kind, to_address, subject, body_text, body_html, status, attempts,"
         " next_attempt_at_ms, last_error, created_at_ms, sent_at_ms")


def _mail(row: sqlite3.Row) -> Mail:
    return Mail(*row)


def enqueue_tx(conn: sqlite3.Connection, to_address: str, message: Message, at_ms: int,
               user_id: int | None = None) -> int:
    """Put one mail into the outbox, due at once; returns its id."""
    row = conn.execute(
        "INSERT INTO mail_outbox (user_id, kind, to_address, subject, body_text, body_html,"
        " next_attempt_at_ms, created_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (user_id, message.kind, to_address, message.subject, message.text, message.html,
         at_ms, at_ms),
    ).fetchone()
    mail_id: int = row["id"]
    return mail_id


def due(conn: sqlite3.Connection, now_ms: int, limit: int = 50) -> list[Mail]:
    rows = conn.execute(
        f"SELECT {_COLS} FROM mail_outbox WHERE status = 'pending' AND next_attempt_at_ms <= ?"
        " ORDER BY next_attempt_at_ms, id LIMIT ?", (now_ms, limit)).fetchall()
    return [_mail(r) for r in rows]


def listing(conn: sqlite3.Connection, status: str | None = None, limit: int = 100
            ) -> list[Mail]:
    """The newest mails first (all, or of one status)."""
    if status is None:
        rows = conn.execute(f"SELECT {_COLS} FROM mail_outbox ORDER BY id DESC LIMIT ?",
                            (limit,)).fetchall()
    else:
        rows = conn.execute(f"SELECT {_COLS} FROM mail_outbox WHERE status = ?"
                            " ORDER BY id DESC LIMIT ?", (status, limit)).fetchall()
    return [_mail(r) for r in rows]


def retry_wait_ms(attempts: int, first_ms: int, max_ms: int) -> int:
    """The wait after the `attempts`-th failed attempt: first_ms, doubling, at most max_ms."""
    return int(min(max_ms, first_ms * 2 ** min(max(attempts - 1, 0), 40)))


def mark_sent_tx(conn: sqlite3.Connection, mail_id: int, at_ms: int) -> None:
    conn.execute("UPDATE mail_outbox SET status = 'sent', sent_at_ms = ?, attempts = attempts + 1,"
                 " last_error = NULL WHERE id = ? AND status = 'pending'", (at_ms, mail_id))


def mark_retry_tx(conn: sqlite3.Connection, mail_id: int, error: str, at_ms: int,
                  first_ms: int, max_ms: int) -> None:
    row = conn.execute("SELECT attempts FROM mail_outbox WHERE id = ?", (mail_id,)).fetchone()
    attempts = (row["attempts"] if row else 0) + 1
    conn.execute(
        "UPDATE mail_outbox SET attempts = ?, last_error = ?, next_attempt_at_ms = ?"
        " WHERE id = ? AND status = 'pending'",
        (attempts, error[:500], at_ms + retry_wait_ms(attempts, first_ms, max_ms), mail_id))


def mark_failed_tx(conn: sqlite3.Connection, mail_id: int, error: str) -> None:
    conn.execute("UPDATE mail_outbox SET status = 'failed', attempts = attempts + 1,"
                 " last_error = ? WHERE id = ? AND status = 'pending'", (error[:500], mail_id))
