"""The pure rules of a dispute refund (operator/dispute_rules.py): the split follows the
charge, the seller's part comes from where they hold it, the window counts from the end."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from meterchat.core.units import DAY_MS
from meterchat.operator.dispute_rules import refund_split, take_from_seller, within_window


@given(charged=st.integers(1, 10**12), share=st.integers(0, 10**6), data=st.data())
def test_refund_split_sums_to_the_refund_and_follows_the_charge(charged, share, data):
    seller_earned = charged - charged * share // 10**6
    refund = data.draw(st.integers(0, charged))
    from_seller, from_commission = refund_split(refund, charged, seller_earned)
    assert from_seller + from_commission == refund
    assert 0 <= from_seller <= seller_earned
    assert 0 <= from_commission <= charged - seller_earned
    if refund == charged:
        assert from_seller == seller_earned


@given(amount=st.integers(0, 10**9), pending=st.integers(0, 10**9),
       available=st.integers(0, 10**9))
def test_seller_part_comes_from_pending_then_available_then_the_platform(amount, pending,
                                                                         available):
    a, b, short = take_from_seller(amount, pending, available)
    assert a + b + short == amount
    assert 0 <= a <= pending and 0 <= b <= available and short >= 0
    assert short == max(0, amount - pending - available)
    assert b == 0 or a == pending


def test_dispute_window_counts_whole_days_from_the_end():
    day = DAY_MS
    assert within_window(1_000, 1_000 + 14 * day, 14)
    assert not within_window(1_000, 1_001 + 14 * day, 14)
    assert not within_window(None, 0, 14)
