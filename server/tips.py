"""Tips: whole tokens a buyer gives the seller of their call, during it or within
`economy.tip_window_hours` after it ends. Commission applies as for the call's minutes
unless the operator sets `economy.tip_commission_percent`. One ledger transaction per tip,
keyed by the buyer's Idempotency-Key: a replay returns the first tip and moves nothing."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from server import ledger
from server.billing import commission_ppm_from_percent, commission_split
from server.config import EconomyConfig
from server.db import now_ms
from server.deposits import iso_ms
from server.errors import Conflict, NotFound, Unprocessable
from server.money import MUSDT_PER_TOKEN, musdt_to_tokens_str

# A tip goes to the seller of a call that was answered; never to one declined or missed.
TIPPABLE_STATES = ("connecting", "live", "paused", "ended")


@dataclass(frozen=True)
class Tip:
    id: int
    call_id: int
    buyer_id: int
    seller_id: int
    amount_musdt: int
    seller_musdt: int
    commission_musdt: int
    created_at_ms: int
    replayed: bool = False

    def view(self) -> dict:
        return {
            "id": str(self.id),
            "call_id": str(self.call_id),
            "buyer_id": str(self.buyer_id),
            "seller_id": str(self.seller_id),
            "tokens": musdt_to_tokens_str(self.amount_musdt),
            "seller_tokens": musdt_to_tokens_str(self.seller_musdt),
            "commission": musdt_to_tokens_str(self.commission_musdt),
            "created_at": iso_ms(self.created_at_ms),
        }


def tip_commission_ppm(call_commission_ppm: int, cfg: EconomyConfig) -> int:
    """The call's own commission (default), or the operator's tip commission."""
    if cfg.tip_commission_percent < 0:
        return call_commission_ppm
    return commission_ppm_from_percent(cfg.tip_commission_percent)


def check_tip_tokens(value: object, cfg: EconomyConfig) -> int:
    """Whole tokens, 1..max_tip_tokens; returns µUSDT."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise Unprocessable("tokens must be a whole number of tokens", "invalid_type")
    text = str(value).strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise Unprocessable("tips are whole tokens, e.g. 50", "invalid_amount")
    tokens = int(text)
    if not 1 <= tokens <= cfg.max_tip_tokens:
        raise Unprocessable(f"a tip is 1 to {cfg.max_tip_tokens} tokens", "invalid_amount")
    return tokens * MUSDT_PER_TOKEN


_COLS = ("id, call_id, buyer_id, seller_id, amount_musdt, seller_musdt, commission_musdt,"
         " created_at_ms")


def _tip(row: tuple, replayed: bool = False) -> Tip:
    return Tip(*row, replayed=replayed)


def give_tx(conn: sqlite3.Connection, call_id: int, buyer_id: int, amount_musdt: int,
            idem_key: str, cfg: EconomyConfig, at_ms: int | None = None) -> Tip:
    """Record and pay one tip (inside Database.tx). Raises InsufficientFunds (402) when the
    buyer's available balance is short; nothing is written then."""
    at_ms = now_ms() if at_ms is None else at_ms
    seen = conn.execute(f"SELECT {_COLS} FROM tips WHERE buyer_id = ? AND idem_key = ?",
                        (buyer_id, idem_key)).fetchone()
    if seen is not None:
        tip = _tip(seen, replayed=True)
        if tip.call_id != call_id or tip.amount_musdt != amount_musdt:
            raise Conflict("this Idempotency-Key was used for another tip; use a new key",
                           "idempotency_key_reused")
        return tip
    row = conn.execute(
        "SELECT c.buyer_id, c.seller_id, c.state, c.ended_at_ms, c.commission_ppm, a.name"
        " FROM calls c JOIN accounts a ON a.id = c.seller_acct WHERE c.id = ?",
        (call_id,)).fetchone()
    if row is None or row[0] != buyer_id:
        raise NotFound("no such call of yours", "call_not_found")
    _, seller_id, state, ended_at_ms, call_ppm, seller_account = row
    if state not in TIPPABLE_STATES:
        raise Conflict("only a call that was answered can be tipped", "call_not_tippable")
    if state == "ended" and ended_at_ms is not None and (
            at_ms - ended_at_ms > cfg.tip_window_hours * 3_600_000):
        raise Conflict(f"tips are possible up to {cfg.tip_window_hours} h after a call",
                       "tip_window_closed")
    seller_musdt, commission_musdt = commission_split(
        amount_musdt, tip_commission_ppm(call_ppm, cfg))
    result = ledger.post(
        conn, "tip",
        [(ledger.user_account(buyer_id), -amount_musdt), (seller_account, seller_musdt),
         (ledger.REVENUE_COMMISSION, commission_musdt)],
        idem_key=f"tip:{buyer_id}:{idem_key}", ref=f"call:{call_id}", at_ms=at_ms)
    cur = conn.execute(
        "INSERT INTO tips (call_id, buyer_id, seller_id, idem_key, amount_musdt, seller_musdt,"
        " commission_musdt, ledger_tx_id, created_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (call_id, buyer_id, seller_id, idem_key, amount_musdt, seller_musdt, commission_musdt,
         result.tx_id, at_ms))
    return Tip(cur.lastrowid, call_id, buyer_id, seller_id, amount_musdt, seller_musdt,
               commission_musdt, at_ms)


def of_call(conn: sqlite3.Connection, call_id: int, user_id: int) -> list[Tip]:
    """The tips of a call, for either of its parties; anyone else learns nothing (404)."""
    if conn.execute("SELECT 1 FROM calls WHERE id = ? AND (buyer_id = ? OR seller_id = ?)",
                    (call_id, user_id, user_id)).fetchone() is None:
        raise NotFound("no such call of yours", "call_not_found")
    rows = conn.execute(
        f"SELECT {_COLS} FROM tips WHERE call_id = ? AND (buyer_id = ? OR seller_id = ?)"
        " ORDER BY id", (call_id, user_id, user_id)).fetchall()
    return [_tip(r) for r in rows]
