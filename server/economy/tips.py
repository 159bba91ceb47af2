"""Tips: a buyer's tip to the seller of a call (one per Idempotency-Key, one ledger
transaction), the tips of a call, and a tip as JSON.

A tip is whole tokens, by the call's buyer, of a call that went live, while it is under way
or up to tip_window_hours after it ended with live time (rules.tip_open, rules.had_live_time:
a call that ended at 0:00 never connected and is 409 `call_not_taken_place`), within the buyer's limits and
self-exclusion (limits.py), from bought tokens only (beyond what the buyer could withdraw:
402 `bonus_not_tippable`). Commission as for the call's minutes unless
economy.tip_commission_percent >= 0; the seller's part goes where the call's earnings go
(`pending` during an earnings hold)."""

from __future__ import annotations

import sqlite3
from typing import Any

from meterchat.core.errors import Conflict, Forbidden, NotFound, PaymentRequired
from meterchat.core.units import HOUR_MS, MUSDT_PER_TOKEN, iso_ms, musdt_to_tokens_str
from meterchat.economy import bonuses, limits
from meterchat.economy.rules import (
    floor_whole_tokens,
    had_live_time,
    tip_open,
    unspent_bonus_musdt,
    withdrawable_musdt,
)
from meterchat.money import billing, ledger


class BonusNotTippable(PaymentRequired):
    code = "bonus_not_tippable"


_TIP_COLS = ("id, call_id, buyer_id, seller_id, amount_musdt, seller_musdt, commission_musdt,"
             " created_at_ms")


def tip_json(r: sqlite3.Row) -> dict[str, Any]:
    """A row of `tips` (the columns of _TIP_COLS) as the API shows it."""
    return {"id": str(r["id"]), "call_id": str(r["call_id"]), "buyer_id": str(r["buyer_id"]),
            "seller_id": str(r["seller_id"]), "tokens": musdt_to_tokens_str(r["amount_musdt"]),
            "seller_receives": musdt_to_tokens_str(r["seller_musdt"]),
            "commission": musdt_to_tokens_str(r["commission_musdt"]),
            "at": iso_ms(r["created_at_ms"])}


def _not_open_message(why: str, window_ms: int) -> str:
    """The message of rules.tip_open's refusal `why`."""
    return {
        "call_not_started": "the call has not been accepted yet",
        "call_not_live": "the call has not gone live yet: tips are for a call that took place",
        "call_not_taken_place": "this call did not take place (it never went live, or had"
                                " no live time): there is nothing to tip for",
        "tip_window_closed": f"tips are possible up to {window_ms // HOUR_MS} hours after a"
                             " call",
    }[why]


def tip_tx(conn: sqlite3.Connection, buyer_id: int, call_id: int, tokens: int, key: str,
           window_ms: int, tip_commission_ppm: int | None, now_ms: int,
           ) -> tuple[dict[str, Any], bool]:
    """Tip the seller of a call once per Idempotency-Key. Returns (tip, replayed)."""
    idem = f"tip:{buyer_id}:{key}"
    amount = tokens * MUSDT_PER_TOKEN
    seen = conn.execute(f"SELECT {_TIP_COLS} FROM tips WHERE idem_key = ?", (idem,)).fetchone()
    if seen is not None:
        if seen["call_id"] != call_id or seen["amount_musdt"] != amount:
            raise Conflict("this Idempotency-Key was used for another tip; use a new key",
                           "idempotency_key_reused")
        return tip_json(seen), True
    # The seller's part goes where the call's earnings go (`pending` during an earnings hold).
    call = conn.execute(
        "SELECT c.buyer_id, c.seller_id, c.state, c.ended_at_ms, c.commission_ppm,"
        " a.name AS seller_account, c.live_at_ms, c.live_ms FROM calls c"
        " JOIN accounts a ON a.id = c.seller_acct WHERE c.id = ?", (call_id,)).fetchone()
    if call is None or buyer_id not in (call["buyer_id"], call["seller_id"]):
        raise NotFound("no such call of yours", "call_not_found")
    if call["buyer_id"] != buyer_id:
        raise Forbidden("only the buyer of a call tips", "not_buyer")
    why = tip_open(call["state"], call["ended_at_ms"], now_ms, window_ms,
                   had_live_time(call["state"], call["live_at_ms"], call["live_ms"]))
    if why is not None:
        raise Conflict(_not_open_message(why, window_ms), why)
    limits.check_not_excluded(conn, buyer_id, now_ms)
    limits.refuse_over_limit(limits.limits_state(conn, buyer_id, now_ms), amount, "this tip")
    _refuse_bonus_tip(conn, buyer_id, amount)
    ppm = call["commission_ppm"] if tip_commission_ppm is None else tip_commission_ppm
    seller_part, commission = billing.commission_split(amount, ppm)
    result = ledger.post(conn, "tip", [
        (ledger.user_account(buyer_id), -amount),
        (call["seller_account"], seller_part),
        (ledger.REVENUE_COMMISSION, commission),
    ], idem_key=idem, ref=f"call:{call_id}", at_ms=now_ms)
    cur = conn.execute(
        "INSERT INTO tips (idem_key, call_id, buyer_id, seller_id, amount_musdt, seller_musdt,"
        " commission_musdt, ledger_tx_id, created_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (idem, call_id, buyer_id, call["seller_id"], amount, seller_part, commission,
         result.tx_id, now_ms))
    row = conn.execute(f"SELECT {_TIP_COLS} FROM tips WHERE id = ?", (cur.lastrowid,)).fetchone()
    return tip_json(row), False


def _refuse_bonus_tip(conn: sqlite3.Connection, buyer_id: int, amount_musdt: int) -> None:
    """A tip is paid from bought tokens only: what the buyer could withdraw (available minus
    the unspent bonus). Bonus tokens pay for call minutes, never become a seller's earnings
    through a tip."""
    bal = ledger.user_balances(conn, buyer_id)
    if amount_musdt > bal["available"]:
        raise ledger.InsufficientFunds(
            f"not enough tokens: {musdt_to_tokens_str(bal['available'])} available")
    figure = bonuses.bonus_figure(conn, buyer_id)
    paid = withdrawable_musdt(bal["available"], bal["held"], figure)
    if amount_musdt > paid:
        bonus = unspent_bonus_musdt(figure, bal["available"], bal["held"])
        raise BonusNotTippable(
            f"tips are paid from tokens you bought; {musdt_to_tokens_str(bonus)} of your tokens"
            " are bonus tokens, which pay for call minutes but cannot be tipped; you can tip"
            f" up to {musdt_to_tokens_str(floor_whole_tokens(paid))} tokens now")


def tips_of_call(conn: sqlite3.Connection, call_id: int) -> list[dict[str, Any]]:
    """The tips of one call, oldest first."""
    return [tip_json(r) for r in conn.execute(
        f"SELECT {_TIP_COLS} FROM tips WHERE call_id = ? ORDER BY id", (call_id,))]
