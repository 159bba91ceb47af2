"""Text chat in a call (API.md "The call room"): the rule for a message's text (pure), the
messages stored with the call (`call_messages`, one row per message, one write each), their
JSON view, and a party's report of a message, which goes to the reports queue of
sellers/blocks.py carrying the message.

The text rule: a message is a JSON string; surrounding whitespace is trimmed; a line break
(`\\r\\n` and `\\r` become `\\n`) and a tab are kept inside it; any other control character
(Unicode category Cc) and unpaired surrogates are refused (`chat_invalid_text`); what is left
must be 1..MAX_CHARS characters (code points, not bytes). The text is stored and sent as the
sender typed it: pages show it as text, never as HTML.

Who may write: only the two parties of a call that is connecting, live or paused (the call
manager checks its active calls; the insert checks the call's row again in the same write).
`*_tx` functions run inside the caller's transaction."""

from __future__ import annotations

import sqlite3
import unicodedata
from typing import Any

from meterchat.core.errors import Conflict, NotFound, Unprocessable
from meterchat.core.units import iso_ms
from meterchat.money.billing import ACCEPTED_STATES
from meterchat.sellers import blocks

MAX_CHARS = 1000
PAGE = 500  # messages per answer of GET /api/calls/{id}/messages
_KEPT_CONTROLS = frozenset("\n\t")


class ChatTextError(Unprocessable):
    code = "chat_invalid_text"


def chat_text(raw: Any) -> str:
    """The text of a chat message as stored, or ChatTextError with a clear code."""
    if not isinstance(raw, str):
        raise ChatTextError("text must be a string", "chat_invalid_text")
    text = raw.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        raise ChatTextError("a chat message needs some text", "chat_empty")
    if len(text) > MAX_CHARS:
        raise ChatTextError(f"a chat message is at most {MAX_CHARS} characters",
                            "chat_too_long")
    for ch in text:
        if ch in _KEPT_CONTROLS:
            continue
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Cs"):
            raise ChatTextError("control characters are not allowed in a chat message"
                                " (line breaks and tabs are)", "chat_invalid_text")
    return text


def message_json(r: sqlite3.Row) -> dict[str, Any]:
    return {"id": str(r["id"]), "from": str(r["from_user_id"]), "text": r["text"],
            "at": iso_ms(r["at_ms"])}


_COLS = "id, call_id, from_user_id, text, at_ms"


def add_message_tx(conn: sqlite3.Connection, call_id: int, from_user_id: int, text: str,
                   at_ms: int) -> dict[str, Any]:
    """Store one message of a party of a call under way (one insert); 409 if the call's row
    says it is no longer connecting, live or paused, 404 if the sender is no party."""
    states = ", ".join(f"'{s}'" for s in ACCEPTED_STATES)
    row = conn.execute(
        f"INSERT INTO call_messages (call_id, from_user_id, text, at_ms) SELECT id, ?, ?, ?"
        f" FROM calls WHERE id = ? AND ? IN (buyer_id, seller_id) AND state IN ({states})"
        f" RETURNING {_COLS}", (from_user_id, text, at_ms, call_id, from_user_id)).fetchone()
    if row is None:
        raise Conflict("this call is not connecting, live or paused", "invalid_state")
    return message_json(row)


def messages_of(conn: sqlite3.Connection, call_id: int, after_id: int = 0,
                limit: int = -1) -> list[dict[str, Any]]:
    """The messages of a call after message `after_id`, oldest first (at most `limit`;
    -1: all)."""
    return [message_json(r) for r in conn.execute(
        f"SELECT {_COLS} FROM call_messages WHERE call_id = ? AND id > ? ORDER BY id"
        " LIMIT ?", (call_id, after_id, limit))]


def party_of(conn: sqlite3.Connection, call_id: int, user_id: int) -> None:
    """404 unless `user_id` is a party of the call (as for every call endpoint: a stranger
    learns nothing about the call, not even that it exists)."""
    row = conn.execute("SELECT buyer_id, seller_id FROM calls WHERE id = ?",
                       (call_id,)).fetchone()
    if row is None or user_id not in (row["buyer_id"], row["seller_id"]):
        raise NotFound("no such call of yours", "call_not_found")


def messages_for_party(conn: sqlite3.Connection, call_id: int, user_id: int,
                       after_id: int = 0) -> tuple[list[dict[str, Any]], bool]:
    """A page of a call's messages for one of its parties (404 for anyone else), and
    whether more follow (ask again with `after` = the last id)."""
    party_of(conn, call_id, user_id)
    page = messages_of(conn, call_id, after_id, PAGE + 1)
    return page[:PAGE], len(page) > PAGE


def report_message_tx(conn: sqlite3.Connection, call_id: int, message_id: int,
                      reporter_id: int, reason: str | None) -> None:
    """A party reports a message the other party sent: a report about its sender in the
    reports queue, carrying the message. Reporting the same message again changes nothing."""
    party_of(conn, call_id, reporter_id)
    msg = conn.execute("SELECT from_user_id FROM call_messages WHERE id = ? AND call_id = ?",
                       (message_id, call_id)).fetchone()
    if msg is None:
        raise NotFound("no such message in this call", "message_not_found")
    if msg["from_user_id"] == reporter_id:
        raise Unprocessable("you cannot report your own message", "invalid_target")
    if conn.execute("SELECT 1 FROM user_reports WHERE reporter_id = ? AND call_message_id = ?",
                    (reporter_id, message_id)).fetchone() is not None:
        return
    blocks.report_tx(conn, reporter_id, msg["from_user_id"], reason,
                     call_message_id=message_id)

