"""Alert mails to `operator.alert_emails`: the same events as the webhooks, batched, at most
one mail per event type per `operator.alert_batch_minutes`, carrying every event of that type
since the last one (a first event after a quiet spell goes at once). Written through the mail
outbox (`enqueue_tx`), so the mail sender delivers them with its retries.

Alerts turned on for the first time take the events written from the start of that server
(`outbox.start_cursors_tx`)."""

from __future__ import annotations

import sqlite3

from meterchat.core.units import iso_ms
from meterchat.events import outbox, rules
from meterchat.mail import messages
from meterchat.mail.outbox import enqueue_tx

START = "alerts"
MAX_PER_MAIL = 200


def _name(event_type: str) -> str:
    return f"alerts:{event_type}"


def due_types(conn: sqlite3.Connection, now_ms: int, batch_ms: int) -> list[str]:
    """The types with events not mailed yet whose last mail is at least batch_ms old (or
    every type, the first time, so that the start is written)."""
    start = outbox.cursor(conn, START)
    if start is None:
        return list(rules.TYPES)
    out = []
    for t in rules.TYPES:
        at = outbox.cursor(conn, _name(t))
        if not rules.alert_due(outbox.cursor_moved_at(conn, _name(t)), now_ms, batch_ms):
            continue
        if outbox.after(conn, start if at is None else at, (t,), 1):
            out.append(t)
    return out


def _line(e: outbox.Event) -> tuple[str, str, str]:
    data = ", ".join(f"{k}: {v}" for k, v in sorted(e.data.items()) if v is not None)
    return e.id, iso_ms(e.at_ms), data


def mail_due_tx(conn: sqlite3.Connection, emails: tuple[str, ...], batch_ms: int,
                now_ms: int, base_url: str) -> int:
    """One mail per due type to each address, with the type's events since its last mail;
    returns the mails written."""
    start = outbox.cursor(conn, START)
    if start is None:
        outbox.set_cursor_tx(conn, START, outbox.last_row(conn), now_ms)
        return 0
    written = 0
    for t in due_types(conn, now_ms, batch_ms):
        at = outbox.cursor(conn, _name(t))
        new = outbox.after(conn, start if at is None else at, (t,), MAX_PER_MAIL)
        if not new:
            continue
        message = messages.event_alert(t, [_line(e) for e in new], base_url)
        for address in emails:
            enqueue_tx(conn, address, message, now_ms)
            written += 1
        outbox.set_cursor_tx(conn, _name(t), new[-1].row, now_ms)
    return written
