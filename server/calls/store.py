"""The SQL of calls: starting one (the rules for it: rate acknowledgment, seller online and
not busy, blocks, self-exclusion, pre-funding, spending cap and limits), accepting it,
recording a change of state, both parties' media summaries and the pauses, ending it through
billing, and rating it. Rows are read by name into CallRow; `call_json` is the API's view of
a call, `meter_json` of a billing pass's meter. Functions named `*_tx` run inside a database
transaction (`Database.tx`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from typing import Any

from meterchat.calls.live import MediaRecord
from meterchat.core.errors import Conflict, Forbidden, NotFound, PaymentRequired, Unprocessable
from meterchat.core.units import MUSDT_PER_TOKEN, iso_ms, musdt_to_tokens_str
from meterchat.economy import limits as economy_limits
from meterchat.economy.rules import had_live_time
from meterchat.money import billing, ledger
from meterchat.money.billing import ACTIVE_STATES, FINAL_STATES
from meterchat.sellers.blocks import is_blocked_between


@dataclass(frozen=True)
class CallRow:
    """A row of `calls`, the columns the API shows."""

    id: int
    buyer_id: int
    seller_id: int
    rate_tokens_per_min: int
    state: str
    live_ms: int
    billed_tenths: int
    settled_tenths: int
    charged_musdt: int
    seller_earned_musdt: int
    commission_musdt: int
    refunded_musdt: int
    end_reason: str | None
    created_at_ms: int
    ended_at_ms: int | None
    spend_cap_musdt: int | None
    rating_stars: int | None
    pauses: int
    paused_ms: int
    paused_by: str | None
    live_at_ms: int | None  # when it first went live; None for a call that never did

    @classmethod
    def of(cls, row: sqlite3.Row) -> CallRow:
        return cls(**{name: row[name] for name in _CALL_FIELDS})


_CALL_FIELDS = tuple(f.name for f in fields(CallRow))
_CALL_COLS = ", ".join(_CALL_FIELDS)
_ACTIVE = "(" + ", ".join(f"'{s}'" for s in ACTIVE_STATES) + ")"


def _rows(conn: sqlite3.Connection, sql: str, args: Iterable[Any] = ()) -> sqlite3.Cursor:
    """A cursor whose rows are read by name, whatever the connection's row factory."""
    cur = conn.cursor()
    cur.row_factory = sqlite3.Row
    return cur.execute(sql, tuple(args))


def call_json(row: CallRow, live_ms: int | None = None) -> dict[str, Any]:
    """A call as the API shows it. `live_ms`: the live time of an active call, which its
    row knows only up to the last write."""
    if row.state in FINAL_STATES:
        charged = row.charged_musdt
    else:  # segments recorded and not yet settled count as charged
        price = billing.segment_price_musdt(row.rate_tokens_per_min)
        charged = row.charged_musdt + (row.billed_tenths - row.settled_tenths) * price
    return {
        "id": str(row.id),
        "buyer_id": str(row.buyer_id),
        "seller_id": str(row.seller_id),
        "rate": row.rate_tokens_per_min,
        "state": row.state,
        "live_seconds": (live_ms if live_ms is not None else row.live_ms) // 1000,
        "billed_tenths": row.billed_tenths,
        "charged": musdt_to_tokens_str(charged),
        "seller_earned": musdt_to_tokens_str(row.seller_earned_musdt),
        "commission": musdt_to_tokens_str(row.commission_musdt),
        "refunded": musdt_to_tokens_str(row.refunded_musdt),
        "end_reason": row.end_reason,
        "created_at": iso_ms(row.created_at_ms),
        "ended_at": iso_ms(row.ended_at_ms),
        "spend_cap": (None if row.spend_cap_musdt is None
                      else musdt_to_tokens_str(row.spend_cap_musdt)),
        "rating": row.rating_stars,
        # Pauses over the whole call, and the side the current pause (for an ended call,
        # the pause it ended in) comes from: "buyer", "seller", "both" or null.
        "pauses": row.pauses,
        "paused_seconds": row.paused_ms // 1000,
        "paused_by": row.paused_by,
    }


# ---- reading ------------------------------------------------------------------------

def get_call(conn: sqlite3.Connection, call_id: int) -> CallRow | None:
    row = _rows(conn, f"SELECT {_CALL_COLS} FROM calls WHERE id = ?", (call_id,)).fetchone()
    return None if row is None else CallRow.of(row)


def meter_json(o: billing.PassOutcome, live_ms: int) -> dict[str, Any]:
    """The meter message of a billing pass's outcome, as both parties get it; the buyer's
    copy adds its `balance`, which is the buyer's business only (the seller's says None)."""
    return {
        "type": "meter", "call_id": str(o.call_id),
        "live_seconds": live_ms // 1000,
        "billed_tenths": o.billed_tenths,
        "charged": musdt_to_tokens_str(o.charged_musdt),
        "minutes_left": f"{o.minutes_left_tenths // 10}.{o.minutes_left_tenths % 10}",
    }


