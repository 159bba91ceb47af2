"""The economy's pure rules, no I/O (tested alone in tests/test_economy_rules.py): the bonus
a top-up earns and how bonus tokens are spent last, spending limits (lowering at once,
raising later) and what calls under way may still take, the tip window, UTC periods.

The rules in words (the README repeats them):
- Bonus: a buyer's top-up of at least a tier's from_usdt gets that tier's percent on top
  (the highest tier reached), plus the best promotion running when the top-up is credited;
  each part is rounded down to whole tokens (`bonus_parts`). Sellers and admins get no bonus.
- Bonus tokens are spent last. The unspent bonus is min(bonus figure, available + held)
  and a buyer may withdraw only `withdrawable_musdt(available, held, bonus)` = available
  minus the unspent bonus (never below zero). A seller's earnings are the seller's own,
  whatever the buyer paid with: the platform bears the bonus (promo:bonuses goes negative).
- Bonus cannot be laundered through a colluding seller: tips are paid from bought tokens
  only (the figure a buyer may withdraw), and tier + promotion stay within
  `core.bonus_bound.max_bonus_ppm(lowest commission in force)`.
- Spending = what left a buyer for sellers and the platform: call minutes settled, tips,
  minus call and dispute refunds (ledger kinds in SPEND_KINDS). Days and months are UTC.
- Limits: lowering (or setting a first one) takes effect at once and cancels a waiting
  raise; raising or removing waits (`change_limit`). A call's effective spending cap is
  min(the buyer's cap, what is left today, what is left this month) (`effective_cap`). What
  is left counts what the buyer's calls under way may still charge (`may_still_take`) as
  spent. A limit lowered during a call lowers that call's cap at once, never below what it
  has charged and holds (`fitted_caps`).
- Tips: of a call that went live, while it is under way or up to the tip window after it
  ended (`tip_open`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

from meterchat.core.units import DAY_MS, MUSDT_PER_TOKEN, PPM, SECOND_MS

# What moves tokens between a buyer and a seller (+ the platform's commission); refunds
# count negative.
SPEND_KINDS = ("call_minute", "call_settle", "call_refund", "tip", "dispute_refund")
# Call states in which the seller took the call (or it is over).
ACCEPTED_OR_ENDED = ("connecting", "live", "paused", "ended")


class Entry(NamedTuple):
    """One ledger transaction as the economy sums it: when, its ref ("call:12"), its kind,
    and the µUSDT it moved for the user (spent by a buyer, earned by a seller)."""
    at_ms: int
    ref: str | None
    kind: str
    musdt: int


def percent_text(ppm: int) -> str:
    """125000 ppm -> "12.5" (percent, as the API and messages show it)."""
    return format((Decimal(ppm) / 10_000).normalize(), "f")


# ---- bonuses ---------------------------------------------------------------------------

def floor_whole_tokens(musdt: int) -> int:
    return musdt // MUSDT_PER_TOKEN * MUSDT_PER_TOKEN


def tier_ppm_for(amount_musdt: int, tiers: Iterable[tuple[int, int]]) -> int:
    """The percent (ppm) of the highest tier the amount reaches; 0 below every tier.
    tiers: (from µUSDT, ppm)."""
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


# ---- limits ----------------------------------------------------------------------------

def effective_limit(limit: int | None, pending: int | None, pending_from_ms: int | None,
                    now_ms: int) -> int | None:
    """The limit in force now: a waiting change once its time has come, else the limit."""
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


def left_of(limit: int | None, committed_musdt: int) -> int | None:
    """What a limit leaves once `committed_musdt` counts as spent; None = no limit."""
    return None if limit is None else max(0, limit - committed_musdt)


def effective_cap(spend_cap_musdt: int | None, *lefts: int | None) -> int | None:
    """The smallest of a call's own cap and what the limits leave; None = no cap."""
    values = [v for v in (spend_cap_musdt, *lefts) if v is not None]
    return min(values) if values else None


@dataclass(frozen=True)
class CallUnderWay:
    """What the limits need of one of the buyer's calls under way (µUSDT)."""
    id: int
    cap_musdt: int | None
    charged_musdt: int
    held_musdt: int


def may_still_take(cap_musdt: int | None, charged_musdt: int, held_musdt: int,
                   available_musdt: int) -> int:
    """What one call under way may still charge: up to its effective cap (never less than
    it holds); a call without a cap what it holds and all the buyer has available."""
    if cap_musdt is None:
        return held_musdt + available_musdt
    return max(held_musdt, cap_musdt - charged_musdt)


def fitted_caps(calls: Sequence[CallUnderWay],
                limits: Iterable[tuple[int | None, int]]) -> dict[int, int | None]:
    """The caps of the calls under way once they fit in what each limit leaves.

    limits: (limit or None, spent in its period). What the calls hold already stays theirs;
    what is left beyond it is shared out in call order, each call up to its own cap. A cap
    is never raised and never falls below what its call has charged and holds."""
    held_all = sum(c.held_musdt for c in calls)
    caps: dict[int, int | None] = {c.id: c.cap_musdt for c in calls}
    for limit, spent in limits:
        if limit is None:
            continue
        pool = max(0, limit - spent - held_all)  # beyond what is held already
        for c in calls:
            cap = caps[c.id]
            room = None if cap is None else max(0, cap - c.charged_musdt - c.held_musdt)
            extra = pool if room is None else min(room, pool)
            pool -= extra
            fitted = c.charged_musdt + c.held_musdt + extra
            caps[c.id] = fitted if cap is None else min(cap, fitted)
    return caps


# ---- tips ------------------------------------------------------------------------------

def had_live_time(state: str, live_at_ms: int | None, live_ms: int) -> bool:
    """Did the call have live time? A call under way once it has gone live (its row's
    live time lags behind); a call that is over if it recorded at least a second of live
    video, what its summary shows as more than 0:00. A call without live time never connected:
    no tip, no rating, no dispute (409 `call_not_taken_place`)."""
    if state in ("connecting", "live", "paused"):
        return live_at_ms is not None
    return live_ms >= SECOND_MS


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


# ---- UTC periods -----------------------------------------------------------------------

def _utc(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def day_start_ms(now_ms: int) -> int:
    return now_ms - now_ms % DAY_MS


def month_start_ms(now_ms: int) -> int:
    t = _utc(now_ms)
    return int(dt.datetime(t.year, t.month, 1, tzinfo=dt.UTC).timestamp() * 1000)


def day_key(ms: int) -> str:
    """The UTC day of a moment, "2025-03-31"."""
    return _utc(ms).strftime("%Y-%m-%d")


def week_key(ms: int) -> str:
    """The Monday (UTC) of a moment's week, "2025-03-31"."""
    d = _utc(ms).date()
    return (d - dt.timedelta(days=d.weekday())).isoformat()


def month_key(ms: int) -> str:
    """The UTC month of a moment, "2025-03"."""
    return _utc(ms).strftime("%Y-%m")
