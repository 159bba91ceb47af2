"""Top-up bonuses: the configured tiers (copied into the database at start-up), the bonus a
credited top-up earns (tier + the best promotion running, granted in the deposit's credit
transaction), each buyer's bonus figure and what it leaves withdrawable, and the start-up
check that the bonus in force (tiers, promotions not ended) cannot be laundered at the
lowest commission in force. The rules themselves are in rules.py; promotions are created
and ended by promotions.py, read here.

The bonus moves from `promo:bonuses` to the buyer's `available` in the same database
transaction as the deposit credit, as its own ledger line (kind `bonus`)."""

from __future__ import annotations

import sqlite3
from typing import Any

from meterchat.core.bonus_bound import max_bonus_ppm
from meterchat.core.errors import PaymentRequired
from meterchat.core.units import musdt_to_tokens_str
from meterchat.economy.rules import (
    bonus_after_topup,
    bonus_parts,
    percent_text,
    tier_ppm_for,
    unspent_bonus_musdt,
    withdrawable_musdt,
)
from meterchat.money import ledger


class BonusNotWithdrawable(PaymentRequired):
    code = "bonus_not_withdrawable"


# ---- tiers -----------------------------------------------------------------------------

def sync_tiers_tx(conn: sqlite3.Connection, tiers: list[tuple[int, int]]) -> None:
    """Make the stored tiers the configured ones (run at start-up). tiers: (from µUSDT,
    ppm)."""
    conn.execute("DELETE FROM bonus_tiers")
    conn.executemany("INSERT INTO bonus_tiers (from_musdt, percent_ppm) VALUES (?, ?)", tiers)


def stored_tiers(conn: sqlite3.Connection) -> list[tuple[int, int]]:
    """(from µUSDT, ppm) of every tier, lowest first."""
    return [(r["from_musdt"], r["percent_ppm"]) for r in conn.execute(
        "SELECT from_musdt, percent_ppm FROM bonus_tiers ORDER BY from_musdt")]


def max_tier_ppm(conn: sqlite3.Connection) -> int:
    return max((ppm for _, ppm in stored_tiers(conn)), default=0)


# ---- the bonus figure and what it leaves withdrawable ----------------------------------

def bonus_figure(conn: sqlite3.Connection, user_id: int) -> int:
    """The bonus as of the user's last top-up (µUSDT); rules.unspent_bonus_musdt caps it."""
    row = conn.execute("SELECT bonus_musdt FROM bonus_balances WHERE user_id = ?",
                       (user_id,)).fetchone()
    return int(row["bonus_musdt"]) if row else 0


def grant_deposit_bonus_tx(conn: sqlite3.Connection, user_id: int, amount_musdt: int,
                           deposit_ref: str, at_ms: int) -> int:
    """Inside the deposit's credit transaction, after the credit: give a buyer the bonus
    of the tier and promotion this top-up reaches. Returns the bonus in µUSDT."""
    if conn.execute("SELECT 1 FROM bonus_grants WHERE deposit_ref = ?",
                    (deposit_ref,)).fetchone():
        return 0
    user = conn.execute("SELECT role FROM users WHERE id = ?", (user_id,)).fetchone()
    if user is None or user["role"] != "buyer" or amount_musdt <= 0:
        return 0
    tier_ppm = tier_ppm_for(amount_musdt, stored_tiers(conn))
    promo = conn.execute(
        "SELECT id, percent_ppm FROM promotions WHERE starts_at_ms <= ? AND ends_at_ms > ?"
        " AND from_musdt <= ? ORDER BY percent_ppm DESC, id LIMIT 1",
        (at_ms, at_ms, amount_musdt)).fetchone()
    tier_bonus, promo_bonus = bonus_parts(amount_musdt, tier_ppm,
                                          promo["percent_ppm"] if promo else 0)
    total = tier_bonus + promo_bonus
    if total <= 0:
        return 0
    bal = ledger.user_balances(conn, user_id)
    before = bal["available"] + bal["held"] - amount_musdt
    result = ledger.transfer(conn, ledger.PROMO_BONUSES, ledger.user_account(user_id), total,
                             "bonus", idem_key=f"bonus:{deposit_ref}", ref=deposit_ref)
    conn.execute(
        "INSERT INTO bonus_grants (ledger_tx_id, deposit_ref, user_id, deposit_musdt, tier_ppm,"
        " tier_bonus_musdt, promotion_id, promo_bonus_musdt, at_ms)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (result.tx_id, deposit_ref, user_id, amount_musdt, tier_ppm, tier_bonus,
         promo["id"] if promo and promo_bonus else None, promo_bonus, at_ms))
    new_figure = bonus_after_topup(bonus_figure(conn, user_id), before, total)
    conn.execute(
        "INSERT INTO bonus_balances (user_id, bonus_musdt, updated_at_ms) VALUES (?, ?, ?)"
        " ON CONFLICT (user_id) DO UPDATE SET bonus_musdt = excluded.bonus_musdt,"
        " updated_at_ms = excluded.updated_at_ms",
        (user_id, new_figure, at_ms))
    return total


