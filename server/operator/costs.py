"""What moving USDT costs in TRX, shown, not guessed: the TRX the chain burned for the
platform's own transactions (each one's solidified receipt: `fee`, the energy and bandwidth
paid in TRX), per UTC day over the last 30 days, per USDT moved, and the hot wallet's TRX
runway (its TRX balance over the average TRX spent per day in the last 7 days).

The report is a pure function of `CostRow`s (kind, at_ms, trx_spent_sun, usdt_moved_musdt)
gathered from SOURCES, one function per table that records spending: the withdrawal
transactions (a failed one burns TRX and moves nothing; it counts) and the sweeps of
personal deposit addresses (the TRX both their top-up and their transfer burned). Used by `meterchat reconcile`, GET /api/admin/reconcile and
GET /api/admin/costs.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from meterchat.core.units import DAY_MS, iso_ms, musdt_to_usdt_str

DAYS_SHOWN = 30
RUNWAY_FROM_DAYS = 7
SIX_PLACES = Decimal("0.000001")


@dataclass(frozen=True)
class CostRow:
    kind: str  # "withdrawal" or "sweep"
    at_ms: int  # when the TRX was spent: the block's time
    trx_spent_sun: int
    usdt_moved_musdt: int  # 0 for a transaction that failed on chain


def withdrawal_rows(conn: sqlite3.Connection, since_ms: int) -> list[CostRow]:
    """Every settled withdrawal transaction with a receipt figure since `since_ms`."""
    rows = conn.execute(
        "SELECT COALESCE(t.block_time_ms, t.finished_at_ms) AS at_ms, t.trx_spent_sun,"
        " CASE WHEN t.outcome = 'confirmed' THEN w.net_musdt ELSE 0 END AS moved"
        " FROM withdrawal_txs t JOIN withdrawals w ON w.id = t.withdrawal_id"
        " WHERE t.trx_spent_sun IS NOT NULL"
        " AND COALESCE(t.block_time_ms, t.finished_at_ms) >= ?", (since_ms,)).fetchall()
    return [CostRow("withdrawal", r["at_ms"], r["trx_spent_sun"], r["moved"]) for r in rows]


def sweep_rows(conn: sqlite3.Connection, since_ms: int) -> list[CostRow]:
    """Every finished sweep since `since_ms`: a confirmed one moved its USDT, a failed one
    burned its TRX for nothing."""
    rows = conn.execute(
        "SELECT COALESCE(confirmed_at_ms, updated_at_ms) AS at_ms, trx_spent_sun,"
        " CASE WHEN status = 'confirmed' THEN amount_musdt ELSE 0 END AS moved"
        " FROM sweeps WHERE status IN ('confirmed', 'failed')"
        " AND COALESCE(confirmed_at_ms, updated_at_ms) >= ?", (since_ms,)).fetchall()
    return [CostRow("sweep", r["at_ms"], r["trx_spent_sun"], r["moved"]) for r in rows]


Source = Callable[[sqlite3.Connection, int], list[CostRow]]
SOURCES: tuple[Source, ...] = (withdrawal_rows, sweep_rows)


def gather(conn: sqlite3.Connection, now_ms: int, days: int = DAYS_SHOWN) -> list[CostRow]:
    """The rows of every source since the start of the first UTC day shown."""
    since = day_start(now_ms) - (days - 1) * DAY_MS
    return [row for source in SOURCES for row in source(conn, since)]


def day_start(at_ms: int) -> int:
    return at_ms - at_ms % DAY_MS


def trx_str(sun: int) -> str:
    return musdt_to_usdt_str(sun)  # TRX and USDT both have 6 decimals


def trx_per_usdt(trx_spent_sun: int, usdt_moved_musdt: int) -> str | None:
    """TRX burned per USDT moved (sun per µUSDT is TRX per USDT); None when nothing moved."""
    if usdt_moved_musdt <= 0:
        return None
    ratio = (Decimal(trx_spent_sun) / Decimal(usdt_moved_musdt)).quantize(
        SIX_PLACES, rounding=ROUND_HALF_UP)
    return str(ratio.normalize()) if ratio else "0"


def _sums(rows: Iterable[CostRow]) -> dict[str, Any]:
    spent = moved = count = 0
    for r in rows:
        spent += r.trx_spent_sun
        moved += r.usdt_moved_musdt
        count += 1
    return {"transactions": count, "trx_spent_sun": spent, "trx_spent": trx_str(spent),
            "usdt_moved_musdt": moved, "usdt_moved": musdt_to_usdt_str(moved),
            "trx_per_usdt": trx_per_usdt(spent, moved)}


def report(rows: list[CostRow], now_ms: int, trx_balance_sun: int | None,
           days: int = DAYS_SHOWN, runway_from_days: int = RUNWAY_FROM_DAYS) -> dict[str, Any]:
    """The cost report (pure). `per_day`: the last `days` UTC days, oldest first, today
    included, each with its totals and its totals by kind; `total` and `by_kind` over those
    days; `runway`: the TRX balance over the average spent per day in the last
    `runway_from_days` x 24 h (None without spending or without a balance)."""
    first = day_start(now_ms) - (days - 1) * DAY_MS
    shown = [r for r in rows if first <= r.at_ms <= now_ms]
    kinds = sorted({r.kind for r in shown})
    per_day = []
    for i in range(days):
        start = first + i * DAY_MS
        of_day = [r for r in shown if start <= r.at_ms < start + DAY_MS]
        per_day.append({"day": iso_ms(start)[:10], **_sums(of_day),
                        "by_kind": {k: _sums(r for r in of_day if r.kind == k)
                                    for k in kinds}})
    recent_from = now_ms - runway_from_days * DAY_MS
    recent = sum(r.trx_spent_sun for r in rows if recent_from < r.at_ms <= now_ms)
    per_day_sun = Decimal(recent) / runway_from_days
    runway_days = None
    if trx_balance_sun is not None and recent > 0:
        runway_days = str((Decimal(trx_balance_sun) / per_day_sun).quantize(
            Decimal("0.1"), rounding=ROUND_HALF_UP))
    return {
        "days": days,
        "from": iso_ms(first)[:10],
        "per_day": per_day,
        "total": _sums(shown),
        "by_kind": {k: _sums(r for r in shown if r.kind == k) for k in kinds},
        "runway": {
            "trx_balance_sun": trx_balance_sun,
            "trx_balance": None if trx_balance_sun is None else trx_str(trx_balance_sun),
            "average_days": runway_from_days,
            "average_trx_per_day": trx_str(int(per_day_sun.to_integral_value(
                rounding=ROUND_HALF_UP))),
            "days_left": runway_days,
        },
    }


def runway_warning(costs: dict[str, Any], below_days: int = RUNWAY_FROM_DAYS) -> str | None:
    """A line for reconcile when the hot wallet's TRX runs out within `below_days`."""
    left = costs["runway"]["days_left"]
    if left is not None and Decimal(left) < below_days:
        return (f"the hot wallet's {costs['runway']['trx_balance']} TRX last about {left} days"
                f" at the last {costs['runway']['average_days']} days' spending of"
                f" {costs['runway']['average_trx_per_day']} TRX a day: top it up")
    return None
