"""1 token = 0.01 USDT = 10,000 µUSDT (DESIGN.md "Money"), both ways."""

from server.money import MUSDT_PER_TOKEN, musdt_to_tokens_str, tokens_to_musdt


def test_one_token_is_ten_thousand_musdt():
    assert tokens_to_musdt("1") == MUSDT_PER_TOKEN == 10_000
    assert tokens_to_musdt("12.5") == 125_000
    assert tokens_to_musdt("0.0001") == 1
    assert musdt_to_tokens_str(125_000) == "12.5"
    assert musdt_to_tokens_str(1_200_000) == "120"
    assert musdt_to_tokens_str(1) == "0.0001"
    assert musdt_to_tokens_str(-10_000) == "-1"
