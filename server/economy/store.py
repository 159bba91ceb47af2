"""The economy around calls: tips, top-up bonuses (config tiers and the operator's
time-limited promotions) and what they cost, the buyer's own controls (daily and monthly
spending limits, self-exclusion, the 18+ and terms confirmation given at sign-up, the
leaderboard opt-in), spending history, seller analytics and the public supporters board.

Rules written down here (the README repeats them):
- Bonus: a buyer's top-up of at least a tier's from_usdt gets that tier's percent on top
  (the highest tier reached), plus the best promotion running when the top-up is credited;
  each part is rounded down to whole tokens. The bonus moves from `promo:bonuses` to the
  buyer's `available` in the same database transaction as the deposit credit, as its own
  ledger line (kind `bonus`). Sellers and admins get no bonus.
- Bonus tokens are spent last. The unspent bonus is min(bonus figure, available + held)
  and a buyer may withdraw only `withdrawable_musdt(available, held, bonus)` = available
  minus the unspent bonus (never below zero). A seller's earnings are the seller's own,
  whatever the buyer paid with: the platform bears the bonus (promo:bonuses goes negative).
- Bonus cannot be laundered through a colluding seller. Tips are paid from bought tokens
  only (the same figure a buyer may withdraw; beyond it 402 `bonus_not_tippable`). Minutes
  may be paid with bonus, so the bonus is kept below what would make spending a whole
  top-up on one's own seller pay: tier + promotion <= `max_bonus_ppm(lowest commission in
  force)`, i.e. (1 + bonus)(1 - commission + 0.1 %) <= 1, the 0.1 % covering the seller's
  side of the per-charge rounding. The config (tiers against billing and tip commission),
  every new promotion and every start (sellers' own commissions, promotions not ended)
  are checked against it.
- Spending = what left a buyer for sellers and the platform: call minutes settled, tips,
  minus call and dispute refunds (ledger kinds in SPEND_KINDS). Days and months are UTC.
- Limits: lowering (or setting a first one) takes effect at once and cancels a waiting
  raise; raising or removing waits limit_raise_delay_hours. A call's effective spending cap
  is min(the buyer's cap, what is left today, what is left this month), computed when the
  call starts (a call that runs past midnight keeps that cap); a call stopped by it ends
  like a spending cap (`spend_cap`). What is left counts what the buyer's calls under way
  may still charge (each call up to its effective cap: what it holds and what it can still
  hold) as spent, for calls and tips alike, so spending never passes a limit whatever the
  order. A limit lowered (or set) during a call lowers that call's cap at once (never below
  what it has charged and holds: the minute already held may still be used).
- Self-exclusion: for the chosen days no calls, no tips, no new top-up intents (transfers
  that arrive are still credited); it can be extended, never shortened.
- Tips: whole tokens, by the call's buyer, of a call that went live, while it is under way
  or up to tip_window_hours after it ended, from bought tokens only; commission as for the
  call's minutes unless economy.tip_commission_percent >= 0; the seller's part goes where
  the call's earnings go (`pending` during an earnings hold). One Idempotency-Key, one tip.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections import defaultdict
from decimal import Decimal
from xml.sax.saxutils import escape

from meterchat.core.bonus_bound import max_bonus_ppm
from meterchat.core.errors import (
    Conflict,
    Forbidden,
    NotFound,
    PaymentRequired,
    Unprocessable,
)
from meterchat.core.units import MUSDT_PER_TOKEN, musdt_to_tokens_str, musdt_to_usdt_str
from meterchat.money import billing, ledger

PPM = 1_000_000
DAY_MS = 86_400_000
HOUR_MS = 3_600_000
# What moves tokens between a buyer and a seller (+ the platform's commission); refunds
# count negative.
SPEND_KINDS = ("call_minute", "call_settle", "call_refund", "tip", "dispute_refund")
ACCEPTED_OR_ENDED = ("connecting", "live", "paused", "ended")


class SelfExcluded(Forbidden):
    code = "self_excluded"


class LimitReached(Forbidden):
    code = "daily_limit_reached"


class BonusNotTippable(PaymentRequired):
    code = "bonus_not_tippable"




# ---- pure rules -------------------------------------------------------------------------

def _percent(ppm: int) -> str:
    return format((Decimal(ppm) / 10_000).normalize(), "f")


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso_ms(value: object, name: str) -> int:
    """An ISO 8601 time (UTC if no offset is given) as integer ms."""
    if not isinstance(value, str):
        raise Unprocessable(f"{name} must be an ISO 8601 time like 2025-01-31T00:00:00Z",
                            "invalid_type")
    try:
        t = dt.datetime.fromisoformat(value)
    except ValueError:
        raise Unprocessable(f"{name} must be an ISO 8601 time like 2025-01-31T00:00:00Z",
                            "invalid_value") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return int(t.timestamp() * 1000)


def percent_ppm(text: str | None) -> int:
    """"12.5" percent -> 125000 ppm; above 0, at most 100, up to 4 decimals."""
    try:
        d = Decimal(str(text))
    except ArithmeticError:
        d = Decimal("NaN")
    if not d.is_finite() or not Decimal(0) < d <= Decimal(100) or \
            d * 10_000 != (d * 10_000).to_integral_value():
        raise Unprocessable("percent must be above 0 and at most 100, with up to 4 decimals",
                            "invalid_value")
    return int(d * 10_000)


def floor_whole_tokens(musdt: int) -> int:
    return musdt // MUSDT_PER_TOKEN * MUSDT_PER_TOKEN


def whole_tokens(value: object, name: str = "tokens") -> int:
    """A whole number of tokens from JSON (an integer or a string of digits)."""
    if isinstance(value, bool) or value is None:
        raise Unprocessable(f"{name} must be a whole number of tokens", "invalid_type")
    if isinstance(value, int):
        n = value
    elif isinstance(value, str | float):
        try:
            d = Decimal(str(value).strip())
        except ArithmeticError:
            raise Unprocessable(f"{name} must be a whole number of tokens",
                                "invalid_value") from None
        if not d.is_finite() or d != d.to_integral_value():
            raise Unprocessable(f"{name}: tips are whole tokens only", "whole_tokens_only")
        n = int(d)
    else:
        raise Unprocessable(f"{name} must be a whole number of tokens", "invalid_type")
    if n < 1:
        raise Unprocessable(f"{name} must be at least 1", "invalid_value")
    return n


def tier_ppm_for(amount_musdt: int, tiers: list[tuple[int, int]]) -> int:
    """The percent (ppm) of the highest tier the amount reaches; 0 below every tier."""
    best_from, best = -1, 0
    for from_musdt, ppm in tiers:
        if amount_musdt >= from_musdt and from_musdt > best_from:
            best_from, best = from_musdt, ppm
    return best


def bonus_parts(amount_musdt: int, tier_ppm: int, promo_ppm: int) -> tuple[int, int]:
    """(tier bonus, promotion bonus) in µUSDT, each rounded down to whole tokens."""
    return (floor_whole_tokens(amount_musdt * tier_ppm // PPM),
            floor_whole_tokens(amount_musdt * promo_ppm // PPM))


def unspent_bonus_musdt(bonus_musdt: int, available_musdt: int, held_musdt: int) -> int:
    """Bonus tokens are spent last: what is left of them never exceeds the balance."""
    return max(0, min(bonus_musdt, available_musdt + held_musdt))


def withdrawable_musdt(available_musdt: int, held_musdt: int, bonus_musdt: int) -> int:
    """What a user may withdraw: available minus the unspent bonus (held tokens are paid
    tokens first, since bonus is spent last). The withdrawals code refuses more than this."""
    return max(0, available_musdt - unspent_bonus_musdt(bonus_musdt, available_musdt,
                                                        held_musdt))


def bonus_after_topup(bonus_musdt: int, balance_before_musdt: int, new_bonus_musdt: int) -> int:
    """The bonus figure after a top-up: what was left of the old bonus, plus the new one."""
    return max(0, min(bonus_musdt, balance_before_musdt)) + new_bonus_musdt


def effective_limit(limit: int | None, pending: int | None, pending_from_ms: int | None,
                    now_ms: int) -> int | None:
    if pending_from_ms is not None and now_ms >= pending_from_ms:
        return pending
    return limit


def change_limit(limit: int | None, pending: int | None, pending_from_ms: int | None,
                 new: int | None, now_ms: int, delay_ms: int,
                 ) -> tuple[int | None, int | None, int | None]:
    """(limit, pending, pending_from) after the buyer asks for `new` (None = no limit):
    lowering takes effect at once (and drops a waiting raise), raising or removing waits."""
    current = effective_limit(limit, pending, pending_from_ms, now_ms)
    if new == current:
        return current, None, None
    if new is not None and (current is None or new < current):
        return new, None, None
    return current, new, now_ms + delay_ms


def day_start_ms(now_ms: int) -> int:
    return now_ms - now_ms % DAY_MS


def month_start_ms(now_ms: int) -> int:
    t = dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC)
    return int(dt.datetime(t.year, t.month, 1, tzinfo=dt.UTC).timestamp() * 1000)


def left_of(limit: int | None, committed_musdt: int) -> int | None:
    return None if limit is None else max(0, limit - committed_musdt)


def effective_cap(spend_cap_musdt: int | None, *lefts: int | None) -> int | None:
    values = [v for v in (spend_cap_musdt, *lefts) if v is not None]
    return min(values) if values else None




def tip_open(state: str, ended_at_ms: int | None, now_ms: int, window_ms: int,
             went_live: bool) -> str | None:
    """Why a call cannot be tipped now (an error code), or None. Only a call that went
    live can be tipped."""
    if state == "ringing":
        return "call_not_started"
    if state not in ACCEPTED_OR_ENDED or (state == "ended" and not went_live):
        return "call_not_taken_place"
    if not went_live:
        return "call_not_live"
    if state == "ended" and ended_at_ms is not None and now_ms - ended_at_ms > window_ms:
        return "tip_window_closed"
    return None


def day_key(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d")


def week_key(ms: int) -> str:
    d = dt.datetime.fromtimestamp(ms / 1000, dt.UTC).date()
    return (d - dt.timedelta(days=d.weekday())).isoformat()


def month_key(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m")


def buckets(entries: list[tuple[int, int]], now_ms: int) -> dict[str, list[dict]]:
    """Amounts (at_ms, musdt) summed per UTC day (last 30), week (last 12, from Monday)
    and month (last 12), oldest first, with empty periods as zero."""
    today = dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC).date()
    days = [(today - dt.timedelta(days=i)).isoformat() for i in range(29, -1, -1)]
    monday = today - dt.timedelta(days=today.weekday())
    weeks = [(monday - dt.timedelta(weeks=i)).isoformat() for i in range(11, -1, -1)]
    months = []
    y, m = today.year, today.month
    for _ in range(12):
        months.append(f"{y:04d}-{m:02d}")
        y, m = (y, m - 1) if m > 1 else (y - 1, 12)
    months.reverse()
    sums: dict[str, dict[str, int]] = {"day": defaultdict(int), "week": defaultdict(int),
                                       "month": defaultdict(int)}
    for at, amount in entries:
        sums["day"][day_key(at)] += amount
        sums["week"][week_key(at)] += amount
        sums["month"][month_key(at)] += amount
    return {
        "per_day": [{"day": k, "earned": musdt_to_tokens_str(sums["day"].get(k, 0))}
                    for k in days],
        "per_week": [{"week_of": k, "earned": musdt_to_tokens_str(sums["week"].get(k, 0))}
                     for k in weeks],
        "per_month": [{"month": k, "earned": musdt_to_tokens_str(sums["month"].get(k, 0))}
                      for k in months],
    }


def chart_svg(title: str, bars: list[tuple[str, int]], width: int = 640,
              height: int = 220) -> str:
    """A bar chart as a standalone SVG document (no script, no external resources).
    bars: (label, µUSDT); labels are shown for the first, middle and last bar."""
    pad_l, pad_r, pad_t, pad_b = 56, 12, 28, 28
    plot_w, plot_h = width - pad_l - pad_r, height - pad_t - pad_b
    top = max([v for _, v in bars] + [0])
    scale_top = top if top > 0 else MUSDT_PER_TOKEN
    n = max(len(bars), 1)
    slot = plot_w / n
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}"'
        ' font-family="system-ui, sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="{pad_l}" y="16" font-size="13" fill="#222">{escape(title)}</text>',
        f'<line x1="{pad_l}" y1="{pad_t + plot_h}" x2="{width - pad_r}" y2="{pad_t + plot_h}"'
        ' stroke="#999"/>',
        f'<text x="{pad_l - 6}" y="{pad_t + 4}" text-anchor="end" fill="#555">'
        f"{escape(musdt_to_tokens_str(top))}</text>",
        f'<text x="{pad_l - 6}" y="{pad_t + plot_h}" text-anchor="end" fill="#555">0</text>',
    ]
    for i, (label, value) in enumerate(bars):
        h = 0.0 if value <= 0 else max(1.0, plot_h * value / scale_top)
        x = pad_l + i * slot + slot * 0.15
        y = pad_t + plot_h - h
        out.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}"'
            f' fill="#3b6fd8"><title>{escape(label)}: {escape(musdt_to_tokens_str(value))}'
            " tokens</title></rect>")
        if i in (0, n // 2, n - 1):
            out.append(
                f'<text x="{pad_l + (i + 0.5) * slot:.1f}" y="{height - 8}"'
                f' text-anchor="middle" fill="#555">{escape(label)}</text>')
    out.append("</svg>")
    return "\n".join(out)


# ---- database: consents, tiers, bonuses --------------------------------------------------

def record_consent(conn: sqlite3.Connection, user_id: int, at_ms: int) -> None:
    conn.execute("INSERT OR IGNORE INTO user_consents VALUES (?, ?, ?)", (user_id, at_ms, at_ms))


def consent_of(conn: sqlite3.Connection, user_id: int) -> dict | None:
    row = conn.execute("SELECT adult_confirmed_at_ms, terms_confirmed_at_ms FROM user_consents"
                       " WHERE user_id = ?", (user_id,)).fetchone()
    if row is None:
        return None
    return {"adult_confirmed_at": iso(row[0]), "terms_confirmed_at": iso(row[1])}


def sync_tiers_tx(conn: sqlite3.Connection, tiers: list[tuple[int, int]]) -> None:
    """Make the stored tiers the configured ones (run at start-up)."""
    conn.execute("DELETE FROM bonus_tiers")
    conn.executemany("INSERT INTO bonus_tiers VALUES (?, ?)", tiers)


def _stored_tiers(conn: sqlite3.Connection) -> list[tuple[int, int]]:
    return [(r[0], r[1]) for r in conn.execute("SELECT from_musdt, percent_ppm FROM bonus_tiers")]


def bonus_figure(conn: sqlite3.Connection, user_id: int) -> int:
    row = conn.execute("SELECT bonus_musdt FROM bonus_balances WHERE user_id = ?",
                       (user_id,)).fetchone()
    return row[0] if row else 0


def grant_deposit_bonus_tx(conn: sqlite3.Connection, user_id: int, amount_musdt: int,
                           deposit_ref: str, at_ms: int) -> int:
    """Inside the deposit's credit transaction, after the credit: give a buyer the bonus
    of the tier and promotion this top-up reaches. Returns the bonus in µUSDT."""
    if conn.execute("SELECT 1 FROM bonus_grants WHERE deposit_ref = ?",
                    (deposit_ref,)).fetchone():
        return 0
    role = conn.execute("SELECT role FROM users WHERE id = ?", (user_id,)).fetchone()
    if role is None or role[0] != "buyer" or amount_musdt <= 0:
        return 0
    tier_ppm = tier_ppm_for(amount_musdt, _stored_tiers(conn))
    promo = conn.execute(
        "SELECT id, percent_ppm FROM promotions WHERE starts_at_ms <= ? AND ends_at_ms > ?"
        " AND from_musdt <= ? ORDER BY percent_ppm DESC, id LIMIT 1",
        (at_ms, at_ms, amount_musdt)).fetchone()
    tier_bonus, promo_bonus = bonus_parts(amount_musdt, tier_ppm, promo[1] if promo else 0)
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
         promo[0] if promo and promo_bonus else None, promo_bonus, at_ms))
    new_figure = bonus_after_topup(bonus_figure(conn, user_id), before, total)
    conn.execute(
        "INSERT INTO bonus_balances VALUES (?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET"
        " bonus_musdt = excluded.bonus_musdt, updated_at_ms = excluded.updated_at_ms",
        (user_id, new_figure, at_ms))
    return total


def bonus_view(conn: sqlite3.Connection, user_id: int) -> dict:
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
    """For the withdrawals code: the most this user may withdraw now, in µUSDT."""
    bal = ledger.user_balances(conn, user_id)
    return withdrawable_musdt(bal["available"], bal["held"], bonus_figure(conn, user_id))


def check_withdrawable(conn: sqlite3.Connection, user_id: int, amount_musdt: int) -> None:
    """The withdrawals code asks this before moving tokens out: unspent bonus stays."""
    bal = ledger.user_balances(conn, user_id)
    figure = bonus_figure(conn, user_id)
    if amount_musdt <= bal["available"] and amount_musdt > withdrawable_musdt(
            bal["available"], bal["held"], figure):
        raise PaymentRequired(
            f"bonus tokens can be spent on calls but not withdrawn; you can withdraw up to "
            f"{musdt_to_tokens_str(withdrawable_musdt(bal['available'], bal['held'], figure))}"
            " tokens", "bonus_not_withdrawable")


# ---- database: promotions (operator) ---------------------------------------------------

def _audit_promotion(conn: sqlite3.Connection, admin_id: int, action: str,
                     promotion_id: int | None, detail: str, at_ms: int) -> None:
    conn.execute(
        "INSERT INTO audit_log (at_ms, actor_user_id, action, target, detail)"
        " VALUES (?, ?, ?, ?, ?)",
        (at_ms, admin_id, action, f"promotion:{promotion_id}", detail))


def lowest_commission(conn: sqlite3.Connection, config_floor_ppm: int) -> tuple[int, str]:
    """(ppm, where it comes from): the lowest commission a buyer's spending can meet, the
    config's (minutes, tips) or a seller's own."""
    row = conn.execute("SELECT MIN(commission_ppm) FROM sellers").fetchone()
    if row[0] is not None and row[0] < config_floor_ppm:
        return row[0], "a seller's own commission"
    return config_floor_ppm, "billing.commission_percent / economy.tip_commission_percent"


def _max_tier_ppm(conn: sqlite3.Connection) -> int:
    return max((p for _, p in _stored_tiers(conn)), default=0)


def bonus_bound_problem(conn: sqlite3.Connection, config_floor_ppm: int,
                        now_ms: int) -> str | None:
    """Checked at every start: why the bonus in force (highest tier + best promotion not
    yet ended) would let a buyer and a seller who work together take out more than a
    top-up cost, or None."""
    lowest, source = lowest_commission(conn, config_floor_ppm)
    tier = _max_tier_ppm(conn)
    promo = conn.execute("SELECT COALESCE(MAX(percent_ppm), 0) FROM promotions"
                         " WHERE ends_at_ms > ?", (now_ms,)).fetchone()[0]
    allowed = max_bonus_ppm(lowest)
    if tier + promo <= allowed:
        return None
    return (f"top-up bonus too high for the commission: the highest tier ({_percent(tier)} %)"
            f" plus the best promotion not yet ended ({_percent(promo)} %) give"
            f" {_percent(tier + promo)} %, but with the lowest commission in force"
            f" ({_percent(lowest)} %, {source}) a buyer who spends a top-up and its bonus on"
            f" a colluding seller would let that seller withdraw more than the top-up cost;"
            f" tier plus promotion may be at most {_percent(allowed)} %. Lower"
            " economy.bonus_tiers, end the promotion or raise the commission.")


def create_promotion_tx(conn: sqlite3.Connection, name: str, percent_ppm: int,
                        from_musdt: int, starts_ms: int, ends_ms: int, admin_id: int,
                        at_ms: int, config_floor_ppm: int) -> dict:
    if ends_ms <= starts_ms:
        raise Unprocessable("ends_at must be after starts_at", "invalid_period")
    lowest, _ = lowest_commission(conn, config_floor_ppm)
    tier = _max_tier_ppm(conn)
    allowed = max_bonus_ppm(lowest) - tier
    if percent_ppm > allowed:
        most = (f"a promotion may be at most {_percent(allowed)} % now" if allowed > 0
                else "no promotion is possible now")
        raise Unprocessable(
            f"a {_percent(percent_ppm)} % promotion on top of the highest tier"
            f" ({_percent(tier)} %) with the lowest commission in force ({_percent(lowest)} %)"
            f" would let a buyer and a seller who work together take out more than the"
            f" top-up cost; {most}", "bonus_too_high")
    cur = conn.execute(
        "INSERT INTO promotions (name, percent_ppm, from_musdt, starts_at_ms, ends_at_ms,"
        " created_by, created_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (name, percent_ppm, from_musdt, starts_ms, ends_ms, admin_id, at_ms))
    _audit_promotion(conn, admin_id, "promotion.create", cur.lastrowid,
                     f"{name}: {Decimal(percent_ppm) / 10_000}% from {iso(starts_ms)} to "
                     f"{iso(ends_ms)}", at_ms)
    return next(p for p in promotions_view(conn, at_ms)["promotions"]
                if p["id"] == str(cur.lastrowid))


def end_promotion_tx(conn: sqlite3.Connection, promotion_id: int, admin_id: int,
                     at_ms: int) -> dict:
    """End a promotion now. One that has not started yet is withdrawn: its period becomes
    the millisecond before now, so no top-up can fall in it. The audit log keeps the period
    it had."""
    row = conn.execute("SELECT name, starts_at_ms, ends_at_ms FROM promotions WHERE id = ?",
                       (promotion_id,)).fetchone()
    if row is None:
        raise NotFound("no such promotion", "promotion_not_found")
    name, starts_ms, ends_ms = row
    if ends_ms <= at_ms:
        raise Conflict(f"this promotion ended at {iso(ends_ms)}", "promotion_over")
    new_starts = starts_ms if starts_ms < at_ms else at_ms - 1
    conn.execute("UPDATE promotions SET starts_at_ms = ?, ends_at_ms = ? WHERE id = ?",
                 (new_starts, at_ms, promotion_id))
    _audit_promotion(conn, admin_id, "promotion.end", promotion_id,
                     f"{name}: ended early (was from {iso(starts_ms)} to {iso(ends_ms)})",
                     at_ms)
    return next(p for p in promotions_view(conn, at_ms)["promotions"]
                if p["id"] == str(promotion_id))


def promotions_view(conn: sqlite3.Connection, now_ms: int) -> dict:
    """Tiers, promotions and what each has cost in bonus tokens."""
    promos = []
    for r in conn.execute(
        "SELECT p.id, p.name, p.percent_ppm, p.from_musdt, p.starts_at_ms, p.ends_at_ms,"
        " COUNT(g.id), COALESCE(SUM(g.promo_bonus_musdt), 0) FROM promotions p"
        " LEFT JOIN bonus_grants g ON g.promotion_id = p.id GROUP BY p.id ORDER BY p.id DESC"
    ):
        promos.append({
            "id": str(r[0]), "name": r[1], "percent": _percent(r[2]),
            "from_usdt": musdt_to_usdt_str(r[3]), "starts_at": iso(r[4]), "ends_at": iso(r[5]),
            "active": r[4] <= now_ms < r[5], "top_ups": r[6], "cost": musdt_to_tokens_str(r[7]),
        })
    tier_cost, promo_cost, grants = conn.execute(
        "SELECT COALESCE(SUM(tier_bonus_musdt), 0), COALESCE(SUM(promo_bonus_musdt), 0),"
        " COUNT(*) FROM bonus_grants").fetchone()
    tiers = [{"from_usdt": musdt_to_usdt_str(f), "percent": _percent(p)}
             for f, p in sorted(_stored_tiers(conn))]
    return {
        "tiers": tiers,
        "promotions": promos,
        "cost": {
            "tiers": musdt_to_tokens_str(tier_cost),
            "promotions": musdt_to_tokens_str(promo_cost),
            "total": musdt_to_tokens_str(tier_cost + promo_cost),
            "top_ups_with_bonus": grants,
            # The ledger's own figure: what promo:bonuses has given, net.
            "promo_account_given": musdt_to_tokens_str(-ledger.balance(conn,
                                                                       ledger.PROMO_BONUSES)),
        },
    }


# ---- database: buyer controls and spending ---------------------------------------------

_CONTROL_COLS = ("daily_limit_musdt, monthly_limit_musdt, pending_daily_musdt,"
                 " pending_daily_from_ms, pending_monthly_musdt, pending_monthly_from_ms,"
                 " excluded_until_ms, show_on_leaderboard")


def _controls(conn: sqlite3.Connection, user_id: int) -> tuple:
    row = conn.execute(f"SELECT {_CONTROL_COLS} FROM buyer_controls WHERE user_id = ?",
                       (user_id,)).fetchone()
    return tuple(row) if row else (None, None, None, None, None, None, None, 0)


def _ensure_controls(conn: sqlite3.Connection, user_id: int, at_ms: int) -> None:
    conn.execute("INSERT OR IGNORE INTO buyer_controls (user_id, updated_at_ms) VALUES (?, ?)",
                 (user_id, at_ms))


def spend_entries(conn: sqlite3.Connection, user_id: int, since_ms: int,
                  ) -> list[tuple[int, str | None, str, int]]:
    """(at_ms, ref, kind, spent µUSDT) per ledger transaction since a moment: what left the
    buyer's available + held for sellers and the platform (negative for refunds)."""
    accts = [r[0] for r in conn.execute(
        "SELECT id FROM accounts WHERE name IN (?, ?)",
        (ledger.user_account(user_id), ledger.user_account(user_id, "held")))]
    if not accts:
        return []
    marks = ",".join("?" * len(accts))
    kinds = ",".join("?" * len(SPEND_KINDS))
    rows = conn.execute(
        f"SELECT t.created_at_ms, t.ref, t.kind, -SUM(p.amount_musdt) FROM postings p"
        f" JOIN ledger_tx t ON t.id = p.tx_id WHERE p.account_id IN ({marks})"
        f" AND t.kind IN ({kinds}) AND t.created_at_ms >= ? GROUP BY t.id ORDER BY t.id",
        (*accts, *SPEND_KINDS, since_ms)).fetchall()
    return [(r[0], r[1], r[2], r[3]) for r in rows if r[3] != 0]


