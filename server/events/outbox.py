"""The event outbox: an event `{id, type, at, data}` is a row written by `emit_tx` in the
transaction of the change it reports, so it commits with that change or not at all. The row
id orders the events; the `evt_...` id is what receivers see, the same on every attempt.
Threshold events (`threshold_tx`) are written only when their stored state changes.

Data carries no secrets: ids, amounts, addresses, TXIDs, reasons."""

from __future__ import annotations

import json
import secrets
import sqlite3
from dataclasses import dataclass
from typing import Any

from meterchat.core.units import iso_ms
from meterchat.events import rules


@dataclass(frozen=True)
class Event:
    row: int
    id: str
    type: str
    at_ms: int
    data: dict[str, Any]

    def document(self) -> dict[str, Any]:
        """The event as webhooks receive it and the API shows it."""
        return {"id": self.id, "type": self.type, "at": iso_ms(self.at_ms), "data": self.data}

    def body(self) -> bytes:
        """The exact bytes POSTed (and signed): the same on every attempt."""
        return json.dumps(self.document(), sort_keys=True, separators=(",", ":")).encode()


_COLS = "id, event_id, type, at_ms, data_json"


def event_of(row: sqlite3.Row) -> Event:
    return Event(row=row["id"], id=row["event_id"], type=row["type"], at_ms=row["at_ms"],
                 data=json.loads(row["data_json"]))


def emit_tx(conn: sqlite3.Connection, type: str, data: dict[str, Any], at_ms: int) -> Event:
    """Write one event in the caller's transaction; returns it."""
    if type not in rules.TYPES:
        raise ValueError(f"unknown event type {type!r}")
    event_id = "evt_" + secrets.token_hex(12)
    row = conn.execute(
        "INSERT INTO events (event_id, type, data_json, at_ms) VALUES (?, ?, ?, ?)"
        " RETURNING id", (event_id, type, json.dumps(data, sort_keys=True), at_ms)).fetchone()
    return Event(row=row["id"], id=event_id, type=type, at_ms=at_ms, data=dict(data))


def threshold_state(conn: sqlite3.Connection, name: str) -> str | None:
    row = conn.execute("SELECT state FROM event_thresholds WHERE name = ?", (name,)).fetchone()
    return row["state"] if row else None


def threshold_tx(conn: sqlite3.Connection, type: str, active: bool, data: dict[str, Any],
                 at_ms: int) -> Event | None:
    """A threshold event's condition as observed now: an event (`data` plus `state`) only
    when it crossed (rules.crossing), and the new state stored with it."""
    if type not in rules.THRESHOLD_TYPES:
        raise ValueError(f"{type!r} is no threshold event")
    state = rules.crossing(threshold_state(conn, type), active)
    if state is None:
        return None
    conn.execute(
        "INSERT INTO event_thresholds (name, state, changed_at_ms) VALUES (?, ?, ?)"
        " ON CONFLICT (name) DO UPDATE SET state = excluded.state,"
        " changed_at_ms = excluded.changed_at_ms", (type, state, at_ms))
    return emit_tx(conn, type, {**data, "state": state}, at_ms)


def by_id(conn: sqlite3.Connection, event_id: str) -> Event | None:
    row = conn.execute(f"SELECT {_COLS} FROM events WHERE event_id = ?",
                       (event_id,)).fetchone()
    return event_of(row) if row else None


def after(conn: sqlite3.Connection, row: int, types: tuple[str, ...] | None = None,
          limit: int = 100) -> list[Event]:
    """Events past a row id, in order (of some types only)."""
    if types is None:
        rows = conn.execute(f"SELECT {_COLS} FROM events WHERE id > ? ORDER BY id LIMIT ?",
                            (row, limit)).fetchall()
    else:
        marks = ", ".join("?" * len(types))
        rows = conn.execute(
            f"SELECT {_COLS} FROM events WHERE id > ? AND type IN ({marks}) ORDER BY id"
            " LIMIT ?", (row, *types, limit)).fetchall()
    return [event_of(r) for r in rows]


def last_row(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT MAX(id) AS last FROM events").fetchone()
    return int(row["last"] or 0)


def newest(conn: sqlite3.Connection, type: str | None = None, before_row: int | None = None,
           limit: int = 100) -> list[Event]:
    """The newest events first (all, or of one type), older than `before_row` if given."""
    where: list[str] = ["1 = 1"]
    args: list[object] = []
    if type is not None:
        where.append("type = ?")
        args.append(type)
    if before_row is not None:
        where.append("id < ?")
        args.append(before_row)
    rows = conn.execute(f"SELECT {_COLS} FROM events WHERE {' AND '.join(where)}"
                        " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
    return [event_of(r) for r in rows]


def cursor(conn: sqlite3.Connection, name: str) -> int | None:
    row = conn.execute("SELECT event_row FROM event_cursors WHERE name = ?", (name,)).fetchone()
    return row["event_row"] if row else None


def cursor_moved_at(conn: sqlite3.Connection, name: str) -> int | None:
    row = conn.execute("SELECT updated_at_ms FROM event_cursors WHERE name = ?",
                       (name,)).fetchone()
    return row["updated_at_ms"] if row else None


def start_cursors_tx(conn: sqlite3.Connection, names: list[str], at_ms: int) -> None:
    """Readers seen for the first time (a new webhook, alerts just turned on) start after the
    newest event: they take the events written from now on."""
    last = last_row(conn)
    for name in names:
        conn.execute("INSERT OR IGNORE INTO event_cursors (name, event_row, updated_at_ms)"
                     " VALUES (?, ?, ?)", (name, last, at_ms))


def set_cursor_tx(conn: sqlite3.Connection, name: str, event_row: int, at_ms: int) -> None:
    conn.execute(
        "INSERT INTO event_cursors (name, event_row, updated_at_ms) VALUES (?, ?, ?)"
        " ON CONFLICT (name) DO UPDATE SET event_row = excluded.event_row,"
        " updated_at_ms = excluded.updated_at_ms", (name, event_row, at_ms))


def by_row(conn: sqlite3.Connection, row: int) -> Event | None:
    found = conn.execute(f"SELECT {_COLS} FROM events WHERE id = ?", (row,)).fetchone()
    return event_of(found) if found else None
