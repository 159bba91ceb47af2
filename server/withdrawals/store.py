"""Reading withdrawals: a `withdrawals` row (with its user's email) as `Withdrawal`, built by
column name, and its JSON view; the stored transactions of `withdrawal_txs`; what a user
asked to withdraw over a period. requests.py and sending.py write these tables.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from meterchat.core.errors import NotFound
from meterchat.core.units import iso_ms, musdt_to_tokens_str, musdt_to_usdt_str
from meterchat.withdrawals.rules import status_reason

View = dict[str, Any]

# The columns withdrawal_from_row reads, for a query over `withdrawals w JOIN users u`.
COLUMNS = ("w.id, w.user_id, w.idem_key, w.address, w.amount_musdt, w.fee_musdt, w.net_musdt,"
           " w.status, w.review_reason, w.wait_reason, w.failure_reason, w.txid,"
           " w.created_at_ms, w.updated_at_ms, w.confirmed_at_ms, w.block_number,"
           " u.email AS user_email")
FROM = "FROM withdrawals w JOIN users u ON u.id = w.user_id"


@dataclass(frozen=True)
class Withdrawal:
    id: int
    user_id: int
    idem_key: str
    address: str
    amount_musdt: int
    fee_musdt: int
    net_musdt: int
    status: str
    review_reason: str | None
    wait_reason: str | None
    failure_reason: str | None
    txid: str | None
    created_at_ms: int
    updated_at_ms: int
    confirmed_at_ms: int | None
    block_number: int | None
    user_email: str = ""

    def reason(self) -> str | None:
        """The one line a user or operator needs to see about where it stands."""
        return status_reason(self.status, self.review_reason, self.wait_reason,
                             self.failure_reason)

    def view(self, admin: bool = False) -> View:
        out: View = {
            "id": str(self.id),
            "status": self.status,
            "tokens": musdt_to_tokens_str(self.amount_musdt),
            "fee_usdt": musdt_to_usdt_str(self.fee_musdt),
            "net_usdt": musdt_to_usdt_str(self.net_musdt),
            "address": self.address,
            "txid": self.txid,
            "reason": self.reason(),
            "review_reason": self.review_reason,
            "created_at": iso_ms(self.created_at_ms),
            "updated_at": iso_ms(self.updated_at_ms),
            "confirmed_at": iso_ms(self.confirmed_at_ms),
            "block_number": self.block_number,
        }
        if admin:
            out["user_id"] = str(self.user_id)
            out["user_email"] = self.user_email
        return out


def withdrawal_from_row(row: sqlite3.Row) -> Withdrawal:
    return Withdrawal(
        id=row["id"], user_id=row["user_id"], idem_key=row["idem_key"],
        address=row["address"], amount_musdt=row["amount_musdt"], fee_musdt=row["fee_musdt"],
        net_musdt=row["net_musdt"], status=row["status"], review_reason=row["review_reason"],
        wait_reason=row["wait_reason"], failure_reason=row["failure_reason"],
        txid=row["txid"], created_at_ms=row["created_at_ms"],
        updated_at_ms=row["updated_at_ms"], confirmed_at_ms=row["confirmed_at_ms"],
        block_number=row["block_number"], user_email=row["user_email"],
    )


def select(where: str) -> str:
    """A query of withdrawals (`w`) and their users (`u`) that withdrawal_from_row reads."""
    return f"SELECT {COLUMNS} {FROM} WHERE {where}"


def get(conn: sqlite3.Connection, withdrawal_id: int) -> Withdrawal | None:
    row = conn.execute(select("w.id = ?"), (withdrawal_id,)).fetchone()
    return withdrawal_from_row(row) if row else None


def require(conn: sqlite3.Connection, withdrawal_id: int) -> Withdrawal:
    """The withdrawal, or 404 `withdrawal_not_found`."""
    w = get(conn, withdrawal_id)
    if w is None:
        raise NotFound("no such withdrawal", "withdrawal_not_found")
    return w


def withdrawn_since(conn: sqlite3.Connection, user_id: int, since_ms: int) -> int:
    """µUSDT the user asked to withdraw since then, rejected ones not counted."""
    total: int = conn.execute(
        "SELECT COALESCE(SUM(amount_musdt), 0) AS total FROM withdrawals"
        " WHERE user_id = ? AND created_at_ms >= ? AND status <> 'rejected'",
        (user_id, since_ms),
    ).fetchone()["total"]
    return total


@dataclass(frozen=True)
class StoredTx:
    """A signed transaction kept for a withdrawal (`withdrawal_txs`)."""

    txid: str
    expiration_ms: int
    broadcasts: int


def pending_transaction(conn: sqlite3.Connection, withdrawal_id: int) -> StoredTx | None:
    """The withdrawal's stored transaction that is not known to be finished, if any (at most
    one: withdrawal_txs_one_pending)."""
    row = conn.execute(
        "SELECT txid, expiration_ms, broadcasts FROM withdrawal_txs"
        " WHERE withdrawal_id = ? AND outcome = 'pending'", (withdrawal_id,)).fetchone()
    if row is None:
        return None
    return StoredTx(txid=row["txid"], expiration_ms=row["expiration_ms"],
                    broadcasts=row["broadcasts"])


def transactions_of(conn: sqlite3.Connection, withdrawal_id: int) -> list[View]:
    """Every transaction made for a withdrawal, oldest first."""
    rows = conn.execute(
        "SELECT txid, expiration_ms, created_at_ms, broadcasts, last_broadcast_code, outcome,"
        " result FROM withdrawal_txs WHERE withdrawal_id = ? ORDER BY created_at_ms",
        (withdrawal_id,)).fetchall()
    return [{"txid": r["txid"], "expires_at": iso_ms(r["expiration_ms"]),
             "created_at": iso_ms(r["created_at_ms"]), "broadcasts": r["broadcasts"],
             "last_broadcast_code": r["last_broadcast_code"], "outcome": r["outcome"],
             "result": r["result"]} for r in rows]