def spent_since(conn: sqlite3.Connection, user_id: int, since_ms: int) -> int:
    return sum(e[3] for e in spend_entries(conn, user_id, since_ms))


def may_still_take(cap_musdt: int | None, charged_musdt: int, held_musdt: int,
                   available_musdt: int) -> int:
    """What one call under way may still charge: up to its effective cap (never less than
    it holds); a call without a cap what it holds and all the buyer has available."""
    if cap_musdt is None:
        return held_musdt + available_musdt
    return max(held_musdt, cap_musdt - charged_musdt)


def _active_calls(conn: sqlite3.Connection, buyer_id: int) -> list[tuple]:
    """(id, cap, charged, held) of the buyer's calls under way."""
    marks = ",".join("?" * len(billing.ACTIVE_STATES))
    return conn.execute(
        f"SELECT id, spend_cap_musdt, charged_musdt, held_musdt FROM calls"
        f" WHERE buyer_id = ? AND state IN ({marks}) ORDER BY id",
        (buyer_id, *billing.ACTIVE_STATES)).fetchall()


def limits_state(conn: sqlite3.Connection, user_id: int, now_ms: int) -> dict:
    """Effective limits, what is committed today and this month (spent, plus what the
    buyer's calls under way may still take), what is left, and the self-exclusion, in
    µUSDT (None = no limit). The one limit check of calls and tips reads it."""
    c = _controls(conn, user_id)
    daily = effective_limit(c[0], c[2], c[3], now_ms)
    monthly = effective_limit(c[1], c[4], c[5], now_ms)
    held = ledger.balance(conn, ledger.user_account(user_id, "held"))
    available = ledger.balance(conn, ledger.user_account(user_id))
    reserved = sum(may_still_take(cap, charged, h, available)
                   for _, cap, charged, h in _active_calls(conn, user_id))
    month_spent = spent_since(conn, user_id, month_start_ms(now_ms))
    day_spent = spent_since(conn, user_id, day_start_ms(now_ms))
    return {
        "daily": daily, "monthly": monthly,
        "daily_pending": (c[2], c[3]) if c[3] is not None and now_ms < c[3] else None,
        "monthly_pending": (c[4], c[5]) if c[5] is not None and now_ms < c[5] else None,
        "spent_today": day_spent, "spent_this_month": month_spent, "held": held,
        "reserved": reserved,
        "daily_left": left_of(daily, day_spent + reserved),
        "monthly_left": left_of(monthly, month_spent + reserved),
        "excluded_until": c[6] if c[6] is not None and c[6] > now_ms else None,
        "show_on_leaderboard": bool(c[7]),
    }


