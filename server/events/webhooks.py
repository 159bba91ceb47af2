"""Each webhook's deliveries (a webhook is named by its URL): a cursor over the events, the
next events of its types turned into pending deliveries, one head at a time in event order
(a failing event holds the later ones of that webhook only), every attempt recorded, dead
past its dead line, and the operator's resend.

A webhook configured for the first time takes the events written from the start of the
server that first had it on (`outbox.start_cursors_tx`)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from meterchat.core.errors import Conflict, NotFound
from meterchat.core.units import iso_ms
from meterchat.events import outbox, rules
from meterchat.events.outbox import Event

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"
BATCH = 100


@dataclass(frozen=True)
class Delivery:
    event: Event
    webhook: str
    status: str
    attempts: int
    next_attempt_at_ms: int
    dead_at_ms: int
    last_http_status: int | None
    last_error: str | None
    delivered_at_ms: int | None

    def view(self) -> dict[str, Any]:
        return {"webhook": self.webhook, "status": self.status, "attempts": self.attempts,
                "next_attempt_at": iso_ms(self.next_attempt_at_ms)
                if self.status == PENDING else None,
                "dead_at": iso_ms(self.dead_at_ms), "last_http_status": self.last_http_status,
                "last_error": self.last_error, "delivered_at": iso_ms(self.delivered_at_ms)}


_SELECT = ("SELECT e.id, e.event_id, e.type, e.at_ms, e.data_json, d.webhook, d.status,"
           " d.attempts, d.next_attempt_at_ms, d.dead_at_ms, d.last_http_status, d.last_error,"
           " d.delivered_at_ms FROM event_deliveries d JOIN events e ON e.id = d.event_row")


def _delivery(row: sqlite3.Row) -> Delivery:
    return Delivery(event=outbox.event_of(row), webhook=row["webhook"], status=row["status"],
                    attempts=row["attempts"], next_attempt_at_ms=row["next_attempt_at_ms"],
                    dead_at_ms=row["dead_at_ms"], last_http_status=row["last_http_status"],
                    last_error=row["last_error"], delivered_at_ms=row["delivered_at_ms"])


def cursor_name(url: str) -> str:
    return f"webhook:{url}"


def head(conn: sqlite3.Connection, url: str) -> Delivery | None:
    """The webhook's oldest pending delivery: the only one it may be sent now."""
    row = conn.execute(_SELECT + " WHERE d.webhook = ? AND d.status = 'pending'"
                       " ORDER BY d.event_row LIMIT 1", (url,)).fetchone()
    return _delivery(row) if row else None


def has_new(conn: sqlite3.Connection, url: str) -> bool:
    """Events past the webhook's cursor (or a webhook never seen): `take_new_tx` has work."""
    at = outbox.cursor(conn, cursor_name(url))
    return at is None or outbox.last_row(conn) > at


def take_new_tx(conn: sqlite3.Connection, url: str, types: tuple[str, ...] | None,
                now_ms: int, max_age_ms: int) -> int:
    """The next events of the webhook's types past its cursor become pending deliveries (dead
    line: the event's time plus max_age_ms), and the cursor moves past them. A webhook seen
    for the first time starts at the newest event. Returns how many were taken."""
    name = cursor_name(url)
    at = outbox.cursor(conn, name)
    if at is None:
        outbox.set_cursor_tx(conn, name, outbox.last_row(conn), now_ms)
        return 0
    new = outbox.after(conn, at, types, BATCH)
    for e in new:
        conn.execute(
            "INSERT OR IGNORE INTO event_deliveries (event_row, webhook, next_attempt_at_ms,"
            " dead_at_ms) VALUES (?, ?, ?, ?)", (e.row, url, now_ms, e.at_ms + max_age_ms))
    if len(new) == BATCH:
        outbox.set_cursor_tx(conn, name, new[-1].row, now_ms)
    else:
        # Nothing more of its types up to the newest event (read in this transaction).
        outbox.set_cursor_tx(conn, name, max(outbox.last_row(conn), at), now_ms)
    return len(new)


