"""The buyer's own controls (table `buyer_controls`) and what they are measured against:
daily and monthly spending limits, self-exclusion, the leaderboard opt-in, the spending
history, what the buyer's calls under way may still take, and the one limit check that
calls (`call_cap`, at start) and tips (`refuse_over_limit`) go through. The rules are in
rules.py.

- What is left of a limit counts what the buyer's calls under way may still charge (each
  call up to its effective cap: what it holds and what it can still hold) as spent, for
  calls and tips alike, so spending never passes a limit whatever the order. A call's cap
  is computed when it starts (a call that runs past midnight keeps it); a call stopped by
  it ends like a spending cap (`spend_cap`). A limit lowered (or set) during a call lowers
  that call's cap at once (never below what it has charged and holds).
- Self-exclusion: for the chosen days no calls, no tips, no new top-up intents (transfers
  that arrive are still credited); it can be extended, never shortened.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, NamedTuple, TypedDict

from meterchat.core.errors import Forbidden
from meterchat.core.units import DAY_MS, iso_ms, musdt_to_tokens_str
from meterchat.economy.rules import (
    SPEND_KINDS,
    CallUnderWay,
    Entry,
    change_limit,
    day_key,
    day_start_ms,
    effective_cap,
    effective_limit,
    fitted_caps,
    left_of,
    may_still_take,
    month_start_ms,
)
from meterchat.money import billing, ledger


class SelfExcluded(Forbidden):
    code = "self_excluded"


class LimitReached(Forbidden):
    code = "daily_limit_reached"


class Pending(NamedTuple):
    """A raise or removal of a limit still waiting: the new limit (None = no limit) and
    when it takes effect."""
    limit_musdt: int | None
    from_ms: int


class LimitsState(TypedDict):
    """The buyer's limits now, in µUSDT (None = no limit)."""
    daily: int | None
    monthly: int | None
    daily_pending: Pending | None
    monthly_pending: Pending | None
    spent_today: int
    spent_this_month: int
    held: int
    reserved: int  # what the calls under way may still take
    daily_left: int | None
    monthly_left: int | None
    excluded_until: int | None
    show_on_leaderboard: bool


@dataclass(frozen=True)
class Controls:
    """One row of buyer_controls; a buyer who never set anything has the defaults."""
    daily_limit_musdt: int | None = None
    monthly_limit_musdt: int | None = None
    pending_daily_musdt: int | None = None
    pending_daily_from_ms: int | None = None
    pending_monthly_musdt: int | None = None
    pending_monthly_from_ms: int | None = None
    excluded_until_ms: int | None = None
    show_on_leaderboard: bool = False


def _controls(conn: sqlite3.Connection, user_id: int) -> Controls:
    row = conn.execute(
        "SELECT daily_limit_musdt, monthly_limit_musdt, pending_daily_musdt,"
        " pending_daily_from_ms, pending_monthly_musdt, pending_monthly_from_ms,"
        " excluded_until_ms, show_on_leaderboard FROM buyer_controls WHERE user_id = ?",
        (user_id,)).fetchone()
    if row is None:
        return Controls()
    return Controls(**{**dict(row), "show_on_leaderboard": bool(row["show_on_leaderboard"])})


def _ensure_controls_tx(conn: sqlite3.Connection, user_id: int, at_ms: int) -> None:
    conn.execute("INSERT OR IGNORE INTO buyer_controls (user_id, updated_at_ms) VALUES (?, ?)",
                 (user_id, at_ms))


# ---- spending --------------------------------------------------------------------------

