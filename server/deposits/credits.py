"""Recording USDT Transfer logs to the deposit address and crediting each exactly once: by a
claim, by the watcher (a whole block with its cursor), or by an operator's assignment of an
unmatched transfer. Every function ending in `_tx` runs inside `Database.tx`.

Exactly once: `deposits` is UNIQUE on (txid, log_index), and the row is written in the same
SQLite transaction as the ledger posting (idempotency key `deposit:<txid>:<log_index>`) and
the top-up bonus, and its event (`deposit.credited`; `deposit.unmatched` for one that
matches no intent) too. A transfer that matches no intent is recorded `unmatched` for the operator.
The watcher's cursor (`chain_cursor`) moves in the transaction that records its block, so no
block is skipped and none is recorded twice.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from meterchat.chain.gateway import TransferLog
from meterchat.core import audit
from meterchat.core.db import now_ms
from meterchat.core.errors import NotFound, Unprocessable
from meterchat.core.units import musdt_to_usdt_str
from meterchat.deposits import intents
from meterchat.deposits import store as deposits
from meterchat.deposits.rules import AlreadyCredited, match_intent
from meterchat.economy import bonuses
from meterchat.events import outbox as events
from meterchat.events import rules as event_types
from meterchat.money import ledger

WATCHER_CURSOR = "deposits"


@dataclass(frozen=True)
class Recorded:
    """A deposits row after recording a transfer; `fresh` when this call wrote it."""

    id: int
    txid: str
    log_index: int
    status: str
    user_id: int | None
    amount_musdt: int
    fresh: bool

    @classmethod
    def of(cls, d: deposits.Deposit, fresh: bool) -> Recorded:
        return cls(id=d.id, txid=d.txid, log_index=d.log_index, status=d.status,
                   user_id=d.user_id, amount_musdt=d.amount_musdt, fresh=fresh)


def credit_tx(conn: sqlite3.Connection, t: TransferLog, user_id: int) -> int:
    """The ledger posting of one transfer to a user, and its top-up bonus; the ledger
    transaction's id."""
    result = ledger.transfer(
        conn, ledger.CHAIN_DEPOSITS, ledger.user_account(user_id), t.amount, "deposit",
        idem_key=f"deposit:{t.txid}:{t.log_index}", ref=f"{t.txid}:{t.log_index}",
    )
    # A top-up bonus (tiers, promotions) in the same database transaction as the credit.
    bonuses.grant_deposit_bonus_tx(conn, user_id, t.amount, f"{t.txid}:{t.log_index}",
                                   now_ms())
    return result.tx_id


def _event_data(deposit_id: int, t: TransferLog, block_number: int) -> dict[str, object]:
    """What a deposit event tells: the transfer, never anything secret."""
    return {"deposit_id": str(deposit_id), "txid": t.txid, "log_index": t.log_index,
            "amount_usdt": musdt_to_usdt_str(t.amount), "from_address": t.from_address,
            "to_address": t.to_address, "block_number": block_number}


def record_transfer_tx(conn: sqlite3.Connection, t: TransferLog, block_number: int,
                       block_time_ms: int, source: str, at_ms: int) -> Recorded:
    """Record one Transfer log to the deposit address, crediting the intent it matches.
    Idempotent: a (txid, log_index) already recorded is returned as it is."""
    seen = deposits.at_log(conn, t.txid, t.log_index)
    if seen is not None:
        return Recorded.of(seen, False)
    intent = match_intent(intents.candidates(conn, t), t, block_time_ms)
    deposit_id: int = conn.execute(
        "INSERT INTO deposits (txid, log_index, block_number, block_time_ms, from_address,"
        " to_address, contract, amount_musdt, status, source, recorded_at_ms)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'unmatched', ?, ?) RETURNING id",
        (t.txid, t.log_index, block_number, block_time_ms, t.from_address, t.to_address,
         t.contract, t.amount, source, at_ms),
    ).fetchone()["id"]
    conn.execute("DELETE FROM deposit_claims WHERE txid = ?", (t.txid,))
    if intent is None:
        events.emit_tx(conn, event_types.DEPOSIT_UNMATCHED, {
            **_event_data(deposit_id, t, block_number), "source": source}, at_ms)
        return Recorded(id=deposit_id, txid=t.txid, log_index=t.log_index, status="unmatched",
                        user_id=None, amount_musdt=t.amount, fresh=True)
    tx_id = credit_tx(conn, t, intent.user_id)
    conn.execute(
        "UPDATE deposits SET status = 'credited', user_id = ?, intent_id = ?, ledger_tx_id = ?,"
        " credited_at_ms = ? WHERE id = ?",
        (intent.user_id, intent.id, tx_id, at_ms, deposit_id),
    )
    intents.mark_paid_tx(conn, intent.id, deposit_id)
    events.emit_tx(conn, event_types.DEPOSIT_CREDITED, {
        **_event_data(deposit_id, t, block_number), "user_id": str(intent.user_id),
        "source": source}, at_ms)
    return Recorded(id=deposit_id, txid=t.txid, log_index=t.log_index, status="credited",
                    user_id=intent.user_id, amount_musdt=t.amount, fresh=True)