def check_not_excluded(conn: sqlite3.Connection, user_id: int, now_ms: int) -> None:
    row = conn.execute("SELECT excluded_until_ms FROM buyer_controls WHERE user_id = ?",
                       (user_id,)).fetchone()
    if row is not None and row[0] is not None and row[0] > now_ms:
        raise SelfExcluded(
            f"you have excluded yourself until {iso(row[0])}: no calls, tips or top-ups "
            "until then (transfers that arrive are still credited)")


def _refuse_over_limit(state: dict, amount_musdt: int, what: str) -> None:
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


def fit_calls_to_limits(conn: sqlite3.Connection, buyer_id: int, now_ms: int) -> None:
    """After a limit is lowered or set: lower the caps of the buyer's calls under way so
    that what they may still take fits in what is left (never below what a call has
    charged and holds)."""
    calls = _active_calls(conn, buyer_id)
    if not calls:
        return
    state = limits_state(conn, buyer_id, now_ms)
    held_all = sum(h for *_, h in calls)
    caps = {cid: cap for cid, cap, _, _ in calls}
    for limit, spent in ((state["daily"], state["spent_today"]),
                         (state["monthly"], state["spent_this_month"])):
        if limit is None:
            continue
        pool = max(0, limit - spent - held_all)  # beyond what is held already
        for cid, _, charged, held in calls:
            cap = caps[cid]
            room = None if cap is None else max(0, cap - charged - held)
            extra = pool if room is None else min(room, pool)
            pool -= extra
            fitted = charged + held + extra
            caps[cid] = fitted if cap is None else min(cap, fitted)
    for cid, cap, _, _ in calls:
        if caps[cid] != cap:
            # A cap is positive (the schema's CHECK); one below a segment ends the call at
            # its next minute boundary like any spending cap.
            conn.execute("UPDATE calls SET spend_cap_musdt = ? WHERE id = ?",
                         (max(1, caps[cid]), cid))


