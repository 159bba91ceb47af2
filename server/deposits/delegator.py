"""Sweeps whose energy is lent by Stake 2.0 (sweeps.energy = "delegate"): the steps the sweeper
(sweeper.py) takes for them, each transaction exactly once like its others (signed, stored
before broadcast, broadcast again with the same bytes, confirmed on a solidified SUCCESS
receipt; a new one only once the stored one is proven expired).

The staked wallet is the hot wallet: the operator stakes some of its TRX for ENERGY
(freezebalancev2); a sweep's address is lent just the energy its transfer lacks (the chain's
triggerconstantcontract figure less what the address has left), as sun of stake computed
from the network's totals (getaccountresource), then the sweep is signed, and once the sweep
is final (confirmed or failed) the stake is taken back. The address needs no TRX for energy;
its bandwidth comes from its free points, or from a TRX top-up when they are spent or the
address was never activated. Every TRX burned (the top-up's, the two stake transactions'
bandwidth) is recorded on the sweep.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from meterchat.chain.gateway import AccountResource, BadTransaction, ChainTx
from meterchat.core.db import now_ms
from meterchat.core.logs import event
from meterchat.deposits import sweep_rules, sweeps
from meterchat.deposits.sweeps import Sweep

if TYPE_CHECKING:
    from meterchat.deposits.sweeper import Sweeper

log = logging.getLogger("meterchat.deposits.sweeper")

ENERGY = "ENERGY"


async def _resources(sw: Sweeper, s: Sweep) -> tuple[int, AccountResource, AccountResource,
                                                      bool]:
    """(the sweep's energy, the address's resources, the hot wallet's, address activated)."""
    hot = sw.hot_wallet_address or ""
    energy = await sw.prices.usdt_transfer_energy(sw.gateway, s.address, hot)
    exists = await sw.gateway.account_exists(s.address)
    mine = await sw.gateway.account_resource(s.address) if exists else AccountResource()
    return energy, mine, await sw.gateway.account_resource(hot), exists


async def _stake_reason(sw: Sweeper, cost: sweep_rules.SweepCost) -> str | None:
    if not cost.stake_sun:
        return None
    if sw._stake_left is None:
        sw._stake_left = await sw.gateway.delegatable_sun(sw.hot_wallet_address or "", ENERGY)
    return sweep_rules.stake_wait_reason(cost, sw._stake_left)


async def start(sw: Sweeper, s: Sweep) -> None:
    """waiting: the cost; a top-up when the address must be activated or lacks bandwidth,
    else straight on to the delegation."""
    from meterchat.deposits.sweeper import NO_KEY_REASON, NO_SEED_REASON

    if not sw.has_seed:
        await sw.wait(s, NO_SEED_REASON)
        return
    if sw.hot_key is None or not sw.hot_wallet_address:
        await sw.wait(s, NO_KEY_REASON)
        return
    energy, mine, hot, exists = await _resources(sw, s)
    cost = sweep_rules.estimate_delegated(
        energy, mine.energy_left, hot.stake_sun_for(energy - mine.energy_left),
        await sw.gateway.trx_balance_sun(s.address), mine.net_left, exists)
    if cost.topup_sun and sw._hot_trx_left is None:
        sw._hot_trx_left = await sw.gateway.trx_balance_sun(sw.hot_wallet_address)
    reason = sweep_rules.wait_reason(cost, sw.cfg.max_sun,
                                     sw._hot_trx_left if cost.topup_sun else None,
                                     sw.cfg.keep_sun) or await _stake_reason(sw, cost)
    if reason is not None:
        await sw.wait(s, reason)
        return
    if cost.topup_sun:
        await sw.send_topup(s, cost)
        return
    if await sw.db.tx(sweeps.skip_topup_tx, s.id, now_ms()):
        fresh = await sw.db.read(sweeps.sweep, s.id)
        if fresh is not None:
            await delegate(sw, fresh)


async def delegate(sw: Sweeper, s: Sweep) -> None:
    """funded, nothing lent yet: lend the energy the address lacks (or none)."""
    from meterchat.deposits.sweeper import NO_KEY_REASON

    key = sw.hot_key
    if key is None or not sw.hot_wallet_address:
        await sw.wait(s, NO_KEY_REASON)
        return
    energy, mine, hot, _ = await _resources(sw, s)
    lend = max(0, energy - mine.energy_left)
    if lend == 0:
        if await sw.db.tx(sweeps.skip_delegation_tx, s.id, now_ms()):
            fresh = await sw.db.read(sweeps.sweep, s.id)
            if fresh is not None:
                await sw.sign(fresh)
        return
    stake_sun = hot.stake_sun_for(lend)
    cost = sweep_rules.SweepCost(energy=energy, energy_price_sun=0, sweep_burn_sun=0,
                                 topup_sun=0, topup_fee_sun=0, activation=False,
                                 stake_sun=stake_sun)
    reason = await _stake_reason(sw, cost)
    if reason is not None:
        await sw.wait(s, reason)
        return
    try:
        signed = await sw.gateway.build_delegation(key.reveal(), s.address, stake_sun, ENERGY)
    except BadTransaction as exc:
        await sw.wait(s, f"cannot build the energy delegation: {exc}")
        return
    if not await sw.db.tx(sweeps.store_delegate_tx, s.id, signed, stake_sun, now_ms()):
        return
    if sw._stake_left is not None:
        sw._stake_left -= stake_sun
    event(log, "sweep_delegate_signed", sweep_id=s.id, txid=signed.txid,
          stake_sun=stake_sun, energy=lend)
    sw.at("delegate_signed")
    await sw.broadcast(s.id, signed.txid, signed.signed_json, "delegate_broadcast")


async def reclaim(sw: Sweeper, s: Sweep) -> None:
    """A final sweep's lent energy: take it back (or follow the undelegation)."""
    if s.delegation_status == "undelegating" and s.undelegate_txid:
        await sw.follow(s, s.undelegate_txid)
        return
    if s.delegated_sun == 0:
        await sw.db.tx(sweeps.finish_delegation_tx, s.id, now_ms())
        return
    key = sw.hot_key
    if key is None:
        return
    try:
        signed = await sw.gateway.build_delegation(key.reveal(), s.address, s.delegated_sun,
                                                   ENERGY, undelegate=True)
    except BadTransaction as exc:
        event(log, "sweep_undelegate_refused", logging.WARNING, sweep_id=s.id,
              reason=str(exc)[:200])
        return
    if not await sw.db.tx(sweeps.store_undelegate_tx, s.id, signed, now_ms()):
        return
    event(log, "sweep_undelegate_signed", sweep_id=s.id, txid=signed.txid,
          stake_sun=s.delegated_sun)
    sw.at("undelegate_signed")
    await sw.broadcast(s.id, signed.txid, signed.signed_json, "undelegate_broadcast")


async def settle(sw: Sweeper, s: Sweep, txid: str, tx: ChainTx, kind: str) -> None:
    """A solidified receipt of a delegation or an undelegation: its bandwidth recorded; a
    delegation that succeeded lets the sweep be signed."""
    ok = tx.succeeded
    what = "energy delegation" if kind == "delegate" else "undelegation"
    reason = None if ok else f"the {what} failed on chain ({tx.result or 'FAILED'}); retried"
    if not await sw.db.tx(sweeps.settle_tx, s.id, txid, ok, tx.result or "FAILED",
                          tx.fee_sun, tx.block_number or 0, reason, now_ms()):
        return
    event(log, f"sweep_{kind}d" if ok else f"sweep_{kind}_failed",
          logging.INFO if ok else logging.WARNING, sweep_id=s.id, txid=txid,
          fee_sun=tx.fee_sun, block=tx.block_number)
    if ok and kind == "delegate":
        fresh = await sw.db.read(sweeps.sweep, s.id)
        if fresh is not None and fresh.delegation_status == "delegated":
            await sw.sign(fresh)
