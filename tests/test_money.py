"""Money units: 1 token = 10,000 µUSDT, 100 tokens = 1 USDT, exact both ways."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterchat.core.units import (
    MUSDT_PER_TOKEN,
    MUSDT_PER_USDT,
    AmountError,
    musdt_to_tokens_str,
    musdt_to_usdt_str,
    tokens_to_musdt,
    usdt_to_musdt,
)


def test_units():
    assert MUSDT_PER_TOKEN * 100 == MUSDT_PER_USDT
    assert tokens_to_musdt("1") == 10_000
    assert tokens_to_musdt("12.5") == 125_000
    assert tokens_to_musdt("100") == usdt_to_musdt("1")
    assert tokens_to_musdt("0.0001") == 1
    assert musdt_to_tokens_str(125_000) == "12.5"
    assert musdt_to_tokens_str(10_123_456) == "1012.3456"
    assert musdt_to_tokens_str(1_000_000) == "100"
    assert musdt_to_tokens_str(-5) == "-0.0005"
    assert musdt_to_usdt_str(10_000_317) == "10.000317"
    assert usdt_to_musdt("10.000317") == 10_000_317


@pytest.mark.parametrize("bad", ["", "abc", "1e400000", "NaN", "Infinity", "0.00001", True, 1.5,
                                 None, [1]])
def test_bad_token_amounts_are_refused_not_rounded(bad):
    with pytest.raises(AmountError):
        tokens_to_musdt(bad)


def test_usdt_with_seven_decimals_is_refused():
    with pytest.raises(AmountError, match="6 decimals"):
        usdt_to_musdt("1.0000001")


@given(st.integers(-10**15, 10**15))
def test_token_strings_round_trip_exactly(amount_musdt):
    assert tokens_to_musdt(musdt_to_tokens_str(amount_musdt)) == amount_musdt
    assert usdt_to_musdt(musdt_to_usdt_str(amount_musdt)) == amount_musdt
