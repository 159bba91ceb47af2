"""Reading recorded deposits: the rows of `deposits` (one per USDT Transfer log to the deposit
address, credited or unmatched) as `Deposit`, read by name, and the claims still waiting for
their transaction to become final (`deposit_claims`). credits.py writes both tables.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True)
class Deposit:
    id: int
    txid: str
    log_index: int
    block_number: int
    block_time_ms: int
    from_address: str
    to_address: str
    contract: str
    amount_musdt: int
    status: str  # credited | unmatched
    user_id: int | None
    intent_id: int | None
    source: str  # claim | watcher | operator
    recorded_at_ms: int
    credited_at_ms: int | None


@dataclass(frozen=True)
class PendingClaim:
    """A TXID a user claimed whose transaction is not final yet."""

    txid: str
    claimed_at_ms: int


_COLUMNS = ("id, txid, log_index, block_number, block_time_ms, from_address, to_address,"
            " contract, amount_musdt, status, user_id, intent_id, source, recorded_at_ms,"
            " credited_at_ms")


def deposit_from_row(row: sqlite3.Row) -> Deposit:
    return Deposit(
        id=row["id"], txid=row["txid"], log_index=row["log_index"],
        block_number=row["block_number"], block_time_ms=row["block_time_ms"],
        from_address=row["from_address"], to_address=row["to_address"],
        contract=row["contract"], amount_musdt=row["amount_musdt"], status=row["status"],
        user_id=row["user_id"], intent_id=row["intent_id"], source=row["source"],
        recorded_at_ms=row["recorded_at_ms"], credited_at_ms=row["credited_at_ms"],
    )


def deposit(conn: sqlite3.Connection, deposit_id: int) -> Deposit | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM deposits WHERE id = ?",
                       (deposit_id,)).fetchone()
    return deposit_from_row(row) if row else None


def at_log(conn: sqlite3.Connection, txid: str, log_index: int) -> Deposit | None:
    """The deposit recorded for one Transfer log, if any."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM deposits WHERE txid = ? AND log_index = ?",
                       (txid, log_index)).fetchone()
    return deposit_from_row(row) if row else None


def of_txid(conn: sqlite3.Connection, txid: str) -> list[Deposit]:
    """The transfers of one transaction, by log index."""
    return [deposit_from_row(r) for r in conn.execute(
        f"SELECT {_COLUMNS} FROM deposits WHERE txid = ? ORDER BY log_index", (txid,))]


def of_user(conn: sqlite3.Connection, user_id: int, limit: int = 200) -> list[Deposit]:
    """A user's credited deposits, newest first."""
    return [deposit_from_row(r) for r in conn.execute(
        f"SELECT {_COLUMNS} FROM deposits WHERE user_id = ? ORDER BY id DESC LIMIT ?",
        (user_id, limit))]


def listed(conn: sqlite3.Connection, status: str | None, limit: int = 500) -> list[Deposit]:
    """Every deposit (or those of one status), newest first."""
    if status is None:
        rows = conn.execute(f"SELECT {_COLUMNS} FROM deposits ORDER BY id DESC LIMIT ?",
                            (limit,))
    else:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM deposits WHERE status = ? ORDER BY id DESC LIMIT ?",
            (status, limit))
    return [deposit_from_row(r) for r in rows]


def unmatched_musdt(conn: sqlite3.Connection) -> int:
    """µUSDT of every transfer that matched no intent and waits for the operator."""
    total: int = conn.execute(
        "SELECT COALESCE(SUM(amount_musdt), 0) AS total FROM deposits"
        " WHERE status = 'unmatched'").fetchone()["total"]
    return total


def pending_claims(conn: sqlite3.Connection, user_id: int,
                   limit: int = 50) -> list[PendingClaim]:
    """A user's claims still waiting for their transaction, newest first."""
    return [PendingClaim(txid=r["txid"], claimed_at_ms=r["claimed_at_ms"]) for r in conn.execute(
        "SELECT txid, claimed_at_ms FROM deposit_claims WHERE user_id = ?"
        " ORDER BY claimed_at_ms DESC LIMIT ?", (user_id, limit))]
