"""Withdrawal requests and their review: a user's request (tokens leave `available` for
`clearing:withdrawals` in the same transaction that records it, once per Idempotency-Key),
the lists, the operator's approve / reject / confirm-by-transfer, and the hold of every
withdrawal that was not final in a restored backup. Operator actions are written to the
audit log in their transaction.

Every function ending in `_tx` runs inside `Database.tx` and does one state change, guarded
by the status it expects, so a change that lost a race does nothing.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from meterchat.core import audit
from meterchat.core.config import WithdrawalsConfig
from meterchat.core.errors import Conflict, Unprocessable
from meterchat.core.units import DAY_MS, iso_ms, musdt_to_usdt_str
from meterchat.economy import bonuses
from meterchat.events import rules as event_types
from meterchat.money import ledger
from meterchat.withdrawals import sending
from meterchat.withdrawals import store as wd
from meterchat.withdrawals.rules import (
    KIND_REQUEST,
    KIND_RETURN,
    NOT_FINAL,
    REVIEW_RESTORED,
    Quote,
    review_reason,
)
from meterchat.withdrawals.store import View, Withdrawal

# -- the lists


def user_withdrawals(conn: sqlite3.Connection, user_id: int, limit: int = 200) -> list[View]:
    rows = conn.execute(wd.select("w.user_id = ?") + " ORDER BY w.id DESC LIMIT ?",
                        (user_id, limit)).fetchall()
    return [wd.withdrawal_from_row(r).view() for r in rows]


def admin_withdrawals(conn: sqlite3.Connection, status: str | None,
                      limit: int = 500) -> list[View]:
    if status is None:
        rows = conn.execute(wd.select("1") + " ORDER BY w.id DESC LIMIT ?", (limit,)).fetchall()
    else:
        rows = conn.execute(wd.select("w.status = ?") + " ORDER BY w.id LIMIT ?",
                            (status, limit)).fetchall()
    return [wd.withdrawal_from_row(r).view(admin=True) for r in rows]


# -- the request


@dataclass(frozen=True)
class Requested:
    withdrawal: Withdrawal
    replayed: bool


def request_tx(conn: sqlite3.Connection, user_id: int, idem_key: str, address: str,
               q: Quote, cfg: WithdrawalsConfig, at_ms: int) -> Requested:
    """Record a withdrawal and move its tokens out of `available`, in one transaction, so
    concurrent requests can never overdraw. A seen Idempotency-Key returns the first request
    and moves nothing; the same key with other values is refused."""
    row = conn.execute(wd.select("w.user_id = ? AND w.idem_key = ?"),
                       (user_id, idem_key)).fetchone()
    if row is not None:
        seen = wd.withdrawal_from_row(row)
        if seen.address != address or seen.amount_musdt != q.amount_musdt:
            raise Conflict("this Idempotency-Key was used for another withdrawal; use a new "
                           "key for a new withdrawal", "idempotency_key_reused")
        return Requested(seen, True)
    _check_not_blocked(conn, user_id)
    last_day = wd.withdrawn_since(conn, user_id, at_ms - DAY_MS)
    reason = review_reason(q.amount_musdt, last_day, cfg)
    wid: int = conn.execute(
        "INSERT INTO withdrawals (user_id, idem_key, address, amount_musdt, fee_musdt,"
        " net_musdt, status, review_reason, created_at_ms, updated_at_ms)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (user_id, idem_key, address, q.amount_musdt, q.fee_musdt, q.net_musdt,
         "review" if reason else "queued", reason, at_ms, at_ms),
    ).fetchone()["id"]
    bonuses.check_withdrawable(conn, user_id, q.amount_musdt)
    # Raises InsufficientFunds (402) when available is short; the insert rolls back with it.
    ledger.transfer(conn, ledger.user_account(user_id), ledger.CLEARING_WITHDRAWALS,
                    q.amount_musdt, KIND_REQUEST, idem_key=f"withdrawal:{wid}:request",
                    ref=f"withdrawal:{wid}")
    if reason:
        sending.emit_tx(conn, event_types.WITHDRAWAL_REVIEW, wid, at_ms, reason=reason)
    return Requested(wd.require(conn, wid), False)


def _check_not_blocked(conn: sqlite3.Connection, user_id: int) -> None:
    """A ban blocks withdrawals until the operator unbans (reviews) the user."""
    row = conn.execute("SELECT withdrawals_blocked FROM users WHERE id = ?",
                       (user_id,)).fetchone()
    if row and row["withdrawals_blocked"]:
        raise Conflict("withdrawals of this account are blocked until an operator reviews it",
                       "withdrawals_blocked")


# -- the operator


def _audit_tx(conn: sqlite3.Connection, actor_id: int | None, action: str, wid: int,
              at_ms: int, **detail: object) -> None:
    audit.record(conn, actor_id, action, f"withdrawal:{wid}", None, at_ms, **detail)


def approve_tx(conn: sqlite3.Connection, withdrawal_id: int, actor_id: int | None,
               at_ms: int) -> Withdrawal:
    """review -> queued (the sender takes it); failed -> queued (retry with a new
    transaction: the failed one is final on chain). queued stays queued."""
    w = wd.require(conn, withdrawal_id)
    if w.status == "queued":
        return w
    if w.status not in ("review", "failed"):
        raise Conflict(f"a withdrawal that is {w.status} cannot be approved",
                       "withdrawal_not_approvable")
    _check_not_blocked(conn, w.user_id)
    stored = wd.pending_transaction(conn, w.id)
    if stored is not None:
        # Restored from a backup while signed or sent: its stored transaction may be on
        # chain or still land. Approval follows that transaction (confirmed when it lands;
        # a new one only once it is proven dead), never builds a second one beside it.
        conn.execute(
            "UPDATE withdrawals SET status = ?, txid = ?, wait_reason = NULL, reviewed_by = ?,"
            " reviewed_at_ms = ?, updated_at_ms = ? WHERE id = ? AND status = ?",
            ("sent" if stored.broadcasts else "signed", stored.txid, actor_id, at_ms, at_ms,
             w.id, w.status),
        )
        _audit_tx(conn, actor_id, "withdrawal.approve", w.id, at_ms, net_musdt=w.net_musdt,
                  address=w.address, follows_txid=stored.txid)
        return wd.require(conn, w.id)
    conn.execute(
        "UPDATE withdrawals SET status = 'queued', wait_reason = NULL, reviewed_by = ?,"
        " reviewed_at_ms = ?, updated_at_ms = ? WHERE id = ? AND status = ?",
        (actor_id, at_ms, at_ms, w.id, w.status),
    )
    _audit_tx(conn, actor_id,
              "withdrawal.retry" if w.status == "failed" else "withdrawal.approve",
              w.id, at_ms, net_musdt=w.net_musdt, address=w.address)
    return wd.require(conn, w.id)


def reject_tx(conn: sqlite3.Connection, withdrawal_id: int, actor_id: int | None,
              at_ms: int, reason: str | None = None) -> Withdrawal:
    """review / queued / failed -> rejected, and the tokens go back to the user's
    `available` in a new ledger transaction. Never for one whose transaction may still
    land (signed, sent)."""
    w = wd.require(conn, withdrawal_id)
    if w.status == "rejected":
        return w
    if w.status not in ("review", "queued", "failed"):
        raise Conflict(f"a withdrawal that is {w.status} cannot be rejected: its transaction "
                       "may still reach the chain", "withdrawal_not_rejectable")
    stored = wd.pending_transaction(conn, w.id)
    if stored is not None:
        raise Conflict(f"its stored transaction {stored.txid} may be on chain or still land "
                       "(it was restored from a backup): approve it to follow that "
                       "transaction to its end, or confirm it with the transfer that paid it",
                       "withdrawal_not_rejectable")
    text = reason or ("returned by the operator after the transfer failed on chain"
                      if w.status == "failed" else None)
    conn.execute(
        "UPDATE withdrawals SET status = 'rejected', failure_reason = COALESCE(?, failure_reason),"
        " reviewed_by = ?, reviewed_at_ms = ?, updated_at_ms = ? WHERE id = ? AND status = ?",
        (text, actor_id, at_ms, at_ms, w.id, w.status),
    )
    ledger.transfer(conn, ledger.CLEARING_WITHDRAWALS, ledger.user_account(w.user_id),
                    w.amount_musdt, KIND_RETURN, idem_key=f"withdrawal:{w.id}:return",
                    ref=f"withdrawal:{w.id}")
    _audit_tx(conn, actor_id, "withdrawal.reject", w.id, at_ms,
              returned_musdt=w.amount_musdt)
    return wd.require(conn, w.id)


def confirm_paid_by_tx(conn: sqlite3.Connection, withdrawal_id: int, txid: str,
                       actor_id: int | None, at_ms: int, expiry_margin_ms: int) -> Withdrawal:
    """The operator found the on-chain transfer that paid a withdrawal in review (one paid
    after the backup a restored database came from): record it as confirmed by that
    transfer. Only a USDT transfer out of the hot wallet the watcher recorded from a
    solidified block, paying exactly the net to the address, and used by no other
    withdrawal. A stored transaction of this withdrawal that is not that transfer must be
    past its expiration (it can then never land) and is marked expired."""
    w = wd.require(conn, withdrawal_id)
    if w.status == "confirmed" and w.txid == txid:
        return w
    if w.status != "review":
        raise Conflict(f"a withdrawal that is {w.status} cannot be confirmed by hand; only one "
                       "in review (e.g. restored from a backup)", "withdrawal_not_confirmable")
    row = conn.execute(
        "SELECT block_number FROM hot_wallet_transfers WHERE txid = ? AND to_address = ?"
        " AND amount_musdt = ? ORDER BY log_index LIMIT 1",
        (txid, w.address, w.net_musdt)).fetchone()
    if row is None:
        raise Unprocessable(
            f"no USDT transfer {txid} from the hot wallet paying {musdt_to_usdt_str(w.net_musdt)}"
            f" USDT to {w.address} was seen in a solidified block (the deposit watcher records"
            " them; `meterchat reconcile` lists those no withdrawal accounts for)",
            "transfer_not_found")
    block_number: int = row["block_number"]
    other = conn.execute(
        "SELECT id AS withdrawal_id FROM withdrawals WHERE txid = ? AND id <> ?"
        " AND status = 'confirmed'"
        " UNION SELECT withdrawal_id FROM withdrawal_txs WHERE txid = ? AND withdrawal_id <> ?",
        (txid, w.id, txid, w.id)).fetchone()
    if other is not None:
        raise Conflict(f"transaction {txid} belongs to withdrawal {other['withdrawal_id']}",
                       "transfer_already_matched")
    stored = wd.pending_transaction(conn, w.id)
    if stored is not None and stored.txid != txid:
        if at_ms < stored.expiration_ms + expiry_margin_ms:
            raise Conflict(f"its stored transaction {stored.txid} may still reach the chain "
                           f"until {iso_ms(stored.expiration_ms + expiry_margin_ms)}",
                           "transaction_may_land")
        conn.execute("UPDATE withdrawal_txs SET outcome = 'expired', finished_at_ms = ?"
                     " WHERE txid = ?", (at_ms, stored.txid))
    conn.execute(
        "UPDATE withdrawal_txs SET outcome = 'confirmed', result = 'SUCCESS',"
        " finished_at_ms = ? WHERE txid = ? AND withdrawal_id = ?", (at_ms, txid, w.id))
    conn.execute(
        "UPDATE withdrawals SET status = 'confirmed', txid = ?, wait_reason = NULL,"
        " block_number = ?, confirmed_at_ms = ?, reviewed_by = ?, reviewed_at_ms = ?,"
        " updated_at_ms = ? WHERE id = ? AND status = 'review'",
        (txid, block_number, at_ms, actor_id, at_ms, at_ms, w.id))
    sending.post_sent_tx(conn, w, txid)
    sending.emit_tx(conn, event_types.WITHDRAWAL_CONFIRMED, w.id, at_ms,
                    block_number=block_number)
    _audit_tx(conn, actor_id, "withdrawal.confirm", w.id, at_ms, txid=txid,
              block_number=block_number, net_musdt=w.net_musdt, address=w.address)
    return wd.require(conn, w.id)


# -- a restored backup


def hold_restored_tx(conn: sqlite3.Connection, at_ms: int, source: str) -> list[int]:
    """After a restore: every withdrawal that was not final in the backup (queued, review,
    signed, sent, failed) goes to `review` with reason `restored_from_backup`, because the
    chain may have paid it since the backup was taken. A signed or sent one keeps its txid
    and stored transaction (approval follows it; nothing is built beside it). Clears the
    backup marker. Returns the ids held."""
    rows = conn.execute(
        "SELECT id, status, txid FROM withdrawals WHERE status IN"
        f" ({', '.join('?' * len(NOT_FINAL))}) ORDER BY id", NOT_FINAL).fetchall()
    for r in rows:
        conn.execute(
            "UPDATE withdrawals SET status = 'review', review_reason = ?, wait_reason = NULL,"
            " updated_at_ms = ? WHERE id = ?", (REVIEW_RESTORED, at_ms, r["id"]))
        _audit_tx(conn, None, "withdrawal.hold", r["id"], at_ms, restored_from=source,
                  was=r["status"], txid=r["txid"])
        sending.emit_tx(conn, event_types.WITHDRAWAL_REVIEW, r["id"], at_ms,
                        reason=REVIEW_RESTORED)
    conn.execute("DELETE FROM backup_marker")
    return [r["id"] for r in rows]


def hold_if_restored_tx(conn: sqlite3.Connection, at_ms: int) -> list[int]:
    """On start-up: a database that carries the marker `meterchat backup` writes into its
    copies is a restored backup (put back with cp, not `meterchat restore`): hold as above."""
    row = conn.execute("SELECT taken_at_ms FROM backup_marker WHERE id = 1").fetchone()
    if row is None:
        return []
    return hold_restored_tx(conn, at_ms, f"a backup taken {iso_ms(row['taken_at_ms'])}")
