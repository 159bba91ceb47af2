"""Withdrawals: the rules of a request (address, amount, fees, review, role), the request
itself (tokens leave `available` for `clearing:withdrawals` in the same transaction that
records it), the operator's approve / reject, and the state changes the sender makes.

Money flow (µUSDT):
- request:   user:available -> clearing:withdrawals          (kind `withdrawal`)
- confirmed: clearing:withdrawals -> chain:withdrawals (net) + revenue:withdrawal_fees (fee)
- returned:  clearing:withdrawals -> user:available          (kind `withdrawal_return`)

Status: queued | review -> signed -> sent -> confirmed, or failed (on chain; the operator
retries -> queued, or rejects -> rejected, tokens returned). The functions ending in `_tx`
take a connection already inside a transaction (Database.tx) and do one state change each,
guarded by the status they expect, so a change that lost a race does nothing.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from meterchat.chain.address import is_valid_address
from meterchat.chain.gateway import SignedTransfer
from meterchat.core.config import WithdrawalsConfig
from meterchat.core.errors import BadRequest, Conflict, Forbidden, NotFound, Unprocessable
from meterchat.core.units import (
    AmountError,
    iso_ms,
    musdt_to_tokens_str,
    musdt_to_usdt_str,
    tokens_to_musdt,
)
from meterchat.economy import store as economy
from meterchat.money import ledger

STATUSES = ("queued", "review", "signed", "sent", "confirmed", "failed", "rejected")
IN_FLIGHT = ("signed", "sent")
DAY_MS = 86_400_000
MAX_IDEMPOTENCY_KEY_CHARS = 200
# Far below SQLite's integer range and any real balance; keeps sums of amounts exact.
MAX_WITHDRAWAL_MUSDT = 10**15

KIND_REQUEST = "withdrawal"
KIND_RETURN = "withdrawal_return"
KIND_SENT = "withdrawal_sent"

REVIEW_ABOVE_THRESHOLD = "above_review_threshold"
REVIEW_DAILY_LIMIT = "daily_limit"
REVIEW_ACCOUNT_BANNED = "account_banned"  # set by a ban (server/moderation.py)
# Set by a restore from backup (server/backup.py) on every withdrawal that was not final in
# the backup: it may have been paid on chain since, so only the operator moves it on.
REVIEW_RESTORED = "restored_from_backup"
NOT_FINAL = ("queued", "review", "signed", "sent", "failed")


# -- pure rules


def check_idempotency_key(value: str | None) -> str:
    if value is None or not value.strip():
        raise BadRequest("send an Idempotency-Key header (any unique string per withdrawal; "
                         "repeat it to retry safely)", "idempotency_key_required")
    key = value.strip()
    if len(key) > MAX_IDEMPOTENCY_KEY_CHARS or not key.isprintable() or not key.isascii():
        raise BadRequest(f"Idempotency-Key must be up to {MAX_IDEMPOTENCY_KEY_CHARS} printable "
                         "ASCII characters", "invalid_idempotency_key")
    return key


def check_address(value: Any, platform_addresses: frozenset[str] | set[str]) -> str:
    """A base58check TRON address (`T...`) that is not one of the platform's own."""
    if not isinstance(value, str):
        raise Unprocessable("address must be a TRON address (T..., 34 characters)",
                            "invalid_address")
    address = value.strip()
    if not is_valid_address(address):
        raise Unprocessable("address is not a valid TRON address: it has 34 characters, "
                            "starts with T and its checksum must match", "invalid_address")
    if address in platform_addresses:
        raise Unprocessable("address is one of the platform's own addresses; give your own "
                            "wallet's address", "platform_address")
    return address


