"""The operator's time-limited promotions: creating one (checked against the bonus bound at
the lowest commission in force), ending one early, and the view of tiers, promotions and
what each has cost in bonus tokens. Each change is written to the audit log in its own
transaction (core/audit.py). The bonus a promotion gives is granted by bonuses.py."""

from __future__ import annotations

import sqlite3
from typing import Any

from meterchat.core import audit
from meterchat.core.bonus_bound import max_bonus_ppm
from meterchat.core.errors import Conflict, NotFound, Unprocessable
from meterchat.core.units import iso_ms, musdt_to_tokens_str, musdt_to_usdt_str
from meterchat.economy.bonuses import lowest_commission, max_tier_ppm, stored_tiers
from meterchat.economy.rules import percent_text
from meterchat.money import ledger


def create_promotion_tx(conn: sqlite3.Connection, name: str, percent_ppm: int,
                        from_musdt: int, starts_ms: int, ends_ms: int, admin_id: int,
                        at_ms: int, config_floor_ppm: int) -> dict[str, Any]:
    """A promotion of `percent_ppm` on top-ups of at least `from_musdt` credited in
    [starts_ms, ends_ms). 422 `invalid_period`, or `bonus_too_high` when it would pass the
    bonus bound on top of the highest tier."""
    if ends_ms <= starts_ms:
        raise Unprocessable("ends_at must be after starts_at", "invalid_period")
    lowest, _ = lowest_commission(conn, config_floor_ppm)
    tier = max_tier_ppm(conn)
    allowed = max_bonus_ppm(lowest) - tier
    if percent_ppm > allowed:
        most = (f"a promotion may be at most {percent_text(allowed)} % now" if allowed > 0
                else "no promotion is possible now")
        raise Unprocessable(
            f"a {percent_text(percent_ppm)} % promotion on top of the highest tier"
            f" ({percent_text(tier)} %) with the lowest commission in force"
            f" ({percent_text(lowest)} %) would let a buyer and a seller who work together"
            f" take out more than the top-up cost; {most}", "bonus_too_high")
    cur = conn.execute(
        "INSERT INTO promotions (name, percent_ppm, from_musdt, starts_at_ms, ends_at_ms,"
        " created_by, created_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (name, percent_ppm, from_musdt, starts_ms, ends_ms, admin_id, at_ms))
    promotion_id = cur.lastrowid
    assert promotion_id is not None  # set by the INSERT
    audit.record(conn, admin_id, "promotion.create", f"promotion:{promotion_id}", None, at_ms,
                 name=name, percent=percent_text(percent_ppm),
                 from_usdt=musdt_to_usdt_str(from_musdt), starts_at=iso_ms(starts_ms),
                 ends_at=iso_ms(ends_ms))
    return _promotion(conn, promotion_id, at_ms)


def end_promotion_tx(conn: sqlite3.Connection, promotion_id: int, admin_id: int,
                     at_ms: int) -> dict[str, Any]:
    """End a promotion now. One that has not started yet is withdrawn: its period becomes
    the millisecond before now, so no top-up can fall in it. The audit log keeps the period
    it had."""
    row = conn.execute("SELECT name, starts_at_ms, ends_at_ms FROM promotions WHERE id = ?",
                       (promotion_id,)).fetchone()
    if row is None:
        raise NotFound("no such promotion", "promotion_not_found")
    starts_ms, ends_ms = row["starts_at_ms"], row["ends_at_ms"]
    if ends_ms <= at_ms:
        raise Conflict(f"this promotion ended at {iso_ms(ends_ms)}", "promotion_over")
    new_starts = starts_ms if starts_ms < at_ms else at_ms - 1
    conn.execute("UPDATE promotions SET starts_at_ms = ?, ends_at_ms = ? WHERE id = ?",
                 (new_starts, at_ms, promotion_id))
    audit.record(conn, admin_id, "promotion.end", f"promotion:{promotion_id}", None, at_ms,
                 name=row["name"], was_starts_at=iso_ms(starts_ms),
                 was_ends_at=iso_ms(ends_ms))
    return _promotion(conn, promotion_id, at_ms)


def _promotion_json(r: sqlite3.Row, now_ms: int) -> dict[str, Any]:
    return {
        "id": str(r["id"]), "name": r["name"], "percent": percent_text(r["percent_ppm"]),
        "from_usdt": musdt_to_usdt_str(r["from_musdt"]),
        "starts_at": iso_ms(r["starts_at_ms"]), "ends_at": iso_ms(r["ends_at_ms"]),
        "active": r["starts_at_ms"] <= now_ms < r["ends_at_ms"],
        "top_ups": r["top_ups"], "cost": musdt_to_tokens_str(r["cost_musdt"]),
    }


_PROMOTION_ROWS = (
    "SELECT p.id, p.name, p.percent_ppm, p.from_musdt, p.starts_at_ms, p.ends_at_ms,"
    " COUNT(g.id) AS top_ups, COALESCE(SUM(g.promo_bonus_musdt), 0) AS cost_musdt"
    " FROM promotions p LEFT JOIN bonus_grants g ON g.promotion_id = p.id")


def _promotion(conn: sqlite3.Connection, promotion_id: int, now_ms: int) -> dict[str, Any]:
    row = conn.execute(f"{_PROMOTION_ROWS} WHERE p.id = ? GROUP BY p.id",
                       (promotion_id,)).fetchone()
    return _promotion_json(row, now_ms)


def promotions_view(conn: sqlite3.Connection, now_ms: int) -> dict[str, Any]:
    """Tiers, promotions (newest first) and what each has cost in bonus tokens."""
    promos = [_promotion_json(r, now_ms) for r in conn.execute(
        f"{_PROMOTION_ROWS} GROUP BY p.id ORDER BY p.id DESC")]
    cost = conn.execute(
        "SELECT COALESCE(SUM(tier_bonus_musdt), 0) AS tiers,"
        " COALESCE(SUM(promo_bonus_musdt), 0) AS promotions, COUNT(*) AS grants"
        " FROM bonus_grants").fetchone()
    tiers = [{"from_usdt": musdt_to_usdt_str(f), "percent": percent_text(p)}
             for f, p in stored_tiers(conn)]
    return {
        "tiers": tiers,
        "promotions": promos,
        "cost": {
            "tiers": musdt_to_tokens_str(cost["tiers"]),
            "promotions": musdt_to_tokens_str(cost["promotions"]),
            "total": musdt_to_tokens_str(cost["tiers"] + cost["promotions"]),
            "top_ups_with_bonus": cost["grants"],
            # The ledger's own figure: what promo:bonuses has given, net.
            "promo_account_given": musdt_to_tokens_str(-ledger.balance(conn,
                                                                       ledger.PROMO_BONUSES)),
        },
    }