def record_attempt_tx(conn: sqlite3.Connection, url: str, event_row: int, at_ms: int,
                      http_status: int | None, error: str | None, duration_ms: int,
                      retry_wait_ms: int) -> str:
    """One attempt and its outcome: delivered on a 2xx; else retried after retry_wait_ms, or
    dead when it failed at or past its dead line. Returns the delivery's status."""
    ok = http_status is not None and rules.is_success(http_status)
    conn.execute(
        "INSERT INTO event_attempts (event_row, webhook, at_ms, outcome, http_status, error,"
        " duration_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (event_row, url, at_ms, "delivered" if ok else "failed", http_status,
         error[:500] if error else None, duration_ms))
    row = conn.execute("SELECT status, dead_at_ms FROM event_deliveries WHERE webhook = ?"
                       " AND event_row = ?", (url, event_row)).fetchone()
    if row is None or row["status"] != PENDING:
        return str(row["status"]) if row else DEAD
    if ok:
        conn.execute(
            "UPDATE event_deliveries SET status = 'delivered', attempts = attempts + 1,"
            " last_http_status = ?, last_error = NULL, delivered_at_ms = ?"
            " WHERE webhook = ? AND event_row = ?", (http_status, at_ms, url, event_row))
        return DELIVERED
    status = DEAD if rules.is_dead(at_ms, row["dead_at_ms"]) else PENDING
    conn.execute(
        "UPDATE event_deliveries SET status = ?, attempts = attempts + 1,"
        " next_attempt_at_ms = ?, last_http_status = ?, last_error = ?"
        " WHERE webhook = ? AND event_row = ?",
        (status, at_ms + retry_wait_ms, http_status, error[:500] if error else None, url,
         event_row))
    return status


def resend_tx(conn: sqlite3.Connection, event_id: str, now_ms: int, max_age_ms: int,
              webhook: str | None = None) -> list[str]:
    """The operator sends an event again to each webhook where it is dead or delivered (or to
    one): pending, due now, with a new dead line. Returns the webhooks it goes to."""
    e = outbox.by_id(conn, event_id)
    if e is None:
        raise NotFound("no such event", "event_not_found")
    rows = conn.execute("SELECT webhook, status FROM event_deliveries WHERE event_row = ?"
                        " ORDER BY webhook", (e.row,)).fetchall()
    if webhook is not None:
        rows = [r for r in rows if r["webhook"] == webhook]
    if not rows:
        raise Conflict("this event was never meant for a webhook (none configured for its "
                       "type when it happened)", "event_not_delivered")
    if all(r["status"] == PENDING for r in rows):
        raise Conflict("this event is being delivered already", "event_pending")
    again = [r["webhook"] for r in rows if r["status"] != PENDING]
    for url in again:
        conn.execute(
            "UPDATE event_deliveries SET status = 'pending', next_attempt_at_ms = ?,"
            " dead_at_ms = ? WHERE webhook = ? AND event_row = ?",
            (now_ms, now_ms + max_age_ms, url, e.row))
    return again


def of_events(conn: sqlite3.Connection, rows: list[int]) -> dict[int, list[Delivery]]:
    """The deliveries of some events, by event row."""
    out: dict[int, list[Delivery]] = {r: [] for r in rows}
    if not rows:
        return out
    marks = ", ".join("?" * len(rows))
    for row in conn.execute(_SELECT + f" WHERE d.event_row IN ({marks})"
                            " ORDER BY d.event_row, d.webhook", rows).fetchall():
        out[row["id"]].append(_delivery(row))
    return out


def attempts_of(conn: sqlite3.Connection, event_row: int, limit: int = 50
                ) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT webhook, at_ms, outcome, http_status, error, duration_ms FROM event_attempts"
        " WHERE event_row = ? ORDER BY id DESC LIMIT ?", (event_row, limit)).fetchall()
    return [{"webhook": r["webhook"], "at": iso_ms(r["at_ms"]), "outcome": r["outcome"],
             "http_status": r["http_status"], "error": r["error"],
             "duration_ms": r["duration_ms"]} for r in rows]


def dead_rows(conn: sqlite3.Connection, limit: int = 100) -> list[int]:
    rows = conn.execute("SELECT DISTINCT event_row FROM event_deliveries WHERE status = 'dead'"
                        " ORDER BY event_row DESC LIMIT ?", (limit,)).fetchall()
    return [r["event_row"] for r in rows]


def listing(conn: sqlite3.Connection, type: str | None, dead_only: bool,
            before_row: int | None, limit: int) -> dict[str, Any]:
    """The operator's view: the newest events first, each with its deliveries and its last
    attempts; `dead_only` keeps those dead for some webhook."""
    if dead_only:
        rows = [r for r in dead_rows(conn, 10_000) if before_row is None or r < before_row]
        events = [e for e in (outbox.by_row(conn, r) for r in rows) if e is not None
                  and (type is None or e.type == type)][:limit]
    else:
        events = outbox.newest(conn, type, before_row, limit)
    deliveries = of_events(conn, [e.row for e in events])
    counts = {r["status"]: r["n"] for r in conn.execute(
        "SELECT status, COUNT(*) AS n FROM event_deliveries GROUP BY status").fetchall()}
    return {
        "events": [{**e.document(), "deliveries": [d.view() for d in deliveries[e.row]],
                    "attempts": attempts_of(conn, e.row, 10)} for e in events],
        "next_before": events[-1].id if len(events) == limit else None,
        "deliveries": {s: counts.get(s, 0) for s in (PENDING, DELIVERED, DEAD)},
    }
