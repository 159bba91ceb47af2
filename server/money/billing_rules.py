"""The rules of billing a call, pure (no I/O): the segment price, the commission split,
rounding, how much to hold, and what one billing pass or the end of a call does to one
call's money. `money/billing.py` reads and writes them.

Live time is billed in 6-second segments (tenths of a minute) by the server's clock. Money
follows "reserve ahead, settle behind, per minute": a hold of up to one minute (whole
segments, never more than the buyer's available balance or what is left of the spending cap)
moves from the buyer's `available` to `held`; every completed segment is recorded; when the
hold is used up the completed segments are settled from it (floor of price x commission to
the platform, the rest to the seller) and the next hold is placed. No hold possible: the call
ends at that boundary.

The per-minute arithmetic lives once, in plain integers: `commission_split`, `next_hold`
(the size of the next hold), `outcome` (what the meter shows). The general planner
`plan_pass` and the pass's shortcut for the common minute boundary, `boundary_step`, are
both written with them (tests/test_billing_rules.py holds the two equal).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import NamedTuple

from meterchat.core.units import PPM

SEGMENT_MS = 6_000
TENTHS_PER_MINUTE = 10
ACTIVE_STATES = ("ringing", "connecting", "live", "paused")
ACCEPTED_STATES = ("connecting", "live", "paused")
FINAL_STATES = ("ended", "declined", "missed", "cancelled")
# End reasons that may earn the immediate-failure refund (DESIGN.md "Calls and billing").
REFUNDABLE_REASONS = ("connection_lost", "failed")


# ---- prices, splits, rounding -------------------------------------------------------------

def segment_price_musdt(rate_tokens_per_min: int) -> int:
    """One 6-s segment is a tenth of a minute: rate tokens/min x 10,000 µUSDT / 10, exact."""
    return rate_tokens_per_min * 1_000


def commission_split(price_musdt: int, commission_ppm: int) -> tuple[int, int]:
    """(seller, platform): the platform gets floor(price x commission), the seller the rest."""
    commission = price_musdt * commission_ppm // PPM
    return price_musdt - commission, commission


def completed_tenths(live_ms: int) -> int:
    return live_ms // SEGMENT_MS


def nearest_tenths(live_ms: int) -> int:
    """The last partial segment rounds to the nearest 6 s: 3 s or more counts in full."""
    return (live_ms + SEGMENT_MS // 2) // SEGMENT_MS


# ---- holds ----------------------------------------------------------------------------------

def next_hold(price_musdt: int, available_musdt: int, cap_left_musdt: int | None) -> int:
    """Segments the next hold covers: up to a minute, within balance and what is left of the
    cap (0: no hold can be placed)."""
    n = min(TENTHS_PER_MINUTE, available_musdt // price_musdt)
    if cap_left_musdt is not None:
        n = min(n, cap_left_musdt // price_musdt)
    return max(n, 0)


def hold_tenths(rate_tokens_per_min: int, available_musdt: int,
                cap_left_musdt: int | None) -> int:
    """Segments the next hold covers at this rate (see `next_hold`)."""
    return next_hold(segment_price_musdt(rate_tokens_per_min), available_musdt, cap_left_musdt)


def no_hold_reason(rate_tokens_per_min: int, cap_left_musdt: int | None) -> str:
    if cap_left_musdt is not None and cap_left_musdt < segment_price_musdt(rate_tokens_per_min):
        return "spend_cap"
    return "insufficient_funds"


def auto_refund(reason: str, live_ms: int, refund_below_live_ms: int,
                seller_side_failed: bool, refunds_last_24h: int, refunds_per_day: int) -> bool:
    """Whether a call ending now is refunded in full without anyone asking.

    Either party can report `disconnected`, so a refund for every short lost call is a
    free-minute machine. Refunded automatically: a lost call (`connection_lost`, `failed`)
    with less than refund_below_live_ms of live time whose media never went live (nothing
    was charged), or whose pause came from the seller's side being gone (the seller's
    socket closed or the seller's heartbeats stopped, while the buyer was still there: the
    buyer cannot fake that), and then only while the buyer has had fewer than
    refunds_per_day automatic refunds in the last 24 hours. Anything else is charged like
    any call; the buyer can dispute it."""
    if reason not in REFUNDABLE_REASONS or live_ms >= refund_below_live_ms:
        return False
    if live_ms <= 0:
        return True
    return seller_side_failed and refunds_last_24h < refunds_per_day


# ---- what the meter shows -------------------------------------------------------------------

class PassOutcome(NamedTuple):
    """What a pass did to one call (a tuple: a pass makes 10,000 of these)."""

    call_id: int
    billed_tenths: int
    charged_musdt: int  # every recorded segment, settled or not
    buyer_balance_musdt: int  # available + what is left of this call's hold
    minutes_left_tenths: int  # segments the buyer can still afford (balance and cap)
    end_reason: str | None


def outcome(call_id: int, price_musdt: int, cap_musdt: int | None, billed: int, settled: int,
            hold: int, held_musdt: int, charged_musdt: int, available_musdt: int,
            ) -> PassOutcome:
    """A call still running after a pass, billed up to `billed` segments: the charge of
    every recorded segment (settled or not), the buyer's balance (available and the unused
    rest of the hold) and the segments the buyer can still afford (the rest of the hold,
    then available, within the cap). `charged_musdt` is what was settled."""
    unsettled = (billed - settled) * price_musdt
    more = available_musdt // price_musdt
    if cap_musdt is not None:
        more = min(more, max(0, (cap_musdt - charged_musdt - held_musdt) // price_musdt))
    return PassOutcome(call_id, billed, charged_musdt + unsettled,
                       available_musdt + held_musdt - unsettled, settled + hold - billed + more,
                       None)


# ---- one call's money, planned ---------------------------------------------------------------

@dataclass(frozen=True)
class CallMoney:
    """A call's durable billing state, as one pass or the end of a call reads it."""

    call_id: int
    rate_tokens_per_min: int
    commission_ppm: int
    spend_cap_musdt: int | None
    billed_tenths: int
    settled_tenths: int
    hold_tenths: int
    held_musdt: int
    minute_no: int
    charged_musdt: int  # settled so far
    seller_earned_musdt: int
    commission_musdt: int

    @property
    def price_musdt(self) -> int:
        return segment_price_musdt(self.rate_tokens_per_min)

    def cap_left_musdt(self) -> int | None:
        if self.spend_cap_musdt is None:
            return None
        return self.spend_cap_musdt - self.charged_musdt


