"""Disputes: a buyer disputes a call they paid for (within `dispute_window_days` of its end,
one open dispute per call); the operator reads the call's whole record and resolves it with
a refund of up to what is left of the charge.

A refund is one new reversing ledger transaction (never an edit), keyed dispute:<id>:refund:
the buyer gets it back in `available`; it is taken from the seller's earnings and the
commission in the proportion the charge was split. The seller's part comes first out of
the account the call paid them into (`pending` while earnings are held, else `available`),
then out of the other; what the seller no longer holds
(already withdrawn) is covered by the platform from revenue:commission, so no user balance
ever goes negative. If even the commission account cannot cover it the resolution is
refused and nothing moves. The rules of the split are pure functions in dispute_rules.py.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from dataclasses import dataclass
from typing import Any

from meterchat.calls import chat
from meterchat.calls import store as calls
from meterchat.core.errors import Conflict, NotFound, Unprocessable
from meterchat.core.units import iso_ms, musdt_to_tokens_str
from meterchat.economy.rules import had_live_time
from meterchat.events import outbox as events
from meterchat.events import rules as event_types
from meterchat.money import ledger
from meterchat.money.billing import FINAL_STATES
from meterchat.money.ledger import REVENUE_COMMISSION
from meterchat.operator import audit_log
from meterchat.operator.dispute_rules import refund_split, take_from_seller, within_window

MAX_REASON_CHARS = 2000
KIND_REFUND = "dispute_refund"


@dataclass(frozen=True)
class Dispute:
    """A row of `disputes` (the field names are its columns)."""

    id: int
    call_id: int
    buyer_id: int
    seller_id: int
    reason: str
    status: str
    created_at_ms: int
    resolved_at_ms: int | None
    resolved_by: int | None
    note: str | None
    refund_musdt: int
    from_seller_musdt: int
    from_commission_musdt: int
    platform_covered_musdt: int

    def view(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "call_id": str(self.call_id),
            "buyer_id": str(self.buyer_id),
            "seller_id": str(self.seller_id),
            "reason": self.reason,
            "status": self.status,
            "created_at": iso_ms(self.created_at_ms),
            "resolved_at": iso_ms(self.resolved_at_ms),
            "resolved_by": None if self.resolved_by is None else str(self.resolved_by),
            "note": self.note,
            "refund": musdt_to_tokens_str(self.refund_musdt),
            "from_seller": musdt_to_tokens_str(self.from_seller_musdt),
            "from_commission": musdt_to_tokens_str(self.from_commission_musdt),
            "platform_covered": musdt_to_tokens_str(self.platform_covered_musdt),
        }


_FIELDS = tuple(f.name for f in dataclasses.fields(Dispute))
_COLS = ", ".join(f"d.{name}" for name in _FIELDS)


def _dispute(row: sqlite3.Row) -> Dispute:
    return Dispute(**{name: row[name] for name in _FIELDS})


def get(conn: sqlite3.Connection, dispute_id: int) -> Dispute | None:
    row = conn.execute(f"SELECT {_COLS} FROM disputes d WHERE d.id = ?",
                       (dispute_id,)).fetchone()
    return _dispute(row) if row else None


def _require(conn: sqlite3.Connection, dispute_id: int) -> Dispute:
    d = get(conn, dispute_id)
    if d is None:
        raise NotFound("no such dispute", "dispute_not_found")
    return d


def refunded_musdt(conn: sqlite3.Connection, call_id: int) -> int:
    """What disputes have refunded of a call so far."""
    row = conn.execute("SELECT COALESCE(SUM(refund_musdt), 0) AS refunded FROM disputes"
                       " WHERE call_id = ?", (call_id,)).fetchone()
    return int(row["refunded"])


def open_tx(conn: sqlite3.Connection, call_id: int, buyer_id: int, reason: str,
            window_days: int, at_ms: int) -> Dispute:
    call = conn.execute(
        "SELECT buyer_id, seller_id, state, ended_at_ms, charged_musdt, live_at_ms, live_ms"
        " FROM calls WHERE id = ?", (call_id,)).fetchone()
    if call is None or call["buyer_id"] != buyer_id:
        raise NotFound("no such call of yours", "call_not_found")
    if call["state"] not in FINAL_STATES:
        raise Conflict("a call can be disputed once it has ended", "call_not_ended")
    left = call["charged_musdt"] - refunded_musdt(conn, call_id)
    if left <= 0 and not had_live_time(call["state"], call["live_at_ms"], call["live_ms"]):
        # Money taken stays disputable whatever the live time; nothing taken and no live
        # time: the call never connected.
        raise Conflict("this call never connected (no live time): nothing was charged",
                       "call_not_taken_place")
    if left <= 0:
        raise Conflict("nothing was charged for this call (or it was refunded already)",
                       "nothing_to_dispute")
    if not within_window(call["ended_at_ms"], at_ms, window_days):
        raise Conflict(f"calls can be disputed within {window_days} days of their end",
                       "dispute_window_closed")
    if conn.execute("SELECT 1 FROM disputes WHERE call_id = ? AND status = 'open'",
                    (call_id,)).fetchone():
        raise Conflict("this call already has an open dispute", "dispute_open")
    new = conn.execute(
        "INSERT INTO disputes (call_id, buyer_id, seller_id, reason, status, created_at_ms)"
        " VALUES (?, ?, ?, ?, 'open', ?) RETURNING id",
        (call_id, buyer_id, call["seller_id"], reason, at_ms)).fetchone()
    events.emit_tx(conn, event_types.DISPUTE_OPENED, {
        "dispute_id": str(new["id"]), "call_id": str(call_id), "buyer_id": str(buyer_id),
        "seller_id": str(call["seller_id"]), "reason": reason,
        "charged_tokens": musdt_to_tokens_str(call["charged_musdt"])}, at_ms)
    return _require(conn, new["id"])


def list_for_admin(conn: sqlite3.Connection, status: str | None, limit: int = 500
                   ) -> list[dict[str, Any]]:
    where, args = ("d.status = ?", (status,)) if status else ("1", ())
    rows = conn.execute(
        f"SELECT {_COLS}, c.charged_musdt, c.rate_tokens_per_min, c.live_ms, c.end_reason"
        f" FROM disputes d JOIN calls c ON c.id = d.call_id WHERE {where}"
        " ORDER BY d.id DESC LIMIT ?", (*args, limit)).fetchall()
    out = []
    for r in rows:
        view = _dispute(r).view()
        view["call"] = {"charged": musdt_to_tokens_str(r["charged_musdt"]),
                        "rate": r["rate_tokens_per_min"], "live_seconds": r["live_ms"] // 1000,
                        "end_reason": r["end_reason"]}
        out.append(view)
    return out


def call_record(conn: sqlite3.Connection, call_id: int) -> dict[str, Any]:
    """Everything kept about a call: its row, every state change, every segment, both
    parties' media reports, its ledger transactions, its disputes and its chat messages."""
    call = calls.get_call(conn, call_id)
    if call is None:
        raise NotFound("no such call", "call_not_found")
    events = [{"at": iso_ms(r["at_ms"]), "state": r["state"], "detail": r["detail"]}
              for r in conn.execute(
                  "SELECT at_ms, state, detail FROM call_events WHERE call_id = ? ORDER BY id",
                  (call_id,))]
    segments = [{"tenth": r["tenth"], "at": iso_ms(r["at_ms"])} for r in conn.execute(
        "SELECT tenth, at_ms FROM call_segments WHERE call_id = ? ORDER BY tenth", (call_id,))]
    media = [{
        "user_id": str(r["user_id"]),
        "party": "buyer" if r["user_id"] == call.buyer_id else "seller",
        "reports": r["reports"], "good_reports": r["good_reports"],
        "last_state": r["last_state"], "bytes_received": r["bytes_received"],
        "frames_decoded": r["frames_decoded"],
        "last_report_at": iso_ms(r["last_report_at_ms"]),
        "socket_open": bool(r["socket_open"]), "recorded_at": iso_ms(r["updated_at_ms"]),
    } for r in conn.execute(
        "SELECT user_id, reports, good_reports, last_state, bytes_received, frames_decoded,"
        " last_report_at_ms, socket_open, updated_at_ms FROM call_media WHERE call_id = ?",
        (call_id,))]
    txs: list[dict[str, Any]] = []
    for r in conn.execute(
        "SELECT t.id, t.kind, t.idem_key, t.created_at_ms, a.name, p.amount_musdt"
        " FROM ledger_tx t JOIN postings p ON p.tx_id = t.id JOIN accounts a ON a.id ="
        " p.account_id WHERE t.ref = ? ORDER BY t.id, p.id", (f"call:{call_id}",)):
        if not txs or txs[-1]["id"] != str(r["id"]):
            txs.append({"id": str(r["id"]), "kind": r["kind"], "idem_key": r["idem_key"],
                        "at": iso_ms(r["created_at_ms"]), "postings": []})
        txs[-1]["postings"].append({"account": r["name"],
                                    "amount": musdt_to_tokens_str(r["amount_musdt"])})
    disputes = [_dispute(r).view() for r in conn.execute(
        f"SELECT {_COLS} FROM disputes d WHERE d.call_id = ? ORDER BY d.id", (call_id,))]
    return {"call": calls.call_json(call), "events": events, "segments": segments,
            "media": media, "ledger": txs, "disputes": disputes,
            "messages": chat.messages_of(conn, call_id)}


