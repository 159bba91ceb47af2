"""The pure rules of deposits (deposits/rules.py), no server, no database: TXID syntax,
suffix choice, an intent's status, and whether a transfer pays an intent."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from meterchat.chain.address import to_base58
from meterchat.chain.gateway import TransferLog
from meterchat.chain.networks import NETWORKS
from meterchat.deposits import rules

USDT = NETWORKS["mainnet"].usdt_contract
ADDR = to_base58("41cdae4e9a6287333a3f7df432b050af7b17e79e63")


def test_txid_syntax_forgives_0x_case_and_spaces_and_nothing_else():
    txid = "ab" * 32
    assert rules.normalize_txid(f"  0x{txid.upper()} ") == txid
    for bad in ("", "ab" * 31, "zz" * 32, "0x", None, 5, ["ab" * 32], "ab" * 32 + "0"):
        assert rules.normalize_txid(bad) is None


@given(st.sets(st.integers(1, rules.SUFFIX_MAX), max_size=200))
def test_suffix_is_never_one_in_use(used):
    s = rules.pick_suffix(used)
    assert s is not None and 1 <= s <= rules.SUFFIX_MAX and s not in used


def test_no_suffix_when_all_are_taken():
    assert rules.pick_suffix(set(range(1, rules.SUFFIX_MAX + 1))) is None


def intent(**kw) -> rules.Intent:
    base = dict(id=1, user_id=7, amount_musdt=10_000_317, address=ADDR, usdt_contract=USDT,
                created_at_ms=1_000_000, expires_at_ms=4_600_000,
                reserved_until_ms=4_600_000 + rules.REUSE_AFTER_EXPIRY_MS,
                paid_deposit_id=None)
    base.update(kw)
    return rules.Intent(**base)


def transfer(**kw) -> TransferLog:
    base = dict(txid="ab" * 32, log_index=0, contract=USDT, from_address=ADDR,
                to_address=ADDR, amount=10_000_317)
    base.update(kw)
    return TransferLog(**base)


def test_an_intent_is_open_then_expired_or_paid():
    assert intent().status(4_599_999) == "open"
    assert intent().status(4_600_000) == "expired"
    assert intent(paid_deposit_id=3).status(0) == "paid"


def test_transfer_matches_only_on_every_term():
    i = intent()
    assert rules.intent_matches(i, transfer(), 2_000_000)
    assert rules.intent_matches(i, transfer(), 4_600_000 + 3600_000)  # late but kept
    assert not rules.intent_matches(i, transfer(amount=10_000_318), 2_000_000)
    assert not rules.intent_matches(i, transfer(amount=10_000_000), 2_000_000)
    assert not rules.intent_matches(i, transfer(contract=NETWORKS["nile"].usdt_contract),
                                    2_000_000)
    assert not rules.intent_matches(i, transfer(to_address=USDT), 2_000_000)
    assert not rules.intent_matches(i, transfer(), 999_999)  # sent before it was asked
    assert not rules.intent_matches(i, transfer(), i.reserved_until_ms + 1)
    assert not rules.intent_matches(intent(paid_deposit_id=3), transfer(), 2_000_000)
    assert rules.match_intent([intent(id=2), intent(id=1)], transfer(), 2_000_000).id == 1