def spend_entries(conn: sqlite3.Connection, user_id: int, since_ms: int) -> list[Entry]:
    """Per ledger transaction since a moment, what left the buyer's available + held for
    sellers and the platform (negative for refunds), oldest first."""
    accts = [r["id"] for r in conn.execute(
        "SELECT id FROM accounts WHERE name IN (?, ?)",
        (ledger.user_account(user_id), ledger.user_account(user_id, "held")))]
    if not accts:
        return []
    marks = ",".join("?" * len(accts))
    kinds = ",".join("?" * len(SPEND_KINDS))
    rows = conn.execute(
        f"SELECT t.created_at_ms AS at_ms, t.ref, t.kind, -SUM(p.amount_musdt) AS musdt"
        f" FROM postings p JOIN ledger_tx t ON t.id = p.tx_id WHERE p.account_id IN ({marks})"
        f" AND t.kind IN ({kinds}) AND t.created_at_ms >= ? GROUP BY t.id ORDER BY t.id",
        (*accts, *SPEND_KINDS, since_ms)).fetchall()
    return [Entry(r["at_ms"], r["ref"], r["kind"], r["musdt"]) for r in rows if r["musdt"]]


def spent_since(conn: sqlite3.Connection, user_id: int, since_ms: int) -> int:
    return sum(e.musdt for e in spend_entries(conn, user_id, since_ms))


def _calls_under_way(conn: sqlite3.Connection, buyer_id: int) -> list[CallUnderWay]:
    marks = ",".join("?" * len(billing.ACTIVE_STATES))
    return [CallUnderWay(r["id"], r["spend_cap_musdt"], r["charged_musdt"], r["held_musdt"])
            for r in conn.execute(
                f"SELECT id, spend_cap_musdt, charged_musdt, held_musdt FROM calls"
                f" WHERE buyer_id = ? AND state IN ({marks}) ORDER BY id",
                (buyer_id, *billing.ACTIVE_STATES))]


# ---- the limit check -------------------------------------------------------------------

def limits_state(conn: sqlite3.Connection, user_id: int, now_ms: int) -> LimitsState:
    """Effective limits, what is committed today and this month (spent, plus what the
    buyer's calls under way may still take), what is left, and the self-exclusion, in
    µUSDT (None = no limit). The one limit check of calls and tips reads it."""
    c = _controls(conn, user_id)
    daily = effective_limit(c.daily_limit_musdt, c.pending_daily_musdt,
                            c.pending_daily_from_ms, now_ms)
    monthly = effective_limit(c.monthly_limit_musdt, c.pending_monthly_musdt,
                              c.pending_monthly_from_ms, now_ms)
    held = ledger.balance(conn, ledger.user_account(user_id, "held"))
    available = ledger.balance(conn, ledger.user_account(user_id))
    reserved = sum(may_still_take(call.cap_musdt, call.charged_musdt, call.held_musdt,
                                  available)
                   for call in _calls_under_way(conn, user_id))
    month_spent = spent_since(conn, user_id, month_start_ms(now_ms))
    day_spent = spent_since(conn, user_id, day_start_ms(now_ms))

    def waiting(limit: int | None, from_ms: int | None) -> Pending | None:
        return Pending(limit, from_ms) if from_ms is not None and now_ms < from_ms else None

    return {
        "daily": daily, "monthly": monthly,
        "daily_pending": waiting(c.pending_daily_musdt, c.pending_daily_from_ms),
        "monthly_pending": waiting(c.pending_monthly_musdt, c.pending_monthly_from_ms),
        "spent_today": day_spent, "spent_this_month": month_spent, "held": held,
        "reserved": reserved,
        "daily_left": left_of(daily, day_spent + reserved),
        "monthly_left": left_of(monthly, month_spent + reserved),
        "excluded_until": (c.excluded_until_ms if c.excluded_until_ms is not None
                           and c.excluded_until_ms > now_ms else None),
        "show_on_leaderboard": c.show_on_leaderboard,
    }


def check_not_excluded(conn: sqlite3.Connection, user_id: int, now_ms: int) -> None:
    """403 `self_excluded` while the user's self-exclusion runs."""
    until = _controls(conn, user_id).excluded_until_ms
    if until is not None and until > now_ms:
        raise SelfExcluded(
            f"you have excluded yourself until {iso_ms(until)}: no calls, tips or top-ups "
            "until then (transfers that arrive are still credited)")