def record_of_dispute(conn: sqlite3.Connection, dispute_id: int) -> dict[str, Any]:
    d = _require(conn, dispute_id)
    return {"dispute": d.view(), "record": call_record(conn, d.call_id)}


def resolve_tx(conn: sqlite3.Connection, dispute_id: int, refund_musdt: int,
               note: str | None, actor_id: int, at_ms: int) -> tuple[Dispute, bool]:
    """Resolve with a refund (0 = no refund). Returns (dispute, replayed): resolving again
    with the same refund returns the first resolution and moves nothing."""
    d = _require(conn, dispute_id)
    if d.status == "resolved":
        if d.refund_musdt == refund_musdt:
            return d, True
        raise Conflict("this dispute is already resolved", "dispute_resolved")
    call = conn.execute(
        "SELECT c.charged_musdt, c.seller_earned_musdt, a.name AS seller_acct FROM calls c"
        " JOIN accounts a ON a.id = c.seller_acct WHERE c.id = ?", (d.call_id,)).fetchone()
    charged: int = call["charged_musdt"]
    left = charged - refunded_musdt(conn, d.call_id)
    if refund_musdt > left:
        raise Unprocessable(
            f"refund_tokens can be at most {musdt_to_tokens_str(left)}, what is left of the"
            " charge", "refund_too_large")
    from_seller, from_commission = refund_split(refund_musdt, charged,
                                                call["seller_earned_musdt"])
    pending_acct = ledger.user_account(d.seller_id, "pending")
    avail_acct = ledger.user_account(d.seller_id)
    # The call's own earning account first (pending while earnings are held).
    first, second = (pending_acct, avail_acct) if call["seller_acct"] == pending_acct else (
        avail_acct, pending_acct)
    a, b, shortfall = take_from_seller(from_seller, ledger.balance(conn, first),
                                       ledger.balance(conn, second))
    tx_id = None
    if refund_musdt:
        try:
            tx = ledger.post(conn, KIND_REFUND, [
                (ledger.user_account(d.buyer_id), refund_musdt),
                (first, -a), (second, -b),
                (REVENUE_COMMISSION, -(from_commission + shortfall)),
            ], idem_key=f"dispute:{d.id}:refund", ref=f"call:{d.call_id}", at_ms=at_ms)
        except ledger.InsufficientFunds:
            raise Conflict(
                "the seller no longer holds their part and revenue:commission cannot cover"
                " it; refund less", "platform_cannot_cover") from None
        tx_id = tx.tx_id
        conn.execute("UPDATE calls SET refunded_musdt = refunded_musdt + ? WHERE id = ?",
                     (refund_musdt, d.call_id))
    conn.execute(
        "UPDATE disputes SET status = 'resolved', resolved_at_ms = ?, resolved_by = ?,"
        " note = ?, refund_musdt = ?, from_seller_musdt = ?, from_commission_musdt = ?,"
        " platform_covered_musdt = ?, ledger_tx_id = ? WHERE id = ? AND status = 'open'",
        (at_ms, actor_id, note, refund_musdt, from_seller, from_commission, shortfall, tx_id,
         d.id))
    audit_log.record(conn, actor_id, "dispute.resolve", f"dispute:{d.id}", note, at_ms,
                     call_id=d.call_id, refund_musdt=refund_musdt,
                     from_seller_musdt=from_seller, from_commission_musdt=from_commission,
                     platform_covered_musdt=shortfall)
    return _require(conn, d.id), False
