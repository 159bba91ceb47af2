"""Recording USDT Transfer logs to personal deposit addresses and crediting them to the
address's owner exactly once (deposits.mode = "address_per_user"). Every function ending in
`_tx` runs inside `Database.tx`.

Exactly once: `address_transfers` is UNIQUE on (txid, log_index). A transfer is credited in
the transaction that records it when the address's uncredited total (it and the smaller
ones before it) reaches deposits.min_usdt: one `deposits` row for the sum, named by the
transfer that completed it (its TXID and log index: the ledger's idempotency key
`deposit:<txid>:<log_index>`, the bonus tiers on the sum), and every part points at it.
Below the minimum a transfer is kept, uncredited, until a later one completes the sum.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from meterchat.chain.gateway import TransferLog
from meterchat.deposits import credits
from meterchat.deposits.addresses import PersonalAddress


@dataclass(frozen=True)
class PersonalRecorded:
    """A transfer to a personal address after recording it; `deposit_id` is the credited
    deposit it is part of (None while below the minimum), `fresh` when this call wrote it."""

    txid: str
    log_index: int
    user_id: int
    amount_musdt: int
    deposit_id: int | None
    credited_musdt: int  # the sum credited by this call (0 when none)
    pending_musdt: int  # the address's uncredited total after this call
    fresh: bool

    @property
    def status(self) -> str:
        return "credited" if self.deposit_id is not None else "below_minimum"


def pending_musdt(conn: sqlite3.Connection, address: str) -> int:
    """µUSDT received at an address and not credited yet (below the minimum)."""
    total: int = conn.execute(
        "SELECT COALESCE(SUM(amount_musdt), 0) AS total FROM address_transfers"
        " WHERE address = ? AND deposit_id IS NULL", (address,)).fetchone()["total"]
    return total


def record_personal_tx(conn: sqlite3.Connection, t: TransferLog, owner: PersonalAddress,
                       block_number: int, block_time_ms: int, source: str, at_ms: int,
                       min_musdt: int) -> PersonalRecorded:
    """Record one Transfer log to `owner`'s address; credit the uncredited total when it
    reaches `min_musdt`. Idempotent per (txid, log_index)."""
    seen = conn.execute("SELECT deposit_id FROM address_transfers WHERE txid = ?"
                        " AND log_index = ?", (t.txid, t.log_index)).fetchone()
    if seen is not None:
        return PersonalRecorded(t.txid, t.log_index, owner.user_id, t.amount,
                                seen["deposit_id"], 0, pending_musdt(conn, owner.address),
                                False)
    conn.execute(
        "INSERT INTO address_transfers (txid, log_index, block_number, block_time_ms,"
        " from_address, address, user_id, amount_musdt, source, recorded_at_ms)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (t.txid, t.log_index, block_number, block_time_ms, t.from_address, owner.address,
         owner.user_id, t.amount, source, at_ms))
    conn.execute("DELETE FROM deposit_claims WHERE txid = ?", (t.txid,))
    total = pending_musdt(conn, owner.address)
    if total < min_musdt:
        return PersonalRecorded(t.txid, t.log_index, owner.user_id, t.amount, None, 0, total,
                                True)
    whole = TransferLog(txid=t.txid, log_index=t.log_index, contract=t.contract,
                        from_address=t.from_address, to_address=owner.address, amount=total)
    tx_id = credits.credit_tx(conn, whole, owner.user_id)
    deposit_id: int = conn.execute(
        "INSERT INTO deposits (txid, log_index, block_number, block_time_ms, from_address,"
        " to_address, contract, amount_musdt, status, user_id, ledger_tx_id, source,"
        " recorded_at_ms, credited_at_ms)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'credited', ?, ?, ?, ?, ?) RETURNING id",
        (t.txid, t.log_index, block_number, block_time_ms, t.from_address, owner.address,
         t.contract, total, owner.user_id, tx_id, source, at_ms, at_ms),
    ).fetchone()["id"]
    conn.execute("UPDATE address_transfers SET deposit_id = ? WHERE address = ?"
                 " AND deposit_id IS NULL", (deposit_id, owner.address))
    return PersonalRecorded(t.txid, t.log_index, owner.user_id, t.amount, deposit_id, total,
                            0, True)


def record_block_tx(conn: sqlite3.Connection, block_number: int, block_time_ms: int | None,
                    ours: tuple[TransferLog, ...],
                    personal: tuple[tuple[TransferLog, PersonalAddress], ...],
                    min_musdt: int, at_ms: int) -> tuple[list[credits.Recorded],
                                                         list[PersonalRecorded]]:
    """A solidified block's transfers to the shared deposit address and to personal ones,
    and the watcher's cursor, in one transaction (credits.record_block_tx moves it)."""
    at = credits.cursor(conn)
    if at is not None and at >= block_number:
        return [], []
    mine = [record_personal_tx(conn, t, owner, block_number, block_time_ms or at_ms,
                               "watcher", at_ms, min_musdt) for t, owner in personal]
    return credits.record_block_tx(conn, block_number, block_time_ms, ours, at_ms), mine


def owed_at_addresses(conn: sqlite3.Connection) -> list[tuple[str, int]]:
    """(address, µUSDT received and not yet swept away by a confirmed sweep) of every personal
    address that should hold USDT, for the sweeper and reconcile."""
    rows = conn.execute(
        "SELECT t.address, t.received - COALESCE(s.swept, 0) AS held FROM"
        " (SELECT address, SUM(amount_musdt) AS received FROM address_transfers"
        "  GROUP BY address) t LEFT JOIN"
        " (SELECT address, SUM(amount_musdt) AS swept FROM sweeps WHERE status = 'confirmed'"
        "  GROUP BY address) s ON s.address = t.address ORDER BY t.address").fetchall()
    return [(r["address"], r["held"]) for r in rows if r["held"] > 0]