def refuse_over_limit(state: LimitsState, amount_musdt: int, what: str) -> None:
    """403 `daily_limit_reached` / `monthly_limit_reached` when `amount_musdt` passes what
    a limit leaves. `what` names the spending in the message ("a call", "this tip")."""
    for period, left in (("daily", state["daily_left"]), ("monthly", state["monthly_left"])):
        if left is not None and amount_musdt > left:
            call = ""
            if state["reserved"]:
                call = (f"; your call under way may still take up to"
                        f" {musdt_to_tokens_str(state['reserved'])} tokens of it (its spending"
                        " cap), so tip after it ends")
            raise LimitReached(
                f"{what} would pass your {period} spending limit ({musdt_to_tokens_str(left)}"
                f" tokens left{call}); you can lower limits at once, raising takes 24 hours",
                f"{period}_limit_reached")


def call_cap(conn: sqlite3.Connection, buyer_id: int, spend_cap_musdt: int | None,
             segment_price_musdt: int, now_ms: int) -> int | None:
    """At call start: refuse at a limit, else the call's effective spending cap."""
    state = limits_state(conn, buyer_id, now_ms)
    refuse_over_limit(state, segment_price_musdt, "a call")
    return effective_cap(spend_cap_musdt, state["daily_left"], state["monthly_left"])


def fit_calls_to_limits_tx(conn: sqlite3.Connection, buyer_id: int, now_ms: int) -> None:
    """After a limit is lowered or set: lower the caps of the buyer's calls under way so
    that what they may still take fits in what is left (never below what a call has
    charged and holds)."""
    calls = _calls_under_way(conn, buyer_id)
    if not calls:
        return
    state = limits_state(conn, buyer_id, now_ms)
    caps = fitted_caps(calls, [(state["daily"], state["spent_today"]),
                               (state["monthly"], state["spent_this_month"])])
    for call in calls:
        cap = caps[call.id]
        if cap != call.cap_musdt and cap is not None:
            # A cap is positive (the schema's CHECK); one below a segment ends the call at
            # its next minute boundary like any spending cap.
            conn.execute("UPDATE calls SET spend_cap_musdt = ? WHERE id = ?",
                         (max(1, cap), call.id))


# ---- the buyer's changes ---------------------------------------------------------------

def set_limits_tx(conn: sqlite3.Connection, user_id: int, changes: dict[str, int | None],
                  delay_ms: int, now_ms: int) -> dict[str, Any]:
    """changes: {"daily"|"monthly": µUSDT or None (no limit)}; absent keys stay."""
    _ensure_controls_tx(conn, user_id, now_ms)
    c = _controls(conn, user_id)
    current = {
        "daily": (c.daily_limit_musdt, c.pending_daily_musdt, c.pending_daily_from_ms),
        "monthly": (c.monthly_limit_musdt, c.pending_monthly_musdt, c.pending_monthly_from_ms),
    }
    for name, (limit, pending, pending_from) in current.items():
        if name not in changes:
            continue
        lim, pend, pfrom = change_limit(limit, pending, pending_from, changes[name], now_ms,
                                        delay_ms)
        conn.execute(
            f"UPDATE buyer_controls SET {name}_limit_musdt = ?, pending_{name}_musdt = ?,"
            f" pending_{name}_from_ms = ?, updated_at_ms = ? WHERE user_id = ?",
            (lim, pend, pfrom, now_ms, user_id))
    fit_calls_to_limits_tx(conn, user_id, now_ms)
    return limits_json(limits_state(conn, user_id, now_ms))


def self_exclude_tx(conn: sqlite3.Connection, user_id: int, days: int,
                    now_ms: int) -> dict[str, Any]:
    """Exclude oneself for `days` from now; an exclusion already running for longer stays."""
    _ensure_controls_tx(conn, user_id, now_ms)
    until = now_ms + days * DAY_MS
    conn.execute(
        "UPDATE buyer_controls SET excluded_until_ms = MAX(COALESCE(excluded_until_ms, 0), ?),"
        " updated_at_ms = ? WHERE user_id = ?", (until, now_ms, user_id))
    return limits_json(limits_state(conn, user_id, now_ms))


