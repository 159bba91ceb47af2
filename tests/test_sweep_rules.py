"""The pure rules of sweeps: what a sweep costs in TRX (the chain's energy at the chain's
price, bandwidth, an activation), what the hot wallet sends first, and why one waits (too
dear, or the hot wallet short of TRX beyond what it keeps for withdrawals)."""

from __future__ import annotations

from meterchat.chain.gateway import USDT_TRANSFER_BYTES
from meterchat.deposits.sweep_rules import (
    ACTIVATION_SUN,
    TRX_TRANSFER_BYTES,
    USDT_TRANSFER_ENERGY_TO_FRESH,
    USDT_TRANSFER_ENERGY_TO_HOLDER,
    estimate,
    wait_reason,
)

TRX = 1_000_000


def test_a_fresh_address_is_activated_and_sent_its_whole_burn():
    cost = estimate(energy=USDT_TRANSFER_ENERGY_TO_HOLDER, energy_price_sun=100, address_trx_sun=0,
                    activated=False)
    burn = USDT_TRANSFER_ENERGY_TO_HOLDER * 100 + USDT_TRANSFER_BYTES * 1_000
    assert cost.sweep_burn_sun == burn == 6_773_500
    assert cost.topup_sun == burn and cost.topup_fee_sun == ACTIVATION_SUN == 1_100_000
    assert cost.activation and cost.total_sun == burn + 1_100_000


def test_trx_left_on_the_address_is_counted_and_enough_of_it_needs_no_top_up():
    partly = estimate(USDT_TRANSFER_ENERGY_TO_HOLDER, 100, 345_000, activated=True)
    assert partly.topup_sun == 6_773_500 - 345_000
    assert partly.topup_fee_sun == TRX_TRANSFER_BYTES * 1_000 and not partly.activation
    enough = estimate(USDT_TRANSFER_ENERGY_TO_HOLDER, 100, 7 * TRX, activated=True)
    assert enough.topup_sun == 0 and enough.topup_fee_sun == 0
    assert enough.total_sun == enough.sweep_burn_sun


def test_the_chains_energy_and_its_price_make_the_burn():
    fresh = estimate(USDT_TRANSFER_ENERGY_TO_FRESH, 100, 0, activated=True)
    assert fresh.energy == USDT_TRANSFER_ENERGY_TO_FRESH
    assert estimate(USDT_TRANSFER_ENERGY_TO_HOLDER, 420, 0, True).sweep_burn_sun == 64_285 * 420 + 345_000


def test_a_sweep_above_the_cap_waits_saying_what_it_would_cost():
    cost = estimate(USDT_TRANSFER_ENERGY_TO_HOLDER, 100, 0, activated=False)
    reason = wait_reason(cost, max_sun=2 * TRX, hot_wallet_trx_sun=10**12)
    assert reason is not None
    assert "7.8735 TRX" in reason and "sweeps.max_trx_per_sweep (2 TRX)" in reason
    assert "64,285 energy at 100 sun" in reason and "activate" in reason
    assert wait_reason(cost, max_sun=8 * TRX, hot_wallet_trx_sun=10**12) is None


def test_a_hot_wallet_short_of_trx_for_the_top_up_waits():
    cost = estimate(USDT_TRANSFER_ENERGY_TO_HOLDER, 100, 0, activated=True)
    need = cost.topup_sun + cost.topup_fee_sun
    reason = wait_reason(cost, 20 * TRX, hot_wallet_trx_sun=need - 1)
    assert reason is not None and reason.startswith("the hot wallet holds 7.041499 TRX")
    assert wait_reason(cost, 20 * TRX, hot_wallet_trx_sun=need) is None
    no_topup = estimate(USDT_TRANSFER_ENERGY_TO_HOLDER, 100, 8 * TRX, activated=True)
    assert wait_reason(no_topup, 20 * TRX, hot_wallet_trx_sun=0) is None


def test_the_trx_kept_for_withdrawals_is_not_spent_on_a_top_up():
    cost = estimate(USDT_TRANSFER_ENERGY_TO_HOLDER, 100, 0, activated=True)
    need = cost.topup_sun + cost.topup_fee_sun
    reason = wait_reason(cost, 20 * TRX, hot_wallet_trx_sun=need + 5 * TRX,
                         keep_sun=5 * TRX + 1)
    assert reason is not None
    assert "keeps 5.000001 TRX of it for withdrawals (sweeps.keep_trx_for_withdrawals)" in reason
    assert wait_reason(cost, 20 * TRX, hot_wallet_trx_sun=need + 5 * TRX,
                       keep_sun=5 * TRX) is None
    # A sweep that needs no top-up spends none of the hot wallet's TRX: the floor is moot.
    no_topup = estimate(USDT_TRANSFER_ENERGY_TO_HOLDER, 100, 8 * TRX, activated=True)
    assert wait_reason(no_topup, 20 * TRX, hot_wallet_trx_sun=0, keep_sun=10 * TRX) is None


def test_a_delegated_sweep_burns_only_bandwidth_and_an_activation():
    from meterchat.deposits.sweep_rules import estimate_delegated, stake_wait_reason

    fresh = estimate_delegated(64_285, 0, 6_430 * TRX, 0, 0, activated=False)
    assert fresh.sweep_burn_sun == 0 and fresh.stake_sun == 6_430 * TRX
    assert fresh.topup_sun == 345_000 and fresh.topup_fee_sun == ACTIVATION_SUN
    assert fresh.delegation_fee_sun == 2 * 280_000
    assert fresh.total_sun == 1_100_000 + 560_000
    # Activated with free bandwidth left: no top-up at all.
    later = estimate_delegated(64_285, 0, 6_430 * TRX, 0, 600, activated=True)
    assert later.topup_sun == 0 and later.total_sun == 560_000
    # Its free points spent: the bandwidth's TRX, less what it holds.
    spent = estimate_delegated(64_285, 0, 6_430 * TRX, 100_000, 0, activated=True)
    assert spent.topup_sun == 245_000 and spent.topup_fee_sun == 268_000
    # The address still has the energy: nothing is lent, nothing to take back.
    has = estimate_delegated(64_285, 64_285, 0, 0, 600, activated=True)
    assert has.stake_sun == 0 and has.total_sun == 0
    reason = stake_wait_reason(fresh, delegatable_sun=1_000 * TRX)
    assert reason is not None and reason.startswith(
        "the hot wallet can lend 1000 TRX of its energy stake, less than the 6430 TRX "
        "(64,285 energy)")
    assert stake_wait_reason(fresh, delegatable_sun=6_430 * TRX) is None
    capped = wait_reason(fresh, max_sun=TRX, hot_wallet_trx_sun=10**12)
    assert capped is not None and "sweeps.max_trx_per_sweep (1 TRX)" in capped
    assert "activate" in capped