def call_cap(conn: sqlite3.Connection, buyer_id: int, spend_cap_musdt: int | None,
             segment_price_musdt: int, now_ms: int) -> int | None:
    """At call start: refuse at a limit, else the call's effective spending cap."""
    state = limits_state(conn, buyer_id, now_ms)
    _refuse_over_limit(state, segment_price_musdt, "a call")
    return effective_cap(spend_cap_musdt, state["daily_left"], state["monthly_left"])


def set_limits_tx(conn: sqlite3.Connection, user_id: int, changes: dict[str, int | None],
                  delay_ms: int, now_ms: int) -> dict:
    """changes: {"daily"|"monthly": µUSDT or None (no limit)}; absent keys stay."""
    _ensure_controls(conn, user_id, now_ms)
    c = _controls(conn, user_id)
    for name, (i_lim, i_pend, i_from) in (("daily", (0, 2, 3)), ("monthly", (1, 4, 5))):
        if name not in changes:
            continue
        lim, pend, pfrom = change_limit(c[i_lim], c[i_pend], c[i_from], changes[name], now_ms,
                                        delay_ms)
        conn.execute(
            f"UPDATE buyer_controls SET {name}_limit_musdt = ?, pending_{name}_musdt = ?,"
            f" pending_{name}_from_ms = ?, updated_at_ms = ? WHERE user_id = ?",
            (lim, pend, pfrom, now_ms, user_id))
    fit_calls_to_limits(conn, user_id, now_ms)
    return limits_json(limits_state(conn, user_id, now_ms))