@dataclass(frozen=True)
class Settlement:
    minute_no: int
    tenths: int
    amount_musdt: int
    seller_musdt: int
    commission_musdt: int


@dataclass(frozen=True)
class Hold:
    minute_no: int
    tenths: int
    amount_musdt: int


@dataclass
class Plan:
    """What one pass does to one call: segments to record, minutes to settle, holds to
    place, and the end reason when no further hold could be placed."""

    after: CallMoney
    new_segments: list[int] = field(default_factory=list)
    settlements: list[Settlement] = field(default_factory=list)
    holds: list[Hold] = field(default_factory=list)
    end_reason: str | None = None
    available_after_musdt: int = 0


def tenths_left(m: CallMoney, available_musdt: int) -> int:
    """Segments the buyer can still pay for: the rest of the hold plus available, within
    the cap."""
    return outcome(m.call_id, m.price_musdt, m.spend_cap_musdt, m.billed_tenths,
                   m.settled_tenths, m.hold_tenths, m.held_musdt, m.charged_musdt,
                   available_musdt).minutes_left_tenths


def settle_used(m: CallMoney, tenths: int) -> tuple[CallMoney, Settlement | None]:
    """Settle `tenths` segments from the hold (the rest of the hold stays)."""
    if tenths <= 0:
        return m, None
    amount = tenths * m.price_musdt
    seller, commission = commission_split(amount, m.commission_ppm)
    s = Settlement(m.minute_no, tenths, amount, seller, commission)
    return replace(
        m,
        settled_tenths=m.settled_tenths + tenths,
        hold_tenths=m.hold_tenths - tenths,
        held_musdt=m.held_musdt - amount,
        charged_musdt=m.charged_musdt + amount,
        seller_earned_musdt=m.seller_earned_musdt + seller,
        commission_musdt=m.commission_musdt + commission,
    ), s


def plan_pass(m: CallMoney, to_tenths: int, available_musdt: int) -> Plan:
    """Record segments up to `to_tenths`; whenever the hold is used up, settle it and place
    the next one; end the call at the boundary where no hold can be placed.
    (Plain integers inside: a pass plans thousands of these.)"""
    plan = Plan(after=m, available_after_musdt=available_musdt)
    price = m.price_musdt
    ppm, cap = m.commission_ppm, m.spend_cap_musdt
    billed, settled, hold, held = m.billed_tenths, m.settled_tenths, m.hold_tenths, m.held_musdt
    minute, charged = m.minute_no, m.charged_musdt
    earned, commission = m.seller_earned_musdt, m.commission_musdt
    avail = available_musdt
    while True:
        if billed == settled + hold:
            # The hold is used up (or empty): settle what it paid for, hold the next minute.
            if hold:
                amount = hold * price
                seller, comm = commission_split(amount, ppm)
                plan.settlements.append(Settlement(minute, hold, amount, seller, comm))
                settled += hold
                held -= amount
                charged += amount
                earned += seller
                commission += comm
                hold = 0
            cap_left = None if cap is None else cap - charged
            n = next_hold(price, avail, cap_left)
            if n == 0:
                plan.end_reason = no_hold_reason(m.rate_tokens_per_min, cap_left)
                break
            minute += 1
            hold, held = n, n * price
            avail -= held
            plan.holds.append(Hold(minute, n, held))
        if billed >= to_tenths:
            break
        upto = min(to_tenths, settled + hold)
        plan.new_segments.extend(range(billed + 1, upto + 1))
        billed = upto
    plan.after = replace(
        m, billed_tenths=billed, settled_tenths=settled, hold_tenths=hold, held_musdt=held,
        minute_no=minute, charged_musdt=charged, seller_earned_musdt=earned,
        commission_musdt=commission)
    plan.available_after_musdt = avail
    return plan


