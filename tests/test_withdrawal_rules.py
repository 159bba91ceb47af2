"""The pure rules of a withdrawal (withdrawals/rules.py): address checks, fees and net,
minimum, review and the daily limit, who may withdraw, the reason shown; and the tokens its
endpoint reads (withdrawals/routes.py). No server, no database. (The Idempotency-Key rule,
shared with tips, is tested in tests/test_core_validate.py.)"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterchat.core.config import WithdrawalsConfig
from meterchat.core.errors import ApiError
from meterchat.core.units import tokens_to_musdt
from meterchat.withdrawals import rules
from meterchat.withdrawals.routes import parse_tokens

CFG = WithdrawalsConfig()
VALID = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
PLATFORM = "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf"


def code_of(fn, *args) -> str:
    with pytest.raises(ApiError) as info:
        fn(*args)
    return info.value.code


def test_400_tokens_reach_the_address_as_2_5_usdt():
    q = rules.quote(tokens_to_musdt("400"), CFG)
    assert (q.amount_musdt, q.fee_musdt, q.net_musdt) == (4_000_000, 1_500_000, 2_500_000)


@pytest.mark.parametrize("address", [
    "", "T", VALID[:-1], VALID + "1", VALID[:-1] + "u",  # wrong length / checksum
    "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj60",  # 0 is not base58
    "0x41a614f803b6fd780986a42c78ec9c7f77e6ded13c",  # hex form is not accepted from users
    "AR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t", 12345, None, ["T"],
])
def test_bad_addresses_are_refused_never_raising_anything_else(address):
    assert code_of(rules.check_address, address, frozenset()) == "invalid_address"


def test_platform_addresses_are_refused_and_spaces_forgiven():
    assert code_of(rules.check_address, PLATFORM, frozenset({PLATFORM})) == "platform_address"
    assert rules.check_address(f"  {VALID} ", frozenset({PLATFORM})) == VALID


@pytest.mark.parametrize("tokens", ["", "abc", "-5", "0", "1.00001", "NaN", "Infinity", True,
                                    1.5, None, "1e30"])
def test_bad_token_amounts_are_refused(tokens):
    assert code_of(parse_tokens, tokens) == "invalid_amount"


def test_below_minimum_and_fees_eating_the_amount_are_refused():
    assert code_of(rules.quote, tokens_to_musdt("299.9999"), CFG) == "below_minimum"
    assert rules.quote(tokens_to_musdt("300"), CFG).net_musdt == 1_500_000
    greedy = WithdrawalsConfig(min_usdt=Decimal(1), fee_usdt=Decimal(1),
                               network_fee_usdt=Decimal(1))
    assert code_of(rules.quote, tokens_to_musdt("200"), greedy) == "below_minimum"


@given(st.integers(min_value=CFG.min_musdt, max_value=10**15))
def test_fee_plus_net_is_always_the_amount_taken(amount):
    q = rules.quote(amount, CFG)
    assert q.fee_musdt + q.net_musdt == amount and q.net_musdt > 0
    assert q.fee_musdt == CFG.fee_musdt + CFG.network_fee_musdt


def test_review_above_threshold_and_past_the_daily_limit():
    usdt = 1_000_000
    assert rules.review_reason(200 * usdt, 0, CFG) is None  # at the threshold: no review
    assert rules.review_reason(200 * usdt + 1, 0, CFG) == rules.REVIEW_ABOVE_THRESHOLD
    assert rules.review_reason(150 * usdt, 850 * usdt, CFG) is None  # exactly the limit
    assert rules.review_reason(150 * usdt, 850 * usdt + 1, CFG) == rules.REVIEW_DAILY_LIMIT


def test_sellers_withdraw_buyers_only_when_allowed_admins_never():
    rules.check_role("seller", CFG)
    assert code_of(rules.check_role, "buyer", CFG) == "withdrawals_not_allowed"
    assert code_of(rules.check_role, "admin", CFG) == "withdrawals_not_allowed"
    rules.check_role("buyer", WithdrawalsConfig(buyer_withdrawals=True))



def test_the_reason_shown_says_where_it_stands():
    assert rules.status_reason("review", rules.REVIEW_DAILY_LIMIT, None, None) == \
        "past the daily limit: an operator reviews it"
    assert "backup" in rules.status_reason("review", rules.REVIEW_RESTORED, "x", "y")
    assert "banned" in rules.status_reason("review", rules.REVIEW_ACCOUNT_BANNED, None, None)
    assert "large" in rules.status_reason("review", rules.REVIEW_ABOVE_THRESHOLD, None, None)
    assert rules.status_reason("queued", None, "waiting for TRX", "old") == "waiting for TRX"
    assert rules.status_reason("failed", None, "w", "REVERT") == "REVERT"
    assert rules.status_reason("rejected", None, None, None).startswith("rejected by")
    assert rules.status_reason("confirmed", None, "w", "f") is None