def self_exclude_tx(conn: sqlite3.Connection, user_id: int, days: int, now_ms: int) -> dict:
    _ensure_controls(conn, user_id, now_ms)
    until = now_ms + days * DAY_MS
    conn.execute(
        "UPDATE buyer_controls SET excluded_until_ms = MAX(COALESCE(excluded_until_ms, 0), ?),"
        " updated_at_ms = ? WHERE user_id = ?", (until, now_ms, user_id))
    return limits_json(limits_state(conn, user_id, now_ms))


def set_privacy_tx(conn: sqlite3.Connection, user_id: int, show: bool, now_ms: int) -> dict:
    _ensure_controls(conn, user_id, now_ms)
    conn.execute("UPDATE buyer_controls SET show_on_leaderboard = ?, updated_at_ms = ?"
                 " WHERE user_id = ?", (1 if show else 0, now_ms, user_id))
    return {"show_on_leaderboard": show}


def _tok(v: int | None) -> str | None:
    return None if v is None else musdt_to_tokens_str(v)


def limits_json(s: dict) -> dict:
    def pending(p):
        return None if p is None else {"limit": _tok(p[0]), "from": iso(p[1])}

    return {
        "daily": _tok(s["daily"]), "monthly": _tok(s["monthly"]),
        "daily_pending": pending(s["daily_pending"]),
        "monthly_pending": pending(s["monthly_pending"]),
        "spent_today": _tok(s["spent_today"]), "spent_this_month": _tok(s["spent_this_month"]),
        "left_today": _tok(s["daily_left"]), "left_this_month": _tok(s["monthly_left"]),
        "self_excluded_until": iso(s["excluded_until"]),
        "show_on_leaderboard": s["show_on_leaderboard"],
    }


