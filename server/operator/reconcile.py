"""Reconciliation of the ledger with the chain: what the platform owes its users (every user
balance, available + held + pending, plus the tokens of withdrawals in flight in
clearing:withdrawals) against the USDT the hot wallet holds on chain (read through the
gateway, i.e. tronpy), the TRX it holds for energy, and the transfers that reached the
deposit address but match no user (unmatched deposits, for the operator to assign).

`ok` is False when the hot wallet cannot cover what users hold (or the chain cannot be
read). A low TRX balance is a warning: withdrawals wait, nobody's money is missing.
Used by `meterchat reconcile` and GET /api/admin/reconcile.
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass, field

from meterchat.chain.gateway import ChainGateway, ChainUnavailable
from meterchat.core.units import musdt_to_usdt_str
from meterchat.deposits import store as deposits
from meterchat.money import ledger

SUN_PER_TRX = 1_000_000


@dataclass(frozen=True)
class Liabilities:
    users_musdt: int
    clearing_withdrawals_musdt: int
    unmatched_deposits: list[dict]
    unmatched_musdt: int

    @property
    def total_musdt(self) -> int:
        return self.users_musdt + self.clearing_withdrawals_musdt


def liabilities(conn: sqlite3.Connection) -> Liabilities:
    users = conn.execute(
        "SELECT COALESCE(SUM(balance_musdt), 0) FROM accounts WHERE name LIKE 'user:%'"
    ).fetchone()[0]
    unmatched = deposits.admin_deposits(conn, "unmatched")
    unmatched_musdt = conn.execute(
        "SELECT COALESCE(SUM(amount_musdt), 0) FROM deposits WHERE status = 'unmatched'"
    ).fetchone()[0]
    return Liabilities(users, ledger.balance(conn, ledger.CLEARING_WITHDRAWALS), unmatched,
                       unmatched_musdt)


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
    unmatched_deposits: list[dict] = field(default_factory=list)
    unmatched_musdt: int = 0
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
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
        report.surplus_musdt = report.wallet_usdt_musdt - report.liability_musdt
        if report.surplus_musdt < 0:
            report.problems.append(
                f"the hot wallet is short by {musdt_to_usdt_str(-report.surplus_musdt)} USDT:"
                f" users hold {musdt_to_usdt_str(report.liability_musdt)} USDT, the wallet"
                f" {musdt_to_usdt_str(report.wallet_usdt_musdt)} USDT")
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
    report.ok = not report.problems
    return report


async def reconcile(owed: Liabilities, gateway: ChainGateway, network: str,
                    wallet_address: str | None, deposit_address: str | None,
                    fee_limit_sun: int) -> Report:
    report = Report(ok=False, network=network, wallet_address=wallet_address,
                    liability_musdt=owed.total_musdt, users_musdt=owed.users_musdt,
                    clearing_withdrawals_musdt=owed.clearing_withdrawals_musdt,
                    deposit_address=deposit_address,
                    unmatched_deposits=owed.unmatched_deposits,
                    unmatched_musdt=owed.unmatched_musdt)
    if not wallet_address:
        report.problems.append("no hot wallet is configured (chain.hot_wallet_key_file or"
                               " chain.hot_wallet_key_env)")
        return judge(report, fee_limit_sun)
    try:
        report.wallet_usdt_musdt = await gateway.usdt_balance(wallet_address)
        report.wallet_trx_sun = await gateway.trx_balance_sun(wallet_address)
        if deposit_address and deposit_address != wallet_address:
            report.deposit_address_usdt_musdt = await gateway.usdt_balance(deposit_address)
    except ChainUnavailable as exc:
        report.problems.append(f"the chain cannot be read: {exc}")
    return judge(report, fee_limit_sun)