def bonus_view(conn: sqlite3.Connection, user_id: int) -> dict[str, Any]:
    """The unspent bonus and what may be withdrawn, for GET /api/me."""
    bal = ledger.user_balances(conn, user_id)
    figure = bonus_figure(conn, user_id)
    return {
        "unspent": musdt_to_tokens_str(unspent_bonus_musdt(figure, bal["available"],
                                                           bal["held"])),
        "withdrawable": musdt_to_tokens_str(withdrawable_musdt(bal["available"], bal["held"],
                                                               figure)),
    }


def withdrawable_of(conn: sqlite3.Connection, user_id: int) -> int:
    """The most this user may withdraw (or tip) now, in µUSDT."""
    bal = ledger.user_balances(conn, user_id)
    return withdrawable_musdt(bal["available"], bal["held"], bonus_figure(conn, user_id))


def check_withdrawable(conn: sqlite3.Connection, user_id: int, amount_musdt: int) -> None:
    """The withdrawals code asks this before moving tokens out: unspent bonus stays (402
    `bonus_not_withdrawable`; more than available is the ledger's own refusal)."""
    bal = ledger.user_balances(conn, user_id)
    most = withdrawable_musdt(bal["available"], bal["held"], bonus_figure(conn, user_id))
    if most < amount_musdt <= bal["available"]:
        raise BonusNotWithdrawable(
            f"bonus tokens can be spent on calls but not withdrawn; you can withdraw up to "
            f"{musdt_to_tokens_str(most)} tokens")


# ---- the bound on the bonus in force ---------------------------------------------------

def lowest_commission(conn: sqlite3.Connection, config_floor_ppm: int) -> tuple[int, str]:
    """(ppm, where it comes from): the lowest commission a buyer's spending can meet, the
    config's (minutes, tips) or a seller's own."""
    row = conn.execute("SELECT MIN(commission_ppm) AS lowest FROM sellers").fetchone()
    if row["lowest"] is not None and row["lowest"] < config_floor_ppm:
        return int(row["lowest"]), "a seller's own commission"
    return config_floor_ppm, "billing.commission_percent / economy.tip_commission_percent"


def bonus_bound_problem(conn: sqlite3.Connection, config_floor_ppm: int,
                        now_ms: int) -> str | None:
    """Checked at every start: why the bonus in force (highest tier + best promotion not
    yet ended) would let a buyer and a seller who work together take out more than a
    top-up cost, or None."""
    lowest, source = lowest_commission(conn, config_floor_ppm)
    tier = max_tier_ppm(conn)
    promo = int(conn.execute("SELECT COALESCE(MAX(percent_ppm), 0) AS best FROM promotions"
                             " WHERE ends_at_ms > ?", (now_ms,)).fetchone()["best"])
    allowed = max_bonus_ppm(lowest)
    if tier + promo <= allowed:
        return None
    return (f"top-up bonus too high for the commission: the highest tier"
            f" ({percent_text(tier)} %) plus the best promotion not yet ended"
            f" ({percent_text(promo)} %) give {percent_text(tier + promo)} %, but with the"
            f" lowest commission in force ({percent_text(lowest)} %, {source}) a buyer who"
            f" spends a top-up and its bonus on a colluding seller would let that seller"
            f" withdraw more than the top-up cost; tier plus promotion may be at most"
            f" {percent_text(allowed)} %. Lower economy.bonus_tiers, end the promotion or"
            " raise the commission.")