def _call_ids(refs: list[str | None]) -> dict[str, int]:
    out = {}
    for ref in refs:
        if ref and ref.startswith("call:"):
            try:
                out[ref] = int(ref.split(":")[1])
            except (IndexError, ValueError):
                continue
    return out


def spending_view(conn: sqlite3.Connection, user_id: int, days: int, now_ms: int) -> dict:
    """A buyer's spending over the last `days` days: totals per UTC day and per seller."""
    since = day_start_ms(now_ms) - (days - 1) * DAY_MS
    entries = spend_entries(conn, user_id, since)
    calls_of = _call_ids([e[1] for e in entries])
    seller_of = {}
    if calls_of:
        ids = sorted(set(calls_of.values()))
        marks = ",".join("?" * len(ids))
        seller_of = dict(conn.execute(
            f"SELECT id, seller_id FROM calls WHERE id IN ({marks})", ids).fetchall())
    per_day: dict[str, int] = defaultdict(int)
    per_seller: dict[int, dict[str, int]] = defaultdict(lambda: {"calls": 0, "tips": 0})
    for at, ref, kind, amount in entries:
        per_day[day_key(at)] += amount
        seller = seller_of.get(calls_of.get(ref or "", -1))
        if seller is not None:
            per_seller[seller]["tips" if kind == "tip" else "calls"] += amount
    names = {}
    if per_seller:
        marks = ",".join("?" * len(per_seller))
        names = dict(conn.execute(f"SELECT id, display_name FROM users WHERE id IN ({marks})",
                                  list(per_seller)).fetchall())
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