def set_privacy_tx(conn: sqlite3.Connection, user_id: int, show: bool,
                   now_ms: int) -> dict[str, Any]:
    """The leaderboard opt-in: whether the buyer's display name shows on supporters boards."""
    _ensure_controls_tx(conn, user_id, now_ms)
    conn.execute("UPDATE buyer_controls SET show_on_leaderboard = ?, updated_at_ms = ?"
                 " WHERE user_id = ?", (1 if show else 0, now_ms, user_id))
    return {"show_on_leaderboard": show}


# ---- views -----------------------------------------------------------------------------

def _tok(v: int | None) -> str | None:
    return None if v is None else musdt_to_tokens_str(v)


def limits_json(s: LimitsState) -> dict[str, Any]:
    def pending(p: Pending | None) -> dict[str, Any] | None:
        return None if p is None else {"limit": _tok(p.limit_musdt), "from": iso_ms(p.from_ms)}

    return {
        "daily": _tok(s["daily"]), "monthly": _tok(s["monthly"]),
        "daily_pending": pending(s["daily_pending"]),
        "monthly_pending": pending(s["monthly_pending"]),
        "spent_today": _tok(s["spent_today"]), "spent_this_month": _tok(s["spent_this_month"]),
        "left_today": _tok(s["daily_left"]), "left_this_month": _tok(s["monthly_left"]),
        "self_excluded_until": iso_ms(s["excluded_until"]),
        "show_on_leaderboard": s["show_on_leaderboard"],
    }


def _call_ids(refs: list[str | None]) -> dict[str, int]:
    """{"call:12": 12} for the refs that name a call."""
    out = {}
    for ref in refs:
        if ref and ref.startswith("call:"):
            try:
                out[ref] = int(ref.split(":")[1])
            except (IndexError, ValueError):
                continue
    return out


def spending_view(conn: sqlite3.Connection, user_id: int, days: int,
                  now_ms: int) -> dict[str, Any]:
    """A buyer's spending over the last `days` days: totals per UTC day and per seller."""
    since = day_start_ms(now_ms) - (days - 1) * DAY_MS
    entries = spend_entries(conn, user_id, since)
    calls_of = _call_ids([e.ref for e in entries])
    seller_of: dict[int, int] = {}
    if calls_of:
        ids = sorted(set(calls_of.values()))
        marks = ",".join("?" * len(ids))
        seller_of = {r["id"]: r["seller_id"] for r in conn.execute(
            f"SELECT id, seller_id FROM calls WHERE id IN ({marks})", ids)}
    per_day: dict[str, int] = defaultdict(int)
    per_seller: dict[int, dict[str, int]] = defaultdict(lambda: {"calls": 0, "tips": 0})
    for e in entries:
        per_day[day_key(e.at_ms)] += e.musdt
        seller = seller_of.get(calls_of.get(e.ref or "", -1))
        if seller is not None:
            per_seller[seller]["tips" if e.kind == "tip" else "calls"] += e.musdt
    names: dict[int, str] = {}
    if per_seller:
        marks = ",".join("?" * len(per_seller))
        names = {r["id"]: r["display_name"] for r in conn.execute(
            f"SELECT id, display_name FROM users WHERE id IN ({marks})", list(per_seller))}
    sellers = sorted(per_seller.items(), key=lambda kv: -(kv[1]["calls"] + kv[1]["tips"]))
    return {
        "days": days,
        "total": musdt_to_tokens_str(sum(per_day.values())),
        "per_day": [{"day": d, "spent": musdt_to_tokens_str(v)}
                    for d, v in sorted(per_day.items(), reverse=True)],
        "per_seller": [{"seller_id": str(s), "display_name": names.get(s, ""),
                        "spent": musdt_to_tokens_str(v["calls"] + v["tips"]),
                        "calls": musdt_to_tokens_str(v["calls"]),
                        "tips": musdt_to_tokens_str(v["tips"])} for s, v in sellers],
        "limits": limits_json(limits_state(conn, user_id, now_ms)),
    }
