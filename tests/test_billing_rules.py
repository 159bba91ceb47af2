"""The pure billing rules: segment price, commission split, rounding, holds, and what a
pass and the end of a call do to one call's money."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from meterchat.core import units
from meterchat.money import billing_rules as billing
from meterchat.money.billing_rules import CallMoney, plan_finish, plan_pass

T = 10_000  # µUSDT per token


def fresh(rate: int, hold_tenths: int, cap: int | None = None, ppm: int = 250_000) -> CallMoney:
    price = billing.segment_price_musdt(rate)
    return CallMoney(1, rate, ppm, cap, 0, 0, hold_tenths, hold_tenths * price, 1, 0, 0, 0)


def test_segment_price_is_a_tenth_of_the_rate():
    assert billing.segment_price_musdt(600) == 60 * T
    assert billing.segment_price_musdt(1) == 1_000  # 0.1 token


def test_commission_is_floored_for_the_platform():
    assert billing.commission_split(120 * T, 250_000) == (90 * T, 30 * T)
    assert billing.commission_split(1_000, 333_333) == (667, 333)
    assert billing.commission_split(7, 500_000) == (4, 3)
    assert units.commission_ppm_from_percent(Decimal("12.5")) == 125_000


def test_nearest_six_seconds():
    assert billing.nearest_tenths(0) == 0
    assert billing.nearest_tenths(2_999) == 0
    assert billing.nearest_tenths(3_000) == 1
    assert billing.nearest_tenths(14_000) == 2
    assert billing.nearest_tenths(15_000) == 3
    assert billing.completed_tenths(11_999) == 1


def test_hold_is_up_to_a_minute_within_balance_and_cap():
    assert billing.hold_tenths(600, 10_000 * T, None) == 10
    assert billing.hold_tenths(600, 250 * T, None) == 4
    assert billing.hold_tenths(600, 10_000 * T, 60 * T) == 1
    assert billing.hold_tenths(600, 59 * T, None) == 0


def test_bar_fourteen_seconds_bill_two_segments():
    m = fresh(600, 10)
    p = plan_pass(m, billing.completed_tenths(14_000), 1_000 * T)
    assert p.new_segments == [1, 2] and not p.settlements
    after, release, s = plan_finish(p.after, billing.nearest_tenths(14_000), refund=False)
    assert s is not None and (s.amount_musdt, s.seller_musdt, s.commission_musdt) == (
        120 * T, 90 * T, 30 * T)
    assert release == 8 * 60 * T
    assert after.charged_musdt == 120 * T


def test_a_minute_boundary_settles_and_holds_the_next_minute():
    m = fresh(600, 10)
    p = plan_pass(m, 10, 10_000 * T)
    assert [s.tenths for s in p.settlements] == [10]
    assert [(h.minute_no, h.tenths) for h in p.holds] == [(2, 10)]
    assert p.after.settled_tenths == 10 and p.after.hold_tenths == 10
    assert p.available_after_musdt == 10_000 * T - 600 * T


def test_spend_cap_of_one_segment_ends_at_the_first_boundary():
    m = fresh(600, 1, cap=60 * T)
    p = plan_pass(m, 1, 10_000 * T)
    assert p.end_reason == "spend_cap"
    assert p.after.charged_musdt == 60 * T and p.after.held_musdt == 0


def test_an_empty_balance_ends_with_insufficient_funds():
    m = fresh(600, 10)
    p = plan_pass(m, 25, 30 * T)  # 30 tokens left: no further segment can be held
    assert p.end_reason == "insufficient_funds"
    assert p.after.billed_tenths == 10


def test_refund_releases_the_whole_hold():
    m = replace(fresh(600, 10), billed_tenths=3)
    after, release, s = plan_finish(m, 3, refund=True)
    assert s is None and release == 600 * T and after.charged_musdt == 0


def test_auto_refund_only_for_a_seller_side_failure_within_the_allowance():
    def refund(reason="connection_lost", live_ms=20_000, seller=True, used=0, per_day=3):
        return billing.auto_refund(reason, live_ms, 30_000, seller, used, per_day)

    assert refund()  # the seller's side went, 20 s live, first refund today
    assert not refund(seller=False)  # the buyer's side failed (or said so): charged
    assert not refund(used=3) and refund(used=2)  # the allowance: 3 in any 24 hours
    assert not refund(per_day=0)
    assert not refund(live_ms=30_000)  # long enough to count
    assert not refund(reason="buyer_hangup") and not refund(reason="too_many_pauses")
    assert not refund(reason="seller_hangup")  # the seller ending keeps what was earned
    # Media never went live: nothing was charged, whoever failed.
    assert refund(reason="failed", live_ms=0, seller=False, used=99)


@settings(max_examples=300, deadline=None)
@given(
    rate=st.integers(1, 10_000),
    ppm=st.integers(0, 1_000_000),
    balance_tokens=st.integers(0, 50_000),
    cap_tokens=st.one_of(st.none(), st.integers(1, 50_000)),
    steps=st.lists(st.integers(0, 25), min_size=1, max_size=8),
    final_extra_ms=st.integers(0, 5_999),
)
def test_billing_never_exceeds_cap_or_balance_and_always_adds_up(
        rate, ppm, balance_tokens, cap_tokens, steps, final_extra_ms):
    price = billing.segment_price_musdt(rate)
    balance = balance_tokens * T
    cap = cap_tokens * T if cap_tokens is not None else None
    n = billing.hold_tenths(rate, balance, cap)
    if n == 0:
        return
    m = fresh(rate, n, cap, ppm)
    avail = balance - n * price
    to = 0
    seller = commission = settled = 0
    for step in steps:
        to += step
        p = plan_pass(m, to, avail)
        for s in p.settlements:
            assert s.seller_musdt + s.commission_musdt == s.amount_musdt
            assert s.commission_musdt == s.amount_musdt * ppm // 1_000_000
            seller += s.seller_musdt
            commission += s.commission_musdt
            settled += s.amount_musdt
        held_now = sum(h.amount_musdt for h in p.holds)
        assert avail - held_now == p.available_after_musdt >= 0
        avail = p.available_after_musdt
        m = p.after
        assert m.held_musdt == m.hold_tenths * price
        if p.end_reason:
            break
    live_ms = to * billing.SEGMENT_MS + final_extra_ms
    after, release, s = plan_finish(m, billing.nearest_tenths(live_ms), refund=False)
    if s is not None:
        seller += s.seller_musdt
        commission += s.commission_musdt
        settled += s.amount_musdt
    # charged = billed tenths x rate / 10 tokens, split exactly between seller and platform
    assert after.charged_musdt == settled == after.billed_tenths * price
    assert seller + commission == after.charged_musdt
    assert after.charged_musdt <= balance
    if cap is not None:
        assert after.charged_musdt <= cap
    # Money in = money out: the buyer keeps exactly what was not charged.
    assert avail + release + after.charged_musdt == balance
    assert after.billed_tenths <= billing.nearest_tenths(live_ms)


@settings(max_examples=400)
@given(
    rate=st.integers(1, 10_000),
    ppm=st.integers(0, 1_000_000),
    minute=st.integers(1, 30),
    hold=st.integers(0, 10),
    billed_in_hold=st.integers(0, 10),
    ahead=st.integers(0, 25),
    available_tokens=st.integers(0, 20_000),
    cap_tokens=st.one_of(st.none(), st.integers(0, 200_000)),
)
def test_the_fast_paths_agree_with_plan_pass(
        rate, ppm, minute, hold, billed_in_hold, ahead, available_tokens, cap_tokens):
    """The pass's plain-integer shortcuts (segments inside the hold: `outcome`; one minute
    boundary: `boundary_step`) must be the general planner exactly, whenever they take the
    case; where they decline, plan_pass decides."""
    price = billing.segment_price_musdt(rate)
    settled = (minute - 1) * 10
    billed = settled + min(billed_in_hold, hold)
    charged = settled * price
    cap = None if cap_tokens is None else max(cap_tokens * T, charged + hold * price)
    m = CallMoney(7, rate, ppm, cap, billed, settled, hold, hold * price, minute, charged,
                  charged - charged * ppm // 1_000_000, charged * ppm // 1_000_000)
    to = billed + max(ahead, 1)
    avail = available_tokens * T
    plan = plan_pass(m, to, avail)
    if to < settled + hold:
        # Inside the hold: segments only, and the meter as the pass shows it.
        assert plan.end_reason is None and not plan.settlements and not plan.holds
        assert plan.after == replace(m, billed_tenths=to)
        assert billing.outcome(7, price, cap, to, settled, hold, hold * price, charged,
                               avail) == billing.plan_outcome(plan)
    step = billing.boundary_step(7, rate, ppm, cap, settled, hold, charged, to, avail)
    if step is None:
        return
    a = plan.after
    assert plan.end_reason is None and len(plan.settlements) == 1 and len(plan.holds) == 1
    s, h = plan.settlements[0], plan.holds[0]
    assert (step.settled_musdt, step.seller_musdt, step.commission_musdt) == (
        s.amount_musdt, s.seller_musdt, s.commission_musdt)
    assert (step.new_hold_tenths, step.held_musdt) == (h.tenths, h.amount_musdt)
    assert (a.billed_tenths, a.settled_tenths, a.hold_tenths, a.held_musdt, a.minute_no,
            a.charged_musdt) == (to, settled + hold, step.new_hold_tenths, step.held_musdt,
                                 minute + 1, step.charged_musdt)
    assert step.available_after_musdt == plan.available_after_musdt
    assert step.outcome == billing.plan_outcome(plan)
    assert step.outcome.minutes_left_tenths == billing.tenths_left(
        a, plan.available_after_musdt)


def test_the_fast_boundary_step_declines_what_it_does_not_cover():
    price = billing.segment_price_musdt(600)

    def step(cap, to, avail):
        return billing.boundary_step(1, 600, 250_000, cap, 0, 10, 0, to, avail)

    # Not at the boundary yet, no room for a next hold, and two boundaries in one pass.
    assert step(None, 9, 10**9) is None
    assert step(None, 10, price - 1) is None
    assert step(None, 20, 10**9) is None
    assert step(10 * price, 10, 10**9) is None
    taken = step(None, 10, 10**9)
    assert taken is not None and taken.new_hold_tenths == 10
    assert billing.boundary_step(1, 600, 250_000, None, 0, 0, 0, 1, 10**9) is None  # no hold