# ---- database: tips --------------------------------------------------------------------

def tip_json(r) -> dict:
    return {"id": str(r[0]), "call_id": str(r[1]), "buyer_id": str(r[2]),
            "seller_id": str(r[3]), "tokens": musdt_to_tokens_str(r[4]),
            "seller_receives": musdt_to_tokens_str(r[5]), "commission": musdt_to_tokens_str(r[6]),
            "at": iso(r[7])}


_TIP_COLS = ("id, call_id, buyer_id, seller_id, amount_musdt, seller_musdt, commission_musdt,"
             " created_at_ms")


def tip_tx(conn: sqlite3.Connection, buyer_id: int, call_id: int, tokens: int, key: str,
           window_ms: int, tip_commission_ppm: int | None, now_ms: int,
           ) -> tuple[dict, bool]:
    """Tip the seller of a call once per Idempotency-Key. Returns (tip, replayed)."""
    idem = f"tip:{buyer_id}:{key}"
    amount = tokens * MUSDT_PER_TOKEN
    seen = conn.execute(f"SELECT {_TIP_COLS} FROM tips WHERE idem_key = ?", (idem,)).fetchone()
    if seen is not None:
        if seen[1] != call_id or seen[4] != amount:
            raise Conflict("this Idempotency-Key was used for another tip; use a new key",
                           "idempotency_key_reused")
        return tip_json(seen), True
    # The seller's part goes where the call's earnings go (`pending` during an earnings hold).
    call = conn.execute(
        "SELECT c.buyer_id, c.seller_id, c.state, c.ended_at_ms, c.commission_ppm, a.name,"
        " c.live_at_ms FROM calls c JOIN accounts a ON a.id = c.seller_acct WHERE c.id = ?",
        (call_id,)).fetchone()
    if call is None or buyer_id not in (call[0], call[1]):
        raise NotFound("no such call of yours", "call_not_found")
    if call[0] != buyer_id:
        raise Forbidden("only the buyer of a call tips", "not_buyer")
    why = tip_open(call[2], call[3], now_ms, window_ms, call[6] is not None)
    if why is not None:
        raise Conflict({
            "call_not_started": "the call has not been accepted yet",
            "call_not_live": "the call has not gone live yet: tips are for a call that took"
                             " place",
            "call_not_taken_place": "this call did not take place (it never went live)",
            "tip_window_closed": f"tips are possible up to {window_ms // HOUR_MS} hours after"
                                 " a call",
        }[why], why)
    check_not_excluded(conn, buyer_id, now_ms)
    _refuse_over_limit(limits_state(conn, buyer_id, now_ms), amount, "this tip")
    _refuse_bonus_tip(conn, buyer_id, amount)
    ppm = call[4] if tip_commission_ppm is None else tip_commission_ppm
    seller_part, commission = billing.commission_split(amount, ppm)
    result = ledger.post(conn, "tip", [
        (ledger.user_account(buyer_id), -amount),
        (call[5], seller_part),
        (ledger.REVENUE_COMMISSION, commission),
    ], idem_key=idem, ref=f"call:{call_id}", at_ms=now_ms)
    cur = conn.execute(
        "INSERT INTO tips (idem_key, call_id, buyer_id, seller_id, amount_musdt, seller_musdt,"
        " commission_musdt, ledger_tx_id, created_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (idem, call_id, buyer_id, call[1], amount, seller_part, commission, result.tx_id,
         now_ms))
    row = conn.execute(f"SELECT {_TIP_COLS} FROM tips WHERE id = ?", (cur.lastrowid,)).fetchone()
    return tip_json(row), False


