"""Reconciliation of the ledger with the chain: what the platform owes its users (every user
balance, available + held + pending, plus the tokens of withdrawals in flight in
clearing:withdrawals) against the USDT the hot wallet holds on chain (read through the
gateway, i.e. tronpy), the TRX it holds for energy, the transfers that reached the
deposit address but match no user (unmatched deposits, for the operator to assign), and the
USDT transfers out of the hot wallet that match no confirmed withdrawal (the deposit watcher
records every Transfer log out of the hot wallet from the solidified blocks it reads, in the
same transaction that moves its cursor; a restored backup re-reads them).

USDT at the buyers' personal deposit addresses (deposits.mode = "address_per_user") is the
platform's: it counts with the hot wallet's against what users hold, read on chain for every
address the database says holds some (received and not yet swept, or a sweep under way).

A transfer out of the hot wallet that no withdrawal knows (not even as a stored transaction)
is a problem: money left that the ledger does not account for, e.g. a withdrawal paid after
the backup a restored database came from. It lists the not-final withdrawals it may pay
(same address and net); `meterchat withdrawals confirm ID --txid TXID` records it.

`ok` is False when the hot wallet cannot cover what users hold, when the chain cannot be
read, or when USDT left the hot wallet that no withdrawal accounts for. A low TRX balance is
a warning: withdrawals wait, nobody's money is missing.
With the cost rows, the report carries the TRX costs too (operator/costs.py).
Used by `meterchat reconcile` and GET /api/admin/reconcile.
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass, field
from typing import Any

from meterchat.chain.gateway import ChainGateway, ChainUnavailable, TransferLog
from meterchat.core.units import SUN_PER_TRX, iso_ms, musdt_to_usdt_str
from meterchat.deposits import credits, personal, views
from meterchat.deposits import store as deposits
from meterchat.money import ledger
from meterchat.operator import costs

MAX_LISTED_TRANSFERS = 200
MAX_SQLITE_INT = 2**63 - 1



@dataclass(frozen=True)
class Liabilities:
    users_musdt: int
    clearing_withdrawals_musdt: int
    unmatched_deposits: list[dict[str, Any]]
    unmatched_musdt: int
    unmatched_transfers: list[dict[str, Any]] = field(default_factory=list)
    unmatched_transfers_musdt: int = 0
    transfers_read_to_block: int | None = None
    personal_addresses: list[str] = field(default_factory=list)
    sweeps_trx_spent_sun: int = 0

    @property
    def total_musdt(self) -> int:
        return self.users_musdt + self.clearing_withdrawals_musdt


def liabilities(conn: sqlite3.Connection) -> Liabilities:
    users: int = conn.execute(
        "SELECT COALESCE(SUM(balance_musdt), 0) AS total FROM accounts"
        " WHERE name LIKE 'user:%'").fetchone()["total"]
    transfers, transfers_musdt = unmatched_transfers(conn)
    return Liabilities(
        users_musdt=users,
        clearing_withdrawals_musdt=ledger.balance(conn, ledger.CLEARING_WITHDRAWALS),
        unmatched_deposits=views.admin_deposits(conn, "unmatched"),
        unmatched_musdt=deposits.unmatched_musdt(conn),
        unmatched_transfers=transfers, unmatched_transfers_musdt=transfers_musdt,
        transfers_read_to_block=credits.cursor(conn),
        personal_addresses=personal_holding(conn),
        sweeps_trx_spent_sun=conn.execute(
            "SELECT COALESCE(SUM(trx_spent_sun), 0) AS total FROM sweeps").fetchone()["total"])


def personal_holding(conn: sqlite3.Connection) -> list[str]:
    """Personal deposit addresses that may hold USDT: received and not swept, or a sweep
    under way."""
    held = {address for address, _ in personal.owed_at_addresses(conn)}
    held |= {r["address"] for r in conn.execute(
        "SELECT address FROM sweeps WHERE status NOT IN ('confirmed', 'failed')")}
    return sorted(held)


# -- transfers out of the hot wallet


def record_outgoing_tx(conn: sqlite3.Connection, block_number: int,
                       block_time_ms: int | None, transfers: tuple[TransferLog, ...],
                       at_ms: int) -> int:
    """Record the USDT Transfer logs out of the hot wallet of one solidified block (called
    by the deposit watcher inside the transaction that records the block). Idempotent per
    (txid, log_index). Returns how many were new."""
    new = 0
    for t in transfers:
        if not 0 < t.amount <= MAX_SQLITE_INT:
            continue  # no real USDT amount; never stops the watcher
        cur = conn.execute(
            "INSERT OR IGNORE INTO hot_wallet_transfers (txid, log_index, block_number,"
            " block_time_ms, from_address, to_address, amount_musdt, recorded_at_ms)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (t.txid, t.log_index, block_number, block_time_ms, t.from_address, t.to_address,
             t.amount, at_ms))
        new += cur.rowcount
    return new


def unmatched_transfers(conn: sqlite3.Connection,
                        limit: int = MAX_LISTED_TRANSFERS) -> tuple[list[dict[str, Any]], int]:
    """Recorded transfers out of the hot wallet that no confirmed withdrawal accounts for
    (same TXID, address and net), oldest first, with the withdrawal whose stored transaction
    it is (if any) and the not-final withdrawals it may pay. Returns (up to `limit` of them,
    the µUSDT of all of them)."""
    unmatched = (
        " FROM hot_wallet_transfers h WHERE NOT EXISTS (SELECT 1 FROM withdrawals w"
        " WHERE w.txid = h.txid AND w.status = 'confirmed' AND w.address = h.to_address"
        " AND w.net_musdt = h.amount_musdt)")
    total: int = conn.execute(
        "SELECT COALESCE(SUM(h.amount_musdt), 0) AS total" + unmatched).fetchone()["total"]
    rows = conn.execute(
        "SELECT h.txid, h.log_index, h.block_number, h.block_time_ms, h.from_address,"
        " h.to_address, h.amount_musdt,"
        " (SELECT t.withdrawal_id FROM withdrawal_txs t WHERE t.txid = h.txid)"
        " AS withdrawal_id,"
        " (SELECT w.status FROM withdrawal_txs t JOIN withdrawals w ON w.id = t.withdrawal_id"
        "  WHERE t.txid = h.txid) AS withdrawal_status"
        + unmatched + " ORDER BY h.block_number, h.txid, h.log_index LIMIT ?", (limit,),
    ).fetchall()
    out = []
    for r in rows:
        to, amount, wid = r["to_address"], r["amount_musdt"], r["withdrawal_id"]
        candidates = [str(c["id"]) for c in conn.execute(
            "SELECT id FROM withdrawals WHERE address = ? AND net_musdt = ?"
            " AND status NOT IN ('confirmed', 'rejected') ORDER BY id", (to, amount))]
        out.append({
            "txid": r["txid"], "log_index": r["log_index"], "block_number": r["block_number"],
            "block_time": iso_ms(r["block_time_ms"]), "from_address": r["from_address"],
            "to_address": to, "amount_musdt": amount, "usdt": musdt_to_usdt_str(amount),
            "withdrawal_id": str(wid) if wid is not None else None,
            "withdrawal_status": r["withdrawal_status"], "candidates": candidates,
        })
    return out, total


@dataclass
class Report:
    ok: bool
    network: str
    wallet_address: str | None
    liability_musdt: int
    users_musdt: int
    clearing_withdrawals_musdt: int
    wallet_usdt_musdt: int | None = None
    wallet_trx_sun: int | None = None
    deposit_address: str | None = None
    deposit_address_usdt_musdt: int | None = None
    surplus_musdt: int | None = None  # negative: the wallet is short by that much
    unmatched_deposits: list[dict[str, Any]] = field(default_factory=list)
    unmatched_musdt: int = 0
    # Transfers out of the hot wallet that match no confirmed withdrawal (see above), and
    # the last solidified block the watcher has read them up to.
    unmatched_transfers: list[dict[str, Any]] = field(default_factory=list)
    unmatched_transfers_musdt: int = 0
    transfers_read_to_block: int | None = None
    # USDT at buyers' personal deposit addresses (the platform's, counted with the wallet's),
    # and the TRX sweeps burned so far (sun).
    personal_addresses_usdt_musdt: int | None = None
    personal_addresses_read: int = 0
    sweeps_trx_spent_sun: int = 0
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # TRX spent per day, per USDT moved, and the hot wallet's runway (operator/costs.py).
    costs: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["liability_usdt"] = musdt_to_usdt_str(self.liability_musdt)
        if self.wallet_usdt_musdt is not None:
            out["wallet_usdt"] = musdt_to_usdt_str(self.wallet_usdt_musdt)
        if self.wallet_trx_sun is not None:
            out["wallet_trx"] = musdt_to_usdt_str(self.wallet_trx_sun)  # both have 6 decimals
        return out


def judge(report: Report, fee_limit_sun: int) -> Report:
    """Fill ok, surplus, problems and warnings from the figures (pure)."""
    if report.wallet_usdt_musdt is not None:
        personal_musdt = report.personal_addresses_usdt_musdt or 0
        report.surplus_musdt = (report.wallet_usdt_musdt + personal_musdt
                                - report.liability_musdt)
        if report.surplus_musdt < 0:
            at_personal = (f" and the personal deposit addresses"
                           f" {musdt_to_usdt_str(personal_musdt)} USDT" if personal_musdt
                           else "")
            report.problems.append(
                f"the hot wallet is short by {musdt_to_usdt_str(-report.surplus_musdt)} USDT:"
                f" users hold {musdt_to_usdt_str(report.liability_musdt)} USDT, the wallet"
                f" {musdt_to_usdt_str(report.wallet_usdt_musdt)} USDT{at_personal}")
    if report.wallet_trx_sun is not None and report.wallet_trx_sun < fee_limit_sun:
        report.warnings.append(
            f"the hot wallet holds {musdt_to_usdt_str(report.wallet_trx_sun)} TRX, less than"
            f" one withdrawal's fee limit ({fee_limit_sun // SUN_PER_TRX} TRX): withdrawals"
            " will wait")
    if (report.deposit_address_usdt_musdt and report.deposit_address
            and report.deposit_address != report.wallet_address):
        report.warnings.append(
            f"the deposit address holds {musdt_to_usdt_str(report.deposit_address_usdt_musdt)}"
            " USDT that is not in the hot wallet yet")
    if report.unmatched_deposits:
        report.warnings.append(
            f"{len(report.unmatched_deposits)} unmatched deposit(s) of"
            f" {musdt_to_usdt_str(report.unmatched_musdt)} USDT wait for the operator")
    for t in report.unmatched_transfers:
        what = (f"the transfer {t['txid']} of {t['usdt']} USDT from the hot wallet to"
                f" {t['to_address']} (block {t['block_number']})")
        if t["withdrawal_id"] is None:
            hint = ""
            if t["candidates"]:
                ids = ", ".join(t["candidates"])
                hint = (f"; it may pay withdrawal {ids} (same address and net): if so, record"
                        f" it with `meterchat withdrawals confirm ID --txid {t['txid']}`")
            report.problems.append(f"{what} matches no withdrawal{hint}")
        elif t["withdrawal_status"] == "review":
            report.warnings.append(
                f"{what} is the stored transaction of withdrawal {t['withdrawal_id']}, in"
                " review: approve it and the sender confirms it")
        else:
            report.warnings.append(
                f"{what} is the stored transaction of withdrawal {t['withdrawal_id']}"
                f" ({t['withdrawal_status']}), not confirmed yet")
    report.ok = not report.problems
    return report


async def reconcile(owed: Liabilities, gateway: ChainGateway, network: str,
                    wallet_address: str | None, deposit_address: str | None,
                    fee_limit_sun: int, cost_rows: list[costs.CostRow] | None = None,
                    now_ms: int | None = None) -> Report:
    """The report; with `cost_rows` (costs.gather) its `costs` too, the runway from the TRX
    balance just read (a warning when it lasts less than a week)."""
    report = await _reconcile(owed, gateway, network, wallet_address, deposit_address,
                              fee_limit_sun)
    if cost_rows is not None and now_ms is not None:
        report.costs = costs.report(cost_rows, now_ms, report.wallet_trx_sun)
        warning = costs.runway_warning(report.costs)
        if warning:
            report.warnings.append(warning)
    return report


async def _reconcile(owed: Liabilities, gateway: ChainGateway, network: str,
                     wallet_address: str | None, deposit_address: str | None,
                     fee_limit_sun: int) -> Report:
    report = Report(ok=False, network=network, wallet_address=wallet_address,
                    liability_musdt=owed.total_musdt, users_musdt=owed.users_musdt,
                    clearing_withdrawals_musdt=owed.clearing_withdrawals_musdt,
                    deposit_address=deposit_address,
                    unmatched_deposits=owed.unmatched_deposits,
                    unmatched_musdt=owed.unmatched_musdt,
                    unmatched_transfers=owed.unmatched_transfers,
                    unmatched_transfers_musdt=owed.unmatched_transfers_musdt,
                    transfers_read_to_block=owed.transfers_read_to_block,
                    sweeps_trx_spent_sun=owed.sweeps_trx_spent_sun)
    if not wallet_address:
        report.problems.append("no hot wallet is configured (chain.hot_wallet_key_file or"
                               " chain.hot_wallet_key_env)")
        return judge(report, fee_limit_sun)
    try:
        report.wallet_usdt_musdt = await gateway.usdt_balance(wallet_address)
        report.wallet_trx_sun = await gateway.trx_balance_sun(wallet_address)
        if deposit_address and deposit_address != wallet_address:
            report.deposit_address_usdt_musdt = await gateway.usdt_balance(deposit_address)
        if owed.personal_addresses:
            total = 0
            for address in owed.personal_addresses:
                total += await gateway.usdt_balance(address)
            report.personal_addresses_usdt_musdt = total
            report.personal_addresses_read = len(owed.personal_addresses)
    except ChainUnavailable as exc:
        report.problems.append(f"the chain cannot be read: {exc}")
    return judge(report, fee_limit_sun)
