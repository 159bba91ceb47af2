"""The storage of sweeps, the state machine the sweeper job (sweeper.py) drives, like the
withdrawal sender's:

    waiting (why, in wait_reason) -> funding (TRX top-up signed, stored BEFORE broadcast)
            -> funded (the top-up solidified SUCCESS) -> signed (the USDT transfer to the
            hot wallet stored BEFORE broadcast) -> sent -> confirmed (solidified SUCCESS
            paying the hot wallet) | failed (final on chain)
    a transaction proven expired (never in the solidified chain past its expiry) sends the
    sweep back one step (funding -> waiting, signed/sent -> funded) for a new one.

Every TRX burned is recorded on the sweep (sun). The ledger is unchanged by a sweep: the
tokens were credited at deposit; USDT moves between two addresses of the platform. Every
function ending in `_tx` runs inside `Database.tx`, guarded by the status (and TXID) it
expects, so a change that lost a race does nothing.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from meterchat.chain.gateway import SignedTransfer
from meterchat.core.units import iso_ms, musdt_to_usdt_str
from meterchat.deposits.sweep_rules import FINAL, trx

_COLUMNS = ("s.id, s.address, a.user_id, a.derivation_index, s.amount_musdt, s.status,"
            " s.wait_reason, s.failure_reason, s.topup_txid, s.sweep_txid, s.topup_sun,"
            " s.topup_fee_sun, s.sweep_fee_sun, s.trx_spent_sun, s.block_number,"
            " s.created_at_ms, s.updated_at_ms, s.confirmed_at_ms")
_FROM = " FROM sweeps s JOIN deposit_addresses a ON a.address = s.address"


@dataclass(frozen=True)
class Sweep:
    id: int
    address: str
    user_id: int
    index: int
    amount_musdt: int
    status: str
    wait_reason: str | None
    failure_reason: str | None
    topup_txid: str | None
    sweep_txid: str | None
    topup_sun: int
    topup_fee_sun: int
    sweep_fee_sun: int
    trx_spent_sun: int
    block_number: int | None
    created_at_ms: int
    updated_at_ms: int
    confirmed_at_ms: int | None

    @property
    def txid(self) -> str | None:
        """The transaction the sweep waits on now."""
        return self.topup_txid if self.status == "funding" else self.sweep_txid


def _sweep(row: sqlite3.Row) -> Sweep:
    return Sweep(
        id=row["id"], address=row["address"], user_id=row["user_id"],
        index=row["derivation_index"], amount_musdt=row["amount_musdt"], status=row["status"],
        wait_reason=row["wait_reason"], failure_reason=row["failure_reason"],
        topup_txid=row["topup_txid"], sweep_txid=row["sweep_txid"], topup_sun=row["topup_sun"],
        topup_fee_sun=row["topup_fee_sun"], sweep_fee_sun=row["sweep_fee_sun"],
        trx_spent_sun=row["trx_spent_sun"], block_number=row["block_number"],
        created_at_ms=row["created_at_ms"], updated_at_ms=row["updated_at_ms"],
        confirmed_at_ms=row["confirmed_at_ms"])


@dataclass(frozen=True)
class SweepTx:
    txid: str
    kind: str  # topup | sweep
    signed_json: str
    expiration_ms: int
    amount: int  # sun for a top-up, µUSDT for a sweep
    dead_after_block: int | None


def sweep(conn: sqlite3.Connection, sweep_id: int) -> Sweep | None:
    row = conn.execute(f"SELECT {_COLUMNS}{_FROM} WHERE s.id = ?", (sweep_id,)).fetchone()
    return _sweep(row) if row else None


def open_sweeps(conn: sqlite3.Connection) -> list[Sweep]:
    return [_sweep(r) for r in conn.execute(
        f"SELECT {_COLUMNS}{_FROM} WHERE s.status NOT IN {FINAL} ORDER BY s.id")]


def listed(conn: sqlite3.Connection, limit: int = 200) -> list[Sweep]:
    return [_sweep(r) for r in conn.execute(
        f"SELECT {_COLUMNS}{_FROM} ORDER BY s.id DESC LIMIT ?", (limit,))]


def stored_tx(conn: sqlite3.Connection, txid: str) -> SweepTx | None:
    row = conn.execute("SELECT txid, kind, signed_json, expiration_ms, amount,"
                       " dead_after_block FROM sweep_txs WHERE txid = ?", (txid,)).fetchone()
    if row is None:
        return None
    return SweepTx(txid=row["txid"], kind=row["kind"], signed_json=row["signed_json"],
                   expiration_ms=row["expiration_ms"], amount=row["amount"],
                   dead_after_block=row["dead_after_block"])


def failed_since(conn: sqlite3.Connection, address: str, since_ms: int) -> bool:
    """Did a sweep of this address fail on chain since then (it is not retried at once)?"""
    return conn.execute("SELECT 1 FROM sweeps WHERE address = ? AND status = 'failed'"
                        " AND updated_at_ms >= ?", (address, since_ms)).fetchone() is not None


def open_tx(conn: sqlite3.Connection, address: str, amount_musdt: int, at_ms: int) -> int:
    """A new sweep of an address (waiting); the one already open when there is one."""
    row = conn.execute(f"SELECT s.id FROM sweeps s WHERE s.address = ? AND s.status NOT IN"
                       f" {FINAL}", (address,)).fetchone()
    if row is not None:
        return int(row["id"])
    sweep_id: int = conn.execute(
        "INSERT INTO sweeps (address, amount_musdt, status, created_at_ms, updated_at_ms)"
        " VALUES (?, ?, 'waiting', ?, ?) RETURNING id",
        (address, amount_musdt, at_ms, at_ms)).fetchone()["id"]
    return sweep_id


def set_wait_reason_tx(conn: sqlite3.Connection, sweep_id: int, reason: str | None,
                       at_ms: int) -> None:
    conn.execute("UPDATE sweeps SET wait_reason = ?, updated_at_ms = ? WHERE id = ?"
                 " AND wait_reason IS NOT ?", (reason, at_ms, sweep_id, reason))


def _store(conn: sqlite3.Connection, sweep_id: int, kind: str, signed: SignedTransfer,
           amount: int, at_ms: int) -> None:
    conn.execute(
        "INSERT INTO sweep_txs (txid, sweep_id, kind, signed_json, expiration_ms, amount,"
        " created_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (signed.txid, sweep_id, kind, signed.signed_json, signed.expiration_ms, amount, at_ms))


def store_topup_tx(conn: sqlite3.Connection, sweep_id: int, signed: SignedTransfer,
                   amount_sun: int, at_ms: int) -> bool:
    """waiting -> funding, the signed TRX top-up stored before any broadcast."""
    cur = conn.execute(
        "UPDATE sweeps SET status = 'funding', topup_txid = ?, topup_sun = ?,"
        " wait_reason = NULL, updated_at_ms = ? WHERE id = ? AND status = 'waiting'",
        (signed.txid, amount_sun, at_ms, sweep_id))
    if cur.rowcount != 1:
        return False
    _store(conn, sweep_id, "topup", signed, amount_sun, at_ms)
    return True


def store_sweep_tx(conn: sqlite3.Connection, sweep_id: int, signed: SignedTransfer,
                   amount_musdt: int, at_ms: int) -> bool:
    """waiting (the address had the TRX) or funded -> signed, the USDT transfer stored before
    any broadcast."""
    cur = conn.execute(
        "UPDATE sweeps SET status = 'signed', sweep_txid = ?, amount_musdt = ?,"
        " wait_reason = NULL, updated_at_ms = ? WHERE id = ? AND status IN ('waiting',"
        " 'funded')", (signed.txid, amount_musdt, at_ms, sweep_id))
    if cur.rowcount != 1:
        return False
    _store(conn, sweep_id, "sweep", signed, amount_musdt, at_ms)
    return True


def note_broadcast_tx(conn: sqlite3.Connection, sweep_id: int, txid: str, code: str,
                      accepted: bool, reason: str | None, at_ms: int) -> None:
    conn.execute("UPDATE sweep_txs SET broadcasts = broadcasts + 1, last_broadcast_code = ?"
                 " WHERE txid = ?", (code, txid))
    if accepted:
        conn.execute("UPDATE sweeps SET status = 'sent', wait_reason = NULL, updated_at_ms = ?"
                     " WHERE id = ? AND sweep_txid = ? AND status = 'signed'",
                     (at_ms, sweep_id, txid))
    set_wait_reason_tx(conn, sweep_id, None if accepted else reason, at_ms)


def mark_in_block_tx(conn: sqlite3.Connection, sweep_id: int, txid: str, at_ms: int) -> None:
    """A `signed` sweep whose transaction is in a block was sent (its answer was lost)."""
    conn.execute("UPDATE sweeps SET status = 'sent', updated_at_ms = ? WHERE id = ?"
                 " AND sweep_txid = ? AND status = 'signed'", (at_ms, sweep_id, txid))


def settle_tx(conn: sqlite3.Connection, sweep_id: int, txid: str, ok: bool, result: str,
              fee_sun: int, block_number: int, reason: str | None, at_ms: int) -> bool:
    """A solidified receipt of the sweep's current transaction: its TRX burned recorded, and
    the sweep moved on (top-up ok -> funded, failed -> waiting; sweep ok -> confirmed,
    failed -> failed)."""
    t = stored_tx(conn, txid)
    s = sweep(conn, sweep_id)
    if t is None or s is None or s.txid != txid or s.status in FINAL:
        return False
    conn.execute("UPDATE sweep_txs SET outcome = ?, result = ?, fee_sun = ?,"
                 " finished_at_ms = ? WHERE txid = ?",
                 ("confirmed" if ok else "failed", result, fee_sun, at_ms, txid))
    if t.kind == "topup":
        conn.execute(
            "UPDATE sweeps SET status = ?, topup_fee_sun = topup_fee_sun + ?,"
            " trx_spent_sun = trx_spent_sun + ?, wait_reason = ?, updated_at_ms = ?,"
            " topup_txid = CASE WHEN ? THEN topup_txid END WHERE id = ?",
            ("funded" if ok else "waiting", fee_sun, fee_sun, reason, at_ms, ok, sweep_id))
        return True
    conn.execute(
        "UPDATE sweeps SET status = ?, sweep_fee_sun = sweep_fee_sun + ?,"
        " trx_spent_sun = trx_spent_sun + ?, failure_reason = ?, wait_reason = NULL,"
        " block_number = ?, confirmed_at_ms = CASE WHEN ? THEN ? END, updated_at_ms = ?"
        " WHERE id = ?",
        ("confirmed" if ok else "failed", fee_sun, fee_sun, reason, block_number, ok, at_ms,
         at_ms, sweep_id))
    return True


def set_dead_after_tx(conn: sqlite3.Connection, txid: str, block_number: int) -> None:
    conn.execute("UPDATE sweep_txs SET dead_after_block = ? WHERE txid = ?"
                 " AND dead_after_block IS NULL", (block_number, txid))


def expire_tx(conn: sqlite3.Connection, sweep_id: int, txid: str, at_ms: int) -> bool:
    """Proven dead (it can never land): the sweep goes back one step for a new transaction."""
    s = sweep(conn, sweep_id)
    if s is None or s.txid != txid or s.status in FINAL:
        return False
    conn.execute("UPDATE sweep_txs SET outcome = 'expired', finished_at_ms = ? WHERE txid = ?",
                 (at_ms, txid))
    back = "waiting" if s.status == "funding" else "funded"
    conn.execute(
        "UPDATE sweeps SET status = ?, topup_txid = CASE WHEN ? = 'waiting' THEN NULL"
        " ELSE topup_txid END, topup_sun = CASE WHEN ? = 'waiting' THEN 0 ELSE topup_sun END,"
        " sweep_txid = CASE WHEN ? = 'funded' THEN NULL ELSE sweep_txid END,"
        " wait_reason = ?, updated_at_ms = ? WHERE id = ?",
        (back, back, back, back,
         f"transaction {txid} expired without reaching the chain; a new one is made",
         at_ms, sweep_id))
    return True


def sweep_view(s: Sweep) -> dict[str, Any]:
    return {
        "id": str(s.id), "address": s.address, "user_id": str(s.user_id),
        "status": s.status, "usdt": musdt_to_usdt_str(s.amount_musdt),
        "wait_reason": s.wait_reason, "failure_reason": s.failure_reason,
        "topup_txid": s.topup_txid, "sweep_txid": s.sweep_txid,
        "topup_sun": s.topup_sun, "topup_trx": trx(s.topup_sun), "topup_fee_sun": s.topup_fee_sun,
        "sweep_fee_sun": s.sweep_fee_sun, "trx_spent_sun": s.trx_spent_sun,
        "trx_spent": trx(s.trx_spent_sun), "block": s.block_number,
        "created_at": iso_ms(s.created_at_ms), "updated_at": iso_ms(s.updated_at_ms),
        "confirmed_at": iso_ms(s.confirmed_at_ms),
    }


def admin_view(conn: sqlite3.Connection) -> dict[str, Any]:
    """GET /api/admin/sweeps: every sweep, newest first, and the totals."""
    totals = conn.execute(
        "SELECT COUNT(*) AS n, COALESCE(SUM(CASE WHEN status = 'confirmed' THEN amount_musdt"
        " END), 0) AS swept, COALESCE(SUM(trx_spent_sun), 0) AS spent,"
        " COALESCE(SUM(CASE WHEN status = 'waiting' THEN 1 END), 0) AS waiting FROM sweeps"
    ).fetchone()
    return {
        "sweeps": [sweep_view(s) for s in listed(conn)],
        "totals": {"sweeps": totals["n"], "waiting": totals["waiting"],
                   "usdt_swept": musdt_to_usdt_str(totals["swept"]),
                   "trx_spent_sun": totals["spent"], "trx_spent": trx(totals["spent"])},
    }