def record_block_tx(conn: sqlite3.Connection, block_number: int, block_time_ms: int | None,
                    transfers: tuple[TransferLog, ...], at_ms: int) -> list[Recorded]:
    """Record a whole solidified block and move the watcher's cursor to it, in one
    transaction: the cursor never passes a block that was not recorded whole."""
    at = cursor(conn)
    if at is not None and at >= block_number:
        return []  # recorded before (another pass got here first)
    out = [
        record_transfer_tx(conn, t, block_number, block_time_ms or at_ms, "watcher", at_ms)
        for t in transfers
    ]
    set_cursor_tx(conn, block_number, at_ms)
    return out


def set_cursor_tx(conn: sqlite3.Connection, block_number: int, at_ms: int) -> None:
    conn.execute(
        "INSERT INTO chain_cursor (name, block_number, updated_at_ms) VALUES (?, ?, ?)"
        " ON CONFLICT (name) DO UPDATE SET block_number = excluded.block_number,"
        " updated_at_ms = excluded.updated_at_ms",
        (WATCHER_CURSOR, block_number, at_ms),
    )


def cursor(conn: sqlite3.Connection) -> int | None:
    """The last solidified block the watcher recorded whole (None before its first pass)."""
    row = conn.execute("SELECT block_number FROM chain_cursor WHERE name = ?",
                       (WATCHER_CURSOR,)).fetchone()
    return row["block_number"] if row else None


def recorded_of_txid(conn: sqlite3.Connection, txid: str) -> list[Recorded]:
    return [Recorded.of(d, False) for d in deposits.of_txid(conn, txid)]


def note_claim_tx(conn: sqlite3.Connection, txid: str, user_id: int, at_ms: int) -> None:
    """A user claimed a TXID that is not final yet (shown as confirming until recorded)."""
    conn.execute("INSERT OR IGNORE INTO deposit_claims (txid, user_id, claimed_at_ms)"
                 " VALUES (?, ?, ?)", (txid, user_id, at_ms))


def assign_tx(conn: sqlite3.Connection, txid: str, log_index: int | None, user_id: int,
              admin_id: int, at_ms: int) -> deposits.Deposit:
    """An operator credits an unmatched transfer to a user; the deposit as it now is."""
    rows = deposits.of_txid(conn, txid)
    if log_index is not None:
        rows = [d for d in rows if d.log_index == log_index]
    if not rows:
        raise NotFound("no recorded deposit with this TXID", "deposit_not_found")
    unmatched = [d for d in rows if d.status == "unmatched"]
    if not unmatched:
        raise AlreadyCredited("this transfer is already credited")
    if len(unmatched) > 1:
        raise Unprocessable("this transaction has several unmatched transfers; give log_index",
                            "log_index_required")
    d = unmatched[0]
    if conn.execute("SELECT 1 FROM users WHERE id = ?", (user_id,)).fetchone() is None:
        raise NotFound("no such user", "user_not_found")
    t = TransferLog(txid=txid, log_index=d.log_index, contract=d.contract,
                    from_address=d.from_address, to_address=d.to_address,
                    amount=d.amount_musdt)
    tx_id = credit_tx(conn, t, user_id)
    conn.execute(
        "UPDATE deposits SET status = 'credited', user_id = ?, ledger_tx_id = ?,"
        " credited_at_ms = ?, source = 'operator' WHERE id = ?",
        (user_id, tx_id, at_ms, d.id),
    )
    events.emit_tx(conn, event_types.DEPOSIT_CREDITED, {
        **_event_data(d.id, t, d.block_number), "user_id": str(user_id),
        "source": "operator"}, at_ms)
    audit.record(conn, admin_id, "deposit.assign", f"{txid}:{d.log_index}", None, at_ms,
                 user_id=user_id, amount_musdt=d.amount_musdt)
    credited = deposits.deposit(conn, d.id)
    assert credited is not None  # updated above, in this transaction
    return credited
