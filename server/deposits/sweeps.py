"""The storage of sweeps, the state machine the sweeper job (sweeper.py) drives, like the
withdrawal sender's:

    waiting (why, in wait_reason) -> funding (TRX top-up signed, stored BEFORE broadcast)
            -> funded (the top-up solidified SUCCESS) -> signed (the USDT transfer to the
            hot wallet stored BEFORE broadcast) -> sent -> confirmed (solidified SUCCESS
            paying the hot wallet) | failed (final on chain)
    a transaction proven expired (never in the solidified chain past its expiry) sends the
    sweep back one step (funding -> waiting, signed/sent -> funded) for a new one.

With energy_mode "delegate" (sweeps.energy, fixed when the sweep opens) the top-up only
activates the address or pays its bandwidth, and `delegation_status` moves beside the
status, each transaction stored BEFORE broadcast and confirmed on a solidified SUCCESS:

    funded -> delegating (DelegateResource of ENERGY from the hot wallet's stake) ->
            delegated (or straight there, nothing lent, when the address has the energy)
            -> the sweep is signed (signed -> sent -> confirmed | failed as above)
    confirmed | failed -> undelegating (UnDelegateResource) -> undelegated
    an expired delegation goes back to no delegation, an expired undelegation to delegated.

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
            " s.created_at_ms, s.updated_at_ms, s.confirmed_at_ms, s.energy_mode,"
            " s.delegation_status, s.delegate_txid, s.undelegate_txid, s.delegated_sun,"
            " s.delegation_fee_sun")
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
    energy_mode: str = "burn"  # burn | delegate
    delegation_status: str | None = None  # delegating | delegated | undelegating | undelegated
    delegate_txid: str | None = None
    undelegate_txid: str | None = None
    delegated_sun: int = 0
    delegation_fee_sun: int = 0

    @property
    def txid(self) -> str | None:
        """The transaction the sweep waits on now."""
        if self.status == "funding":
            return self.topup_txid
        if self.status == "funded" and self.delegation_status == "delegating":
            return self.delegate_txid
        if self.status in FINAL:
            return self.undelegate_txid if self.delegation_status == "undelegating" else None
        return self.sweep_txid

    @property
    def to_reclaim(self) -> bool:
        """Final, with energy still lent to its address (or being taken back)."""
        return self.status in FINAL and self.delegation_status in ("delegated", "undelegating")


def _sweep(row: sqlite3.Row) -> Sweep:
    return Sweep(
        id=row["id"], address=row["address"], user_id=row["user_id"],
        index=row["derivation_index"], amount_musdt=row["amount_musdt"], status=row["status"],
        wait_reason=row["wait_reason"], failure_reason=row["failure_reason"],
        topup_txid=row["topup_txid"], sweep_txid=row["sweep_txid"], topup_sun=row["topup_sun"],
        topup_fee_sun=row["topup_fee_sun"], sweep_fee_sun=row["sweep_fee_sun"],
        trx_spent_sun=row["trx_spent_sun"], block_number=row["block_number"],
        created_at_ms=row["created_at_ms"], updated_at_ms=row["updated_at_ms"],
        confirmed_at_ms=row["confirmed_at_ms"], energy_mode=row["energy_mode"],
        delegation_status=row["delegation_status"], delegate_txid=row["delegate_txid"],
        undelegate_txid=row["undelegate_txid"], delegated_sun=row["delegated_sun"],
        delegation_fee_sun=row["delegation_fee_sun"])


@dataclass(frozen=True)
class SweepTx:
    txid: str
    kind: str  # topup | sweep | delegate | undelegate
    signed_json: str
    expiration_ms: int
    amount: int  # sun for a top-up, µUSDT for a sweep, sun of stake for a (un)delegation
    dead_after_block: int | None


def sweep(conn: sqlite3.Connection, sweep_id: int) -> Sweep | None:
    row = conn.execute(f"SELECT {_COLUMNS}{_FROM} WHERE s.id = ?", (sweep_id,)).fetchone()
    return _sweep(row) if row else None


def open_sweeps(conn: sqlite3.Connection) -> list[Sweep]:
    return [_sweep(r) for r in conn.execute(
        f"SELECT {_COLUMNS}{_FROM} WHERE s.status NOT IN {FINAL} ORDER BY s.id")]


def to_reclaim(conn: sqlite3.Connection) -> list[Sweep]:
    """Final sweeps whose address still holds the energy they were lent."""
    return [_sweep(r) for r in conn.execute(
        f"SELECT {_COLUMNS}{_FROM} WHERE s.status IN {FINAL} AND s.delegation_status IN"
        " ('delegated', 'undelegating') ORDER BY s.id")]


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


def open_tx(conn: sqlite3.Connection, address: str, amount_musdt: int, at_ms: int,
            energy_mode: str = "burn") -> int:
    """A new sweep of an address (waiting); the one already open when there is one. Its
    energy_mode (burn | delegate) is fixed here, whatever the config says later."""
    row = conn.execute(f"SELECT s.id FROM sweeps s WHERE s.address = ? AND s.status NOT IN"
                       f" {FINAL}", (address,)).fetchone()
    if row is not None:
        return int(row["id"])
    sweep_id: int = conn.execute(
        "INSERT INTO sweeps (address, amount_musdt, status, created_at_ms, updated_at_ms,"
        " energy_mode) VALUES (?, ?, 'waiting', ?, ?, ?) RETURNING id",
        (address, amount_musdt, at_ms, at_ms, energy_mode)).fetchone()["id"]
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
        " wait_reason = NULL, updated_at_ms = ? WHERE id = ? AND ((energy_mode = 'burn' AND"
        " status IN ('waiting', 'funded')) OR (status = 'funded' AND delegation_status ="
        " 'delegated'))", (signed.txid, amount_musdt, at_ms, sweep_id))
    if cur.rowcount != 1:
        return False
    _store(conn, sweep_id, "sweep", signed, amount_musdt, at_ms)
    return True


def skip_topup_tx(conn: sqlite3.Connection, sweep_id: int, at_ms: int) -> bool:
    """waiting -> funded without a top-up (delegate mode: the address has what it needs but
    the energy)."""
    return conn.execute(
        "UPDATE sweeps SET status = 'funded', wait_reason = NULL, updated_at_ms = ? WHERE"
        " id = ? AND status = 'waiting' AND energy_mode = 'delegate'",
        (at_ms, sweep_id)).rowcount == 1


def store_delegate_tx(conn: sqlite3.Connection, sweep_id: int, signed: SignedTransfer,
                      balance_sun: int, at_ms: int) -> bool:
    """funded (delegate mode, nothing lent yet) -> delegating, the signed DelegateResource
    stored before any broadcast."""
    cur = conn.execute(
        "UPDATE sweeps SET delegation_status = 'delegating', delegate_txid = ?,"
        " delegated_sun = ?, wait_reason = NULL, updated_at_ms = ? WHERE id = ? AND"
        " status = 'funded' AND energy_mode = 'delegate' AND delegation_status IS NULL",
        (signed.txid, balance_sun, at_ms, sweep_id))
    if cur.rowcount != 1:
        return False
    _store(conn, sweep_id, "delegate", signed, balance_sun, at_ms)
    return True


def skip_delegation_tx(conn: sqlite3.Connection, sweep_id: int, at_ms: int) -> bool:
    """funded -> delegated without a transaction: the address already has the energy."""
    return conn.execute(
        "UPDATE sweeps SET delegation_status = 'delegated', delegated_sun = 0,"
        " updated_at_ms = ? WHERE id = ? AND status = 'funded' AND energy_mode = 'delegate'"
        " AND delegation_status IS NULL", (at_ms, sweep_id)).rowcount == 1


def store_undelegate_tx(conn: sqlite3.Connection, sweep_id: int, signed: SignedTransfer,
                        at_ms: int) -> bool:
    """A final sweep's lent energy taken back: delegated -> undelegating, the signed
    UnDelegateResource stored before any broadcast."""
    s = sweep(conn, sweep_id)
    if s is None or s.status not in FINAL or s.delegation_status != "delegated":
        return False
    conn.execute("UPDATE sweeps SET delegation_status = 'undelegating', undelegate_txid = ?,"
                 " updated_at_ms = ? WHERE id = ?", (signed.txid, at_ms, sweep_id))
    _store(conn, sweep_id, "undelegate", signed, s.delegated_sun, at_ms)
    return True


def finish_delegation_tx(conn: sqlite3.Connection, sweep_id: int, at_ms: int) -> None:
    """Nothing was lent (skipped): a final sweep has nothing to take back."""
    conn.execute("UPDATE sweeps SET delegation_status = 'undelegated', updated_at_ms = ?"
                 " WHERE id = ? AND delegation_status = 'delegated' AND delegated_sun = 0",
                 (at_ms, sweep_id))


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
    if t is None or s is None or s.txid != txid or (s.status in FINAL
                                                    and t.kind != "undelegate"):
        return False
    conn.execute("UPDATE sweep_txs SET outcome = ?, result = ?, fee_sun = ?,"
                 " finished_at_ms = ? WHERE txid = ?",
                 ("confirmed" if ok else "failed", result, fee_sun, at_ms, txid))
    if t.kind in ("delegate", "undelegate"):
        if t.kind == "delegate":
            status = "delegated" if ok else None
        else:
            status = "undelegated" if ok else "delegated"
        conn.execute(
            "UPDATE sweeps SET delegation_status = ?, delegation_fee_sun = delegation_fee_sun"
            " + ?, trx_spent_sun = trx_spent_sun + ?, wait_reason = ?, updated_at_ms = ?,"
            " delegate_txid = CASE WHEN ? = 'delegate' AND NOT ? THEN NULL ELSE delegate_txid"
            " END, undelegate_txid = CASE WHEN ? = 'undelegate' AND NOT ? THEN NULL ELSE"
            " undelegate_txid END, delegated_sun = CASE WHEN ? = 'delegate' AND NOT ? THEN 0"
            " ELSE delegated_sun END WHERE id = ?",
            (status, fee_sun, fee_sun, reason if s.status not in FINAL else s.wait_reason,
             at_ms, t.kind, ok, t.kind, ok, t.kind, ok, sweep_id))
        return True
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
    if s is None or s.txid != txid or (s.status in FINAL
                                       and s.delegation_status != "undelegating"):
        return False
    conn.execute("UPDATE sweep_txs SET outcome = 'expired', finished_at_ms = ? WHERE txid = ?",
                 (at_ms, txid))
    t = stored_tx(conn, txid)
    if t is not None and t.kind in ("delegate", "undelegate"):
        conn.execute(
            "UPDATE sweeps SET delegation_status = ?, delegate_txid = CASE WHEN ? THEN NULL"
            " ELSE delegate_txid END, undelegate_txid = CASE WHEN ? THEN undelegate_txid"
            " END, delegated_sun = CASE WHEN ? THEN 0 ELSE delegated_sun END,"
            " updated_at_ms = ? WHERE id = ?",
            (None if t.kind == "delegate" else "delegated", t.kind == "delegate",
             t.kind == "delegate", t.kind == "delegate", at_ms, sweep_id))
        return True
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
        "energy": s.energy_mode, "delegation": s.delegation_status,
        "delegate_txid": s.delegate_txid, "undelegate_txid": s.undelegate_txid,
        "delegated_sun": s.delegated_sun, "delegation_fee_sun": s.delegation_fee_sun,
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
