"""The storage of the sending state machine, the changes the sender job (sender.py) makes:

    queued -> signed (stored BEFORE any broadcast) -> sent (a node took it)
           -> confirmed (solidified SUCCESS paying the net; ledger: clearing -> chain + fees)
           -> failed (final on chain; the operator retries or returns the tokens)
    signed / sent -> queued again only when proven expired (it can never land)

Every function ending in `_tx` runs inside `Database.tx` and is guarded by the status (and
TXID) it expects, so a change that lost a race does nothing and says so (False).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from meterchat.chain.gateway import SignedTransfer
from meterchat.core.db import now_ms
from meterchat.core.units import musdt_to_usdt_str
from meterchat.events import outbox as events
from meterchat.events import rules as event_types
from meterchat.money import ledger
from meterchat.withdrawals import store as wd
from meterchat.withdrawals.rules import IN_FLIGHT, KIND_SENT
from meterchat.withdrawals.store import Withdrawal


@dataclass(frozen=True)
class InFlight:
    """A signed or sent withdrawal with its current transaction."""

    withdrawal: Withdrawal
    signed_json: str
    expiration_ms: int
    fee_limit_sun: int
    dead_after_block: int | None


def in_flight(conn: sqlite3.Connection) -> list[InFlight]:
    rows = conn.execute(
        f"SELECT {wd.COLUMNS}, t.signed_json, t.expiration_ms, t.fee_limit_sun,"
        f" t.dead_after_block {wd.FROM} JOIN withdrawal_txs t ON t.txid = w.txid"
        " WHERE w.status IN ('signed', 'sent') ORDER BY w.id"
    ).fetchall()
    return [InFlight(withdrawal=wd.withdrawal_from_row(r), signed_json=r["signed_json"],
                     expiration_ms=r["expiration_ms"], fee_limit_sun=r["fee_limit_sun"],
                     dead_after_block=r["dead_after_block"]) for r in rows]


def queued(conn: sqlite3.Connection, limit: int = 100) -> list[Withdrawal]:
    """What the sender may send now, oldest first (not of a blocked account, not held)."""
    rows = conn.execute(wd.select("w.status = 'queued' AND u.withdrawals_blocked = 0"
                                  " AND (w.hold_until_ms IS NULL OR w.hold_until_ms <= ?)")
                        + " ORDER BY w.id LIMIT ?", (now_ms(), limit)).fetchall()
    return [wd.withdrawal_from_row(r) for r in rows]


def set_wait_reason_tx(conn: sqlite3.Connection, withdrawal_id: int, reason: str | None,
                       at_ms: int) -> None:
    conn.execute(
        "UPDATE withdrawals SET wait_reason = ?, updated_at_ms = ?"
        " WHERE id = ? AND wait_reason IS NOT ?",
        (reason, at_ms, withdrawal_id, reason),
    )


def store_signed_tx(conn: sqlite3.Connection, withdrawal_id: int, signed: SignedTransfer,
                    fee_limit_sun: int, at_ms: int) -> bool:
    """queued -> signed, storing the signed transaction BEFORE anything is broadcast. False
    (and nothing stored) when the withdrawal is no longer queued (e.g. rejected meanwhile):
    those signed bytes are then dropped, never broadcast."""
    cur = conn.execute(
        "UPDATE withdrawals SET status = 'signed', txid = ?, wait_reason = NULL,"
        " failure_reason = NULL, updated_at_ms = ? WHERE id = ? AND status = 'queued'",
        (signed.txid, at_ms, withdrawal_id),
    )
    if cur.rowcount != 1:
        return False
    conn.execute(
        "INSERT INTO withdrawal_txs (txid, withdrawal_id, signed_json, expiration_ms,"
        " fee_limit_sun, created_at_ms) VALUES (?, ?, ?, ?, ?, ?)",
        (signed.txid, withdrawal_id, signed.signed_json, signed.expiration_ms, fee_limit_sun,
         at_ms),
    )
    return True


def note_broadcast_tx(conn: sqlite3.Connection, withdrawal_id: int, txid: str, code: str,
                      accepted: bool, wait_reason: str | None, at_ms: int) -> None:
    """Record a broadcast's answer; an accepted one (or DUP: the node has it) makes the
    withdrawal `sent`."""
    conn.execute(
        "UPDATE withdrawal_txs SET broadcasts = broadcasts + 1, last_broadcast_code = ?"
        " WHERE txid = ?", (code, txid))
    if accepted:
        conn.execute(
            "UPDATE withdrawals SET status = 'sent', wait_reason = NULL, updated_at_ms = ?"
            " WHERE id = ? AND txid = ? AND status IN ('signed', 'sent')",
            (at_ms, withdrawal_id, txid))
    else:
        set_wait_reason_tx(conn, withdrawal_id, wait_reason, at_ms)


def mark_seen_in_block_tx(conn: sqlite3.Connection, withdrawal_id: int, txid: str,
                          at_ms: int) -> None:
    """A `signed` withdrawal whose transaction is already in a block was sent (the answer
    to its broadcast was lost, e.g. in a crash)."""
    conn.execute(
        "UPDATE withdrawals SET status = 'sent', wait_reason = NULL, updated_at_ms = ?"
        " WHERE id = ? AND txid = ? AND status = 'signed'", (at_ms, withdrawal_id, txid))


def emit_tx(conn: sqlite3.Connection, type: str, withdrawal_id: int, at_ms: int,
            **extra: object) -> None:
    """A withdrawal event (`withdrawal.review`, `.failed`, `.confirmed`) in the transaction
    of the change, with the withdrawal as it now is."""
    w = wd.require(conn, withdrawal_id)
    events.emit_tx(conn, type, {
        "withdrawal_id": str(w.id), "user_id": str(w.user_id), "status": w.status,
        "amount_usdt": musdt_to_usdt_str(w.amount_musdt),
        "net_usdt": musdt_to_usdt_str(w.net_musdt), "address": w.address, "txid": w.txid,
        **extra}, at_ms)


def post_sent_tx(conn: sqlite3.Connection, w: Withdrawal, txid: str) -> None:
    """The tokens of a paid withdrawal leave clearing: the net to chain:withdrawals, the fees
    to revenue (once per withdrawal and transaction)."""
    ledger.post(conn, KIND_SENT, [
        (ledger.CLEARING_WITHDRAWALS, -w.amount_musdt),
        (ledger.CHAIN_WITHDRAWALS, w.net_musdt),
        (ledger.REVENUE_WITHDRAWAL_FEES, w.fee_musdt),
    ], idem_key=f"withdrawal:{w.id}:sent:{txid}", ref=f"withdrawal:{w.id}")


@dataclass(frozen=True)
class Spent:
    """What a settled transaction burned, from its solidified receipt."""

    trx_spent_sun: int
    energy_used: int
    block_time_ms: int | None


def _note_spent(conn: sqlite3.Connection, txid: str, spent: Spent | None) -> None:
    if spent is not None:
        conn.execute(
            "UPDATE withdrawal_txs SET trx_spent_sun = ?, energy_used = ?, block_time_ms = ?"
            " WHERE txid = ?",
            (spent.trx_spent_sun, spent.energy_used, spent.block_time_ms, txid))


def confirm_tx(conn: sqlite3.Connection, withdrawal_id: int, txid: str, block_number: int,
               at_ms: int, spent: Spent | None = None) -> bool:
    """A solidified SUCCESS receipt paying the net to the address: the withdrawal is done
    (and what its transaction burned is kept for the cost report)."""
    w = wd.require(conn, withdrawal_id)
    if w.txid != txid or w.status not in IN_FLIGHT:
        return False
    _note_spent(conn, txid, spent)
    conn.execute(
        "UPDATE withdrawals SET status = 'confirmed', wait_reason = NULL, block_number = ?,"
        " confirmed_at_ms = ?, updated_at_ms = ? WHERE id = ?",
        (block_number, at_ms, at_ms, w.id))
    conn.execute(
        "UPDATE withdrawal_txs SET outcome = 'confirmed', result = 'SUCCESS',"
        " finished_at_ms = ? WHERE txid = ?", (at_ms, txid))
    post_sent_tx(conn, w, txid)
    emit_tx(conn, event_types.WITHDRAWAL_CONFIRMED, w.id, at_ms, block_number=block_number)
    return True


def fail_tx(conn: sqlite3.Connection, withdrawal_id: int, txid: str, result: str,
            reason: str, at_ms: int, spent: Spent | None = None) -> bool:
    """The transaction failed on chain (final): `failed`, tokens stay in clearing until the
    operator retries or returns them. A failure burns TRX too: kept like a success's."""
    w = wd.require(conn, withdrawal_id)
    if w.txid != txid or w.status not in IN_FLIGHT:
        return False
    _note_spent(conn, txid, spent)
    conn.execute(
        "UPDATE withdrawals SET status = 'failed', failure_reason = ?, wait_reason = NULL,"
        " updated_at_ms = ? WHERE id = ?", (reason, at_ms, w.id))
    conn.execute(
        "UPDATE withdrawal_txs SET outcome = 'failed', result = ?, finished_at_ms = ?"
        " WHERE txid = ?", (result, at_ms, txid))
    emit_tx(conn, event_types.WITHDRAWAL_FAILED, w.id, at_ms, result=result, reason=reason)
    return True


def set_dead_after_tx(conn: sqlite3.Connection, txid: str, block_number: int) -> None:
    """The first block made after the transaction's expiration (with margin): once the
    solidified chain passes it without the transaction, it can never land."""
    conn.execute(
        "UPDATE withdrawal_txs SET dead_after_block = ? WHERE txid = ?"
        " AND dead_after_block IS NULL", (block_number, txid))


def expire_tx(conn: sqlite3.Connection, withdrawal_id: int, txid: str, at_ms: int) -> bool:
    """Proven dead: past its expiration and absent from a solidified chain that has moved
    past it, so it can never land. Only now may a new transaction be made: the withdrawal
    is queued again (never refunded by this)."""
    w = wd.require(conn, withdrawal_id)
    if w.txid != txid or w.status not in IN_FLIGHT:
        return False
    conn.execute(
        "UPDATE withdrawal_txs SET outcome = 'expired', finished_at_ms = ? WHERE txid = ?",
        (at_ms, txid))
    conn.execute(
        "UPDATE withdrawals SET status = 'queued', txid = NULL, updated_at_ms = ?,"
        " wait_reason = ? WHERE id = ?",
        (at_ms, f"transaction {txid} expired without reaching the chain; a new one is made",
         w.id))
    return True