def plan_outcome(plan: Plan) -> PassOutcome:
    """The meter after a planned pass (an ended call can afford nothing more)."""
    a = plan.after
    o = outcome(a.call_id, a.price_musdt, a.spend_cap_musdt, a.billed_tenths, a.settled_tenths,
                a.hold_tenths, a.held_musdt, a.charged_musdt, plan.available_after_musdt)
    if plan.end_reason is None:
        return o
    return o._replace(minutes_left_tenths=0, end_reason=plan.end_reason)


def plan_finish(m: CallMoney, final_tenths: int, refund: bool) -> tuple[CallMoney, int,
                                                                       Settlement | None]:
    """End of a call: bill up to final_tenths (never beyond the hold), settle, and say how
    much of the hold goes back. Returns (after, release_musdt, settlement)."""
    final = max(m.billed_tenths, min(final_tenths, m.settled_tenths + m.hold_tenths))
    m = replace(m, billed_tenths=final)
    if refund:
        release = m.held_musdt
        return replace(m, hold_tenths=0, held_musdt=0), release, None
    m, s = settle_used(m, final - m.settled_tenths)
    release = m.held_musdt
    return replace(m, hold_tenths=0, held_musdt=0), release, s


# ---- the common minute boundary, in plain integers -------------------------------------------

class Step(NamedTuple):
    """One minute boundary crossed the common way (see `boundary_step`)."""

    new_hold_tenths: int
    settled_musdt: int
    seller_musdt: int
    commission_musdt: int
    held_musdt: int  # the new hold
    charged_musdt: int  # settled so far, after this step
    available_after_musdt: int
    outcome: PassOutcome  # the meter after `to_tenths`


def boundary_step(call_id: int, rate_tokens_per_min: int, commission_ppm: int,
                  cap_musdt: int | None, settled: int, hold: int, charged_musdt: int,
                  to_tenths: int, available_musdt: int) -> Step | None:
    """The common case of a minute boundary: the hold is used up by `to_tenths`, it is
    settled, the next hold can be placed and covers `to_tenths`. None for anything else (no
    hold possible, two boundaries in one pass, an empty hold): those go through `plan_pass`,
    which this must always agree with (the same functions do the arithmetic)."""
    end = settled + hold
    if hold <= 0 or to_tenths < end:
        return None
    price = segment_price_musdt(rate_tokens_per_min)
    amount = hold * price
    seller, commission = commission_split(amount, commission_ppm)
    charged = charged_musdt + amount
    n = next_hold(price, available_musdt, None if cap_musdt is None else cap_musdt - charged)
    if n == 0 or to_tenths >= end + n:
        return None
    held = n * price
    avail = available_musdt - held
    return Step(n, amount, seller, commission, held, charged, avail,
                outcome(call_id, price, cap_musdt, to_tenths, end, n, held, charged, avail))


# ---- ledger transactions of a planned pass ---------------------------------------------------

def idem_hold(call_id: int, minute_no: int) -> str:
    return f"call:{call_id}:hold:{minute_no}"


def idem_settle(call_id: int, minute_no: int) -> str:
    return f"call:{call_id}:settle:{minute_no}"


def minute_moves(call_id: int, plan: Plan) -> list[tuple[str, dict[str, int]]]:
    """One ledger transaction per minute boundary: the used hold settled to seller and
    platform and the next minute held, keyed by (call, settled minute). Amounts by role
    (`avail`, `held` of the buyer, `seller`, `commission`), net per account, so a full
    minute settled and a full minute held leaves `held` unchanged."""
    out = []
    holds = {h.minute_no: h for h in plan.holds}
    for s in plan.settlements:
        nxt = holds.pop(s.minute_no + 1, None)
        hold = nxt.amount_musdt if nxt else 0
        out.append((idem_settle(call_id, s.minute_no), {
            "held": hold - s.amount_musdt, "seller": s.seller_musdt,
            "commission": s.commission_musdt, "avail": -hold}))
    for h in holds.values():
        out.append((idem_hold(call_id, h.minute_no), {"avail": -h.amount_musdt,
                                                      "held": h.amount_musdt}))
    return out


@dataclass(frozen=True)
class Pauses:
    """A call's pauses, as the record keeps them: how many, how long in all, and the side
    the current (or last, for an ended call) pause came from."""

    count: int = 0
    paused_ms: int = 0
    paused_by: str | None = None