def list_calls_of(conn: sqlite3.Connection, user_id: int, limit: int = 50) -> list[CallRow]:
    """A user's calls, as buyer or seller, the newest first."""
    return [CallRow.of(r) for r in _rows(
        conn, f"SELECT {_CALL_COLS} FROM calls WHERE buyer_id = ? OR seller_id = ?"
        " ORDER BY id DESC LIMIT ?", (user_id, user_id, limit))]


def _must_get(conn: sqlite3.Connection, call_id: int) -> CallRow:
    row = get_call(conn, call_id)
    if row is None:
        raise NotFound("no such call", "call_not_found")
    return row


def _account_id(conn: sqlite3.Connection, name: str) -> int:
    row = _rows(conn, "SELECT id FROM accounts WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise NotFound(f"no account {name}", "account_not_found")
    return int(row["id"])


def _in_call(conn: sqlite3.Connection, column: str, user_id: int) -> bool:
    return _rows(conn, f"SELECT 1 FROM calls WHERE {column} = ? AND state IN {_ACTIVE}",
                 (user_id,)).fetchone() is not None


# ---- writing ------------------------------------------------------------------------

def create_call_tx(conn: sqlite3.Connection, buyer_id: int, seller_id: int, rate: int,
                   spend_cap_musdt: int | None, min_prefund_minutes: int,
                   default_commission_ppm: int, now: int,
                   seller_bucket: str = "available") -> CallRow:
    """Start a call (ringing) and hold its first minute, or refuse with the reason."""
    economy_limits.check_not_excluded(conn, buyer_id, now)
    seller = _rows(
        conn, "SELECT s.rate_tokens_per_min, s.online, s.commission_ppm FROM sellers s"
        " JOIN users u ON u.id = s.user_id WHERE s.user_id = ? AND u.banned_at_ms IS NULL",
        (seller_id,)).fetchone()
    if seller is None or seller_id == buyer_id:
        raise NotFound("no such seller", "seller_not_found")
    current_rate, ppm = seller["rate_tokens_per_min"], seller["commission_ppm"]
    if is_blocked_between(conn, buyer_id, seller_id):
        raise Forbidden("you cannot call this seller", "blocked")
    if not seller["online"]:
        raise Conflict("this seller is offline", "seller_offline")
    if _in_call(conn, "seller_id", seller_id):
        raise Conflict("this seller is in another call", "seller_busy")
    if rate != current_rate:
        raise Conflict(
            f"the seller's rate is now {current_rate} tokens per minute; acknowledge it to call",
            "rate_changed",
        )
    if _in_call(conn, "buyer_id", buyer_id):
        raise Conflict("you are already in a call; end it first", "buyer_busy")
    price = billing.segment_price_musdt(rate)
    if spend_cap_musdt is not None and spend_cap_musdt < price:
        raise Unprocessable(
            f"spend_cap must cover at least one 6-second segment ({musdt_to_tokens_str(price)}"
            " tokens)", "spend_cap_too_low")
    # The buyer's daily and monthly limits cap the call like a spending cap.
    spend_cap_musdt = economy_limits.call_cap(conn, buyer_id, spend_cap_musdt, price, now)
    available = ledger.balance(conn, ledger.user_account(buyer_id))
    need = max(min_prefund_minutes * rate * MUSDT_PER_TOKEN, price)
    if available < need:
        raise PaymentRequired(
            f"you need at least {musdt_to_tokens_str(need)} tokens to start this"
            " call; top up first", "insufficient_funds")
    cur = conn.execute(
        "INSERT INTO calls (buyer_id, seller_id, rate_tokens_per_min, commission_ppm,"
        " spend_cap_musdt, state, buyer_available_acct, buyer_held_acct, seller_acct,"
        " created_at_ms) VALUES (?, ?, ?, ?, ?, 'ringing', ?, ?, ?, ?)",
        (buyer_id, seller_id, rate, ppm if ppm is not None else default_commission_ppm,
         spend_cap_musdt, _account_id(conn, ledger.user_account(buyer_id)),
         _account_id(conn, ledger.user_account(buyer_id, "held")),
         _account_id(conn, ledger.user_account(seller_id, seller_bucket)), now),
    )
    call_id = cur.lastrowid
    assert call_id is not None
    if billing.first_hold(conn, call_id, buyer_id, rate, spend_cap_musdt, available) is None:
        raise PaymentRequired("not enough tokens for one segment", "insufficient_funds")
    _event(conn, call_id, now, "ringing")
    return _must_get(conn, call_id)


def accept_call_tx(conn: sqlite3.Connection, call_id: int, now: int) -> CallRow:
    cur = conn.execute(
        "UPDATE calls SET state = 'connecting', accepted_at_ms = ? WHERE id = ?"
        " AND state = 'ringing'", (now, call_id))
    if cur.rowcount == 0:
        raise Conflict("this call is no longer ringing", "invalid_state")
    _event(conn, call_id, now, "connecting")
    return _must_get(conn, call_id)


def _event(conn: sqlite3.Connection, call_id: int, at_ms: int, state: str,
           detail: str | None = None) -> None:
    conn.execute("INSERT INTO call_events (call_id, at_ms, state, detail) VALUES (?, ?, ?, ?)",
                 (call_id, at_ms, state, detail))


def save_media(conn: sqlite3.Connection, media: Iterable[MediaRecord]) -> None:
    conn.executemany(
        "INSERT OR REPLACE INTO call_media (call_id, user_id, reports, good_reports,"
        " last_state, bytes_received, frames_decoded, last_report_at_ms, socket_open,"
        " updated_at_ms) VALUES (:call_id, :user_id, :reports, :good_reports, :last_state,"
        " :bytes_received, :frames_decoded, :last_report_at_ms, :socket_open,"
        " :updated_at_ms)", [asdict(m) for m in media])


def _save_pauses(conn: sqlite3.Connection, call_id: int, pauses: billing.Pauses) -> None:
    conn.execute("UPDATE calls SET pauses = ?, paused_ms = ?, paused_by = ? WHERE id = ?",
                 (pauses.count, pauses.paused_ms, pauses.paused_by, call_id))


def record_state_tx(conn: sqlite3.Connection, call_id: int, state: str, now: int,
                    pauses: billing.Pauses | None = None,
                    media: Iterable[MediaRecord] = ()) -> None:
    """A change between connecting, live and paused, with the media summaries of the
    moment; a `paused` event names the side the pause comes from."""
    pauses = pauses or billing.Pauses()
    save_media(conn, media)
    cur = conn.execute(
        "UPDATE calls SET state = ?, live_at_ms = CASE WHEN ? = 'live'"
        " THEN COALESCE(live_at_ms, ?) ELSE live_at_ms END, pauses = ?, paused_ms = ?,"
        " paused_by = ? WHERE id = ? AND state IN ('connecting', 'live', 'paused')",
        (state, state, now, pauses.count, pauses.paused_ms, pauses.paused_by, call_id),
    )
    if cur.rowcount == 0:
        return  # already ended: a late record of a state changes nothing
    _event(conn, call_id, now, state, pauses.paused_by if state == "paused" else None)


def finish_call_tx(conn: sqlite3.Connection, media: Iterable[MediaRecord], call_id: int,
                   state: str, reason: str, live_ms: int | None, now: int,
                   refund_below_live_ms: int, *, seller_side_failed: bool,
                   refunds_per_day: int, pauses: billing.Pauses) -> billing.Finished | None:
    """End a call: its media summaries, then billing's end (the last segment, settling,
    releasing the hold, the immediate-failure refund); None if it had ended already."""
    save_media(conn, media)
    return billing.finish_call(conn, call_id, state, reason, live_ms, now,
                               refund_below_live_ms, seller_side_failed=seller_side_failed,
                               refunds_per_day=refunds_per_day, pauses=pauses)


def save_end_record_tx(conn: sqlite3.Connection, call_id: int,
                       media: Iterable[MediaRecord], pauses: billing.Pauses) -> None:
    """What the billing pass does not write when it ends a call: the media and pauses."""
    save_media(conn, media)
    _save_pauses(conn, call_id, pauses)


def rate_call_tx(conn: sqlite3.Connection, call_id: int, buyer_id: int, stars: int,
                 comment: str | None) -> CallRow:
    row = get_call(conn, call_id)
    if row is None or row.buyer_id != buyer_id:
        raise NotFound("no such call of yours", "call_not_found")
    if row.state != "ended":
        raise Conflict("only a call that took place and has ended can be rated",
                       "invalid_state")
    if not had_live_time(row.state, row.live_at_ms, row.live_ms):
        raise Conflict("this call never connected (no live time): there is nothing to rate",
                       "call_not_taken_place")
    if row.charged_musdt <= 0:
        # A free call would let throwaway accounts rate any seller for nothing.
        raise Conflict("only a call that cost something can be rated", "nothing_to_rate")
    if row.rating_stars is not None:
        raise Conflict("this call is already rated", "already_rated")
    conn.execute("UPDATE calls SET rating_stars = ?, rating_comment = ? WHERE id = ?",
                 (stars, comment, call_id))
    return _must_get(conn, call_id)