def _refuse_bonus_tip(conn: sqlite3.Connection, buyer_id: int, amount_musdt: int) -> None:
    """A tip is paid from bought tokens only: what the buyer could withdraw (available minus
    the unspent bonus). Bonus tokens pay for call minutes, never become a seller's earnings
    through a tip."""
    bal = ledger.user_balances(conn, buyer_id)
    if amount_musdt > bal["available"]:
        raise ledger.InsufficientFunds(
            f"not enough tokens: {musdt_to_tokens_str(bal['available'])} available")
    paid = withdrawable_musdt(bal["available"], bal["held"], bonus_figure(conn, buyer_id))
    if amount_musdt > paid:
        bonus = unspent_bonus_musdt(bonus_figure(conn, buyer_id), bal["available"],
                                    bal["held"])
        raise BonusNotTippable(
            f"tips are paid from tokens you bought; {musdt_to_tokens_str(bonus)} of your tokens"
            " are bonus tokens, which pay for call minutes but cannot be tipped; you can tip"
            f" up to {musdt_to_tokens_str(floor_whole_tokens(paid))} tokens now")


def tips_of_call(conn: sqlite3.Connection, call_id: int) -> list[dict]:
    return [tip_json(r) for r in conn.execute(
        f"SELECT {_TIP_COLS} FROM tips WHERE call_id = ? ORDER BY id", (call_id,))]


# ---- database: seller analytics and the supporters board -------------------------------

def _earning_entries(conn: sqlite3.Connection, seller_id: int, since_ms: int,
                     ) -> list[tuple[int, str | None, str, int]]:
    accts = [r[0] for r in conn.execute(
        "SELECT id FROM accounts WHERE name IN (?, ?)",
        (ledger.user_account(seller_id), ledger.user_account(seller_id, "pending")))]
    if not accts:
        return []
    marks = ",".join("?" * len(accts))
    kinds = ",".join("?" * len(SPEND_KINDS))
    return [tuple(r) for r in conn.execute(
        f"SELECT t.created_at_ms, t.ref, t.kind, SUM(p.amount_musdt) FROM postings p"
        f" JOIN ledger_tx t ON t.id = p.tx_id WHERE p.account_id IN ({marks})"
        f" AND t.kind IN ({kinds}) AND t.created_at_ms >= ? GROUP BY t.id",
        (*accts, *SPEND_KINDS, since_ms))]


def supporter_totals(conn: sqlite3.Connection, seller_id: int) -> list[tuple[int, str, int]]:
    """(buyer_id, display_name, tokens paid in µUSDT) for calls and tips, biggest first."""
    rows = conn.execute(
        "SELECT b, u.display_name, SUM(amt) AS total FROM ("
        " SELECT buyer_id AS b, charged_musdt AS amt FROM calls WHERE seller_id = ?"
        " UNION ALL SELECT buyer_id, amount_musdt FROM tips WHERE seller_id = ?)"
        " JOIN users u ON u.id = b WHERE u.banned_at_ms IS NULL"
        " GROUP BY b HAVING total > 0 ORDER BY total DESC, b",
        (seller_id, seller_id)).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def seller_stats(conn: sqlite3.Connection, seller_id: int, now_ms: int) -> dict:
    entries = _earning_entries(conn, seller_id, 0)
    view = buckets([(e[0], e[3]) for e in entries], now_ms)
    total = sum(e[3] for e in entries)
    tips_total = sum(e[3] for e in entries if e[2] == "tip")
    n_calls, tenths, avg_live_ms = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(billed_tenths), 0), AVG(live_ms) FROM calls"
        " WHERE seller_id = ? AND state = 'ended' AND live_ms > 0 AND refunded_musdt = 0",
        (seller_id,)).fetchone()
    hours = dict(conn.execute(
        "SELECT (s.at_ms / 3600000) % 24, COUNT(*) FROM call_segments s"
        " JOIN calls c ON c.id = s.call_id WHERE c.seller_id = ? AND c.refunded_musdt = 0"
        " GROUP BY 1", (seller_id,)).fetchall())
    top = supporter_totals(conn, seller_id)[:10]
    return {
        **view,
        "earned_total": musdt_to_tokens_str(total),
        "tips_total": musdt_to_tokens_str(tips_total),
        "calls": n_calls,
        "minutes_billed": f"{tenths // 10}.{tenths % 10}",
        "average_call_seconds": int((avg_live_ms or 0) // 1000),
        "top_supporters": [{"buyer_id": str(b), "display_name": n,
                            "spent": musdt_to_tokens_str(t)} for b, n, t in top],
        "busiest_hours": [{"hour_utc": h, "minutes": f"{hours.get(h, 0) // 10}."
                                                      f"{hours.get(h, 0) % 10}"}
                          for h in range(24)],
    }


def stats_chart(conn: sqlite3.Connection, seller_id: int, now_ms: int) -> str:
    entries = _earning_entries(conn, seller_id, day_start_ms(now_ms) - 29 * DAY_MS)
    per_day = buckets([(e[0], e[3]) for e in entries], now_ms)["per_day"]
    from meterchat.core.units import tokens_to_musdt

    bars = [(d["day"][5:], tokens_to_musdt(d["earned"])) for d in per_day]
    return chart_svg("Earnings per day, last 30 days (tokens)", bars)


def supporters_board(conn: sqlite3.Connection, seller_id: int, limit: int = 10) -> list[dict]:
    """The public board: buyers who opted in, display name only, by what they paid."""
    if conn.execute("SELECT 1 FROM sellers WHERE user_id = ?", (seller_id,)).fetchone() is None:
        raise NotFound("no such seller", "seller_not_found")
    shown = {r[0] for r in conn.execute(
        "SELECT user_id FROM buyer_controls WHERE show_on_leaderboard = 1")}
    board = [name for b, name, _ in supporter_totals(conn, seller_id) if b in shown][:limit]
    return [{"rank": i + 1, "display_name": n} for i, n in enumerate(board)]