def parse_tokens(value: Any) -> int:
    """The tokens asked for, in µUSDT: a decimal string with up to 4 decimals, > 0."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise Unprocessable('tokens must be a decimal string like "400"', "invalid_amount")
    try:
        amount = tokens_to_musdt(str(value).strip())
    except AmountError:
        raise Unprocessable('tokens must be a decimal string like "400" (up to 4 decimals)',
                            "invalid_amount") from None
    if amount <= 0:
        raise Unprocessable("tokens must be more than 0", "invalid_amount")
    if amount > MAX_WITHDRAWAL_MUSDT:
        raise Unprocessable("tokens is far more than any balance", "invalid_amount")
    return amount


def fee_musdt(cfg: WithdrawalsConfig) -> int:
    """The platform fee plus the network fee (the TRX burned for energy), per withdrawal."""
    return cfg.fee_musdt + cfg.network_fee_musdt


@dataclass(frozen=True)
class Quote:
    amount_musdt: int
    fee_musdt: int
    net_musdt: int


def quote(amount_musdt: int, cfg: WithdrawalsConfig) -> Quote:
    """Fees and the net that goes on chain; refuses amounts below the minimum or that the
    fees would eat whole. 400 tokens (4 USDT) -> 2.5 USDT with the default fees."""
    if amount_musdt < cfg.min_musdt:
        raise Unprocessable(
            f"the smallest withdrawal is {musdt_to_usdt_str(cfg.min_musdt)} USDT "
            f"({musdt_to_tokens_str(cfg.min_musdt)} tokens)", "below_minimum")
    fee = fee_musdt(cfg)
    net = amount_musdt - fee
    if net <= 0:
        raise Unprocessable(
            f"the fees of {musdt_to_usdt_str(fee)} USDT would take the whole amount",
            "below_minimum")
    return Quote(amount_musdt, fee, net)


def review_reason(amount_musdt: int, withdrawn_last_day_musdt: int,
                  cfg: WithdrawalsConfig) -> str | None:
    """Why a request waits for an operator, or None when the sender may take it."""
    if amount_musdt > cfg.manual_review_above_musdt:
        return REVIEW_ABOVE_THRESHOLD
    if withdrawn_last_day_musdt + amount_musdt > cfg.daily_limit_musdt:
        return REVIEW_DAILY_LIMIT
    return None


def check_role(role: str, cfg: WithdrawalsConfig) -> None:
    if role == "seller" or (role == "buyer" and cfg.buyer_withdrawals):
        return
    if role == "buyer":
        raise Forbidden("buyers cannot withdraw on this server; tokens are spent on calls",
                        "withdrawals_not_allowed")
    raise Forbidden("only sellers withdraw", "withdrawals_not_allowed")


# -- rows and views


_COLS = ("w.id, w.user_id, w.idem_key, w.address, w.amount_musdt, w.fee_musdt, w.net_musdt,"
         " w.status, w.review_reason, w.wait_reason, w.failure_reason, w.txid,"
         " w.created_at_ms, w.updated_at_ms, w.confirmed_at_ms, w.block_number, u.email")


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
        if self.status == "review":
            if self.review_reason == REVIEW_ACCOUNT_BANNED:
                return "the account was banned: withdrawals wait for the operator's review"
            if self.review_reason == REVIEW_DAILY_LIMIT:
                return "past the daily limit: an operator reviews it"
            if self.review_reason == REVIEW_RESTORED:
                return ("the server was restored from a backup taken before this withdrawal "
                        "was final: an operator checks the chain before it moves on")
            return "a large withdrawal: an operator reviews it"
        if self.status == "failed":
            return self.failure_reason
        if self.status in ("queued", "signed", "sent"):
            return self.wait_reason
        if self.status == "rejected":
            return self.failure_reason or "rejected by the operator; the tokens were returned"
        return None

    def view(self, admin: bool = False) -> dict:
        out = {
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


def _withdrawal(row: sqlite3.Row | tuple) -> Withdrawal:
    return Withdrawal(*row)


def _select(where: str) -> str:
    return f"SELECT {_COLS} FROM withdrawals w JOIN users u ON u.id = w.user_id WHERE {where}"


def get(conn: sqlite3.Connection, withdrawal_id: int) -> Withdrawal | None:
    row = conn.execute(_select("w.id = ?"), (withdrawal_id,)).fetchone()
    return _withdrawal(row) if row else None


def _require(conn: sqlite3.Connection, withdrawal_id: int) -> Withdrawal:
    w = get(conn, withdrawal_id)
    if w is None:
        raise NotFound("no such withdrawal", "withdrawal_not_found")
    return w


def user_withdrawals(conn: sqlite3.Connection, user_id: int, limit: int = 200) -> list[dict]:
    rows = conn.execute(_select("w.user_id = ?") + " ORDER BY w.id DESC LIMIT ?",
                        (user_id, limit)).fetchall()
    return [_withdrawal(r).view() for r in rows]


def admin_withdrawals(conn: sqlite3.Connection, status: str | None,
                      limit: int = 500) -> list[dict]:
    if status is None:
        rows = conn.execute(_select("1") + " ORDER BY w.id DESC LIMIT ?", (limit,)).fetchall()
    else:
        rows = conn.execute(_select("w.status = ?") + " ORDER BY w.id LIMIT ?",
                            (status, limit)).fetchall()
    return [_withdrawal(r).view(admin=True) for r in rows]


def withdrawn_since(conn: sqlite3.Connection, user_id: int, since_ms: int) -> int:
    """µUSDT the user asked to withdraw since then, rejected ones not counted."""
    return conn.execute(
        "SELECT COALESCE(SUM(amount_musdt), 0) FROM withdrawals"
        " WHERE user_id = ? AND created_at_ms >= ? AND status <> 'rejected'",
        (user_id, since_ms),
    ).fetchone()[0]


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
    row = conn.execute(_select("w.user_id = ? AND w.idem_key = ?"),
                       (user_id, idem_key)).fetchone()
    if row is not None:
        seen = _withdrawal(row)
        if seen.address != address or seen.amount_musdt != q.amount_musdt:
            raise Conflict("this Idempotency-Key was used for another withdrawal; use a new "
                           "key for a new withdrawal", "idempotency_key_reused")
        return Requested(seen, True)
    _check_not_blocked(conn, user_id)
    last_day = withdrawn_since(conn, user_id, at_ms - DAY_MS)
    reason = review_reason(q.amount_musdt, last_day, cfg)
    cur = conn.execute(
        "INSERT INTO withdrawals (user_id, idem_key, address, amount_musdt, fee_musdt,"
        " net_musdt, status, review_reason, created_at_ms, updated_at_ms)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (user_id, idem_key, address, q.amount_musdt, q.fee_musdt, q.net_musdt,
         "review" if reason else "queued", reason, at_ms, at_ms),
    )
    wid = cur.lastrowid
    economy.check_withdrawable(conn, user_id, q.amount_musdt)
    # Raises InsufficientFunds (402) when available is short; the insert rolls back with it.
    ledger.transfer(conn, ledger.user_account(user_id), ledger.CLEARING_WITHDRAWALS,
                    q.amount_musdt, KIND_REQUEST, idem_key=f"withdrawal:{wid}:request",
                    ref=f"withdrawal:{wid}")
    return Requested(_require(conn, wid), False)


def _check_not_blocked(conn: sqlite3.Connection, user_id: int) -> None:
    """A ban blocks withdrawals until the operator unbans (reviews) the user."""
    row = conn.execute("SELECT withdrawals_blocked FROM users WHERE id = ?",
                       (user_id,)).fetchone()
    if row and row[0]:
        raise Conflict("withdrawals of this account are blocked until an operator reviews it",
                       "withdrawals_blocked")


# -- the operator


def _audit(conn: sqlite3.Connection, actor_id: int | None, action: str, wid: int,
           detail: str, at_ms: int) -> None:
    conn.execute(
        "INSERT INTO audit_log (at_ms, actor_user_id, action, target, detail)"
        " VALUES (?, ?, ?, ?, ?)",
        (at_ms, actor_id, action, f"withdrawal:{wid}", detail),
    )


def approve_tx(conn: sqlite3.Connection, withdrawal_id: int, actor_id: int | None,
               at_ms: int) -> Withdrawal:
    """review -> queued (the sender takes it); failed -> queued (retry with a new
    transaction: the failed one is final on chain). queued stays queued."""
    w = _require(conn, withdrawal_id)
    if w.status == "queued":
        return w
    if w.status not in ("review", "failed"):
        raise Conflict(f"a withdrawal that is {w.status} cannot be approved",
                       "withdrawal_not_approvable")
    _check_not_blocked(conn, w.user_id)
    stored = pending_tx(conn, w.id)
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
        _audit(conn, actor_id, "withdrawal.approve", w.id,
               f"{w.net_musdt} µUSDT to {w.address}; follows its stored transaction "
               f"{stored.txid}", at_ms)
        return _require(conn, w.id)
    conn.execute(
        "UPDATE withdrawals SET status = 'queued', wait_reason = NULL, reviewed_by = ?,"
        " reviewed_at_ms = ?, updated_at_ms = ? WHERE id = ? AND status = ?",
        (actor_id, at_ms, at_ms, w.id, w.status),
    )
    _audit(conn, actor_id, "withdrawal.retry" if w.status == "failed" else "withdrawal.approve",
           w.id, f"{w.net_musdt} µUSDT to {w.address}", at_ms)
    return _require(conn, w.id)


def reject_tx(conn: sqlite3.Connection, withdrawal_id: int, actor_id: int | None,
              at_ms: int, reason: str | None = None) -> Withdrawal:
    """review / queued / failed -> rejected, and the tokens go back to the user's
    `available` in a new ledger transaction. Never for one whose transaction may still
    land (signed, sent)."""
    w = _require(conn, withdrawal_id)
    if w.status == "rejected":
        return w
    if w.status not in ("review", "queued", "failed"):
        raise Conflict(f"a withdrawal that is {w.status} cannot be rejected: its transaction "
                       "may still reach the chain", "withdrawal_not_rejectable")
    stored = pending_tx(conn, w.id)
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
    _audit(conn, actor_id, "withdrawal.reject", w.id, f"{w.amount_musdt} µUSDT returned", at_ms)
    return _require(conn, w.id)


@dataclass(frozen=True)
class StoredTx:
    txid: str
    expiration_ms: int
    broadcasts: int


def pending_tx(conn: sqlite3.Connection, withdrawal_id: int) -> StoredTx | None:
    """The withdrawal's stored transaction that is not known to be finished, if any (at most
    one: withdrawal_txs_one_pending)."""
    row = conn.execute(
        "SELECT txid, expiration_ms, broadcasts FROM withdrawal_txs"
        " WHERE withdrawal_id = ? AND outcome = 'pending'", (withdrawal_id,)).fetchone()
    return StoredTx(*row) if row else None


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
    for wid, status, txid in rows:
        conn.execute(
            "UPDATE withdrawals SET status = 'review', review_reason = ?, wait_reason = NULL,"
            " updated_at_ms = ? WHERE id = ?", (REVIEW_RESTORED, at_ms, wid))
        _audit(conn, None, "withdrawal.hold", wid,
               f"restored from {source}; it was {status}"
               + (f" with transaction {txid}" if txid else ""), at_ms)
    conn.execute("DELETE FROM backup_marker")
    return [r[0] for r in rows]


def hold_if_restored_tx(conn: sqlite3.Connection, at_ms: int) -> list[int]:
    """On start-up: a database that carries the marker `meterchat backup` writes into its
    copies is a restored backup (put back with cp, not `meterchat restore`): hold as above."""
    row = conn.execute("SELECT taken_at_ms FROM backup_marker WHERE id = 1").fetchone()
    if row is None:
        return []
    return hold_restored_tx(conn, at_ms, f"a backup taken {iso_ms(row[0])}")


def confirm_paid_by_tx(conn: sqlite3.Connection, withdrawal_id: int, txid: str,
                       actor_id: int | None, at_ms: int, expiry_margin_ms: int) -> Withdrawal:
    """The operator found the on-chain transfer that paid a withdrawal in review (one paid
    after the backup a restored database came from): record it as confirmed by that
    transfer. Only a USDT transfer out of the hot wallet the watcher recorded from a
    solidified block, paying exactly the net to the address, and used by no other
    withdrawal. A stored transaction of this withdrawal that is not that transfer must be
    past its expiration (it can then never land) and is marked expired."""
    w = _require(conn, withdrawal_id)
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
    other = conn.execute(
        "SELECT id FROM withdrawals WHERE txid = ? AND id <> ? AND status = 'confirmed'"
        " UNION SELECT withdrawal_id FROM withdrawal_txs WHERE txid = ? AND withdrawal_id <> ?",
        (txid, w.id, txid, w.id)).fetchone()
    if other is not None:
        raise Conflict(f"transaction {txid} belongs to withdrawal {other[0]}",
                       "transfer_already_matched")
    stored = pending_tx(conn, w.id)
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
        (txid, row[0], at_ms, actor_id, at_ms, at_ms, w.id))
    ledger.post(conn, KIND_SENT, [
        (ledger.CLEARING_WITHDRAWALS, -w.amount_musdt),
        (ledger.CHAIN_WITHDRAWALS, w.net_musdt),
        (ledger.REVENUE_WITHDRAWAL_FEES, w.fee_musdt),
    ], idem_key=f"withdrawal:{w.id}:sent:{txid}", ref=f"withdrawal:{w.id}")
    _audit(conn, actor_id, "withdrawal.confirm", w.id,
           f"paid on chain by {txid} (block {row[0]}): {w.net_musdt} µUSDT to {w.address}",
           at_ms)
    return _require(conn, w.id)


# -- the sender's state changes


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
        f"SELECT {_COLS}, t.signed_json, t.expiration_ms, t.fee_limit_sun, t.dead_after_block"
        " FROM withdrawals w JOIN users u ON u.id = w.user_id"
        " JOIN withdrawal_txs t ON t.txid = w.txid"
        " WHERE w.status IN ('signed', 'sent') ORDER BY w.id"
    ).fetchall()
    n = len(_COLS.split(","))
    return [InFlight(_withdrawal(r[:n]), *r[n:]) for r in rows]


def queued(conn: sqlite3.Connection, limit: int = 100) -> list[Withdrawal]:
    rows = conn.execute(_select("w.status = 'queued' AND u.withdrawals_blocked = 0")
                        + " ORDER BY w.id LIMIT ?",
                        (limit,)).fetchall()
    return [_withdrawal(r) for r in rows]


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


def confirm_tx(conn: sqlite3.Connection, withdrawal_id: int, txid: str, block_number: int,
               at_ms: int) -> bool:
    """A solidified SUCCESS receipt paying the net to the address: the withdrawal is done.
    The tokens leave clearing: the net to chain:withdrawals, the fees to revenue."""
    w = _require(conn, withdrawal_id)
    if w.txid != txid or w.status not in IN_FLIGHT:
        return False
    conn.execute(
        "UPDATE withdrawals SET status = 'confirmed', wait_reason = NULL, block_number = ?,"
        " confirmed_at_ms = ?, updated_at_ms = ? WHERE id = ?",
        (block_number, at_ms, at_ms, w.id))
    conn.execute(
        "UPDATE withdrawal_txs SET outcome = 'confirmed', result = 'SUCCESS',"
        " finished_at_ms = ? WHERE txid = ?", (at_ms, txid))
    ledger.post(conn, KIND_SENT, [
        (ledger.CLEARING_WITHDRAWALS, -w.amount_musdt),
        (ledger.CHAIN_WITHDRAWALS, w.net_musdt),
        (ledger.REVENUE_WITHDRAWAL_FEES, w.fee_musdt),
    ], idem_key=f"withdrawal:{w.id}:sent:{txid}", ref=f"withdrawal:{w.id}")
    return True


def fail_tx(conn: sqlite3.Connection, withdrawal_id: int, txid: str, result: str,
            reason: str, at_ms: int) -> bool:
    """The transaction failed on chain (final): `failed`, tokens stay in clearing until the
    operator retries or returns them."""
    w = _require(conn, withdrawal_id)
    if w.txid != txid or w.status not in IN_FLIGHT:
        return False
    conn.execute(
        "UPDATE withdrawals SET status = 'failed', failure_reason = ?, wait_reason = NULL,"
        " updated_at_ms = ? WHERE id = ?", (reason, at_ms, w.id))
    conn.execute(
        "UPDATE withdrawal_txs SET outcome = 'failed', result = ?, finished_at_ms = ?"
        " WHERE txid = ?", (result, at_ms, txid))
    return True


def set_dead_after_tx(conn: sqlite3.Connection, txid: str, block_number: int) -> None:
    conn.execute(
        "UPDATE withdrawal_txs SET dead_after_block = ? WHERE txid = ?"
        " AND dead_after_block IS NULL", (block_number, txid))


def expire_tx(conn: sqlite3.Connection, withdrawal_id: int, txid: str, at_ms: int) -> bool:
    """Proven dead: past its expiration and absent from a solidified chain that has moved
    past it, so it can never land. Only now may a new transaction be made: the withdrawal
    is queued again (never refunded by this)."""
    w = _require(conn, withdrawal_id)
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


def transactions_of(conn: sqlite3.Connection, withdrawal_id: int) -> list[dict]:
    rows = conn.execute(
        "SELECT txid, expiration_ms, created_at_ms, broadcasts, last_broadcast_code, outcome,"
        " result FROM withdrawal_txs WHERE withdrawal_id = ? ORDER BY created_at_ms",
        (withdrawal_id,)).fetchall()
    return [{"txid": r[0], "expires_at": iso_ms(r[1]), "created_at": iso_ms(r[2]),
             "broadcasts": r[3], "last_broadcast_code": r[4], "outcome": r[5],
             "result": r[6]} for r in rows]
