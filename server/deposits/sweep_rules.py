"""The pure rules of sweeps (no I/O): what moving a personal address's USDT to the hot wallet
costs in TRX, how much TRX the hot wallet sends the address first, and why a sweep waits.

The sweep is a USDT transfer owned by the personal address, so the address pays its energy
and bandwidth by burning TRX. The energy and its price are the chain's own, read by the
sweeper (triggerconstantcontract of the transfer from the address to the hot wallet, about
64,285 to a hot wallet that holds USDT and 130,285 to one that holds none; getEnergyFee),
through the app's one cache (chain/prices.py); 345 bytes of bandwidth at 1,000 sun, counted
even though the address's 600 free points a day may cover them. The hot wallet sends just
what the address lacks (its own TRX, left over from an earlier sweep, counts). An address
that never received TRX is activated by that first top-up, which burns 1.1 TRX from the hot
wallet (1 TRX account fee + 0.1 TRX of bandwidth); a later top-up burns its 268 bytes of
bandwidth. A sweep whose estimated TRX (the burns of the top-up and of the sweep) exceeds
`sweeps.max_trx_per_sweep` waits, and so does one the hot wallet cannot pay for without
going below `sweeps.keep_trx_for_withdrawals` (the TRX left for withdrawals' energy), each
saying why. With `sweeps.energy = "delegate"` the energy is lent from the hot wallet's
Stake 2.0 stake instead (estimate_delegated), and a hot wallet without enough stake to lend
makes the sweep wait, saying so.
"""

from __future__ import annotations

from dataclasses import dataclass

from meterchat.chain.gateway import USDT_TRANSFER_BYTES
from meterchat.core.units import musdt_to_usdt_str

USDT_TRANSFER_ENERGY_TO_HOLDER = 64_285
USDT_TRANSFER_ENERGY_TO_FRESH = 130_285
TRX_TRANSFER_BYTES = 268
NET_PRICE_SUN = 1_000
ACTIVATION_SUN = 1_100_000
STAKE_TX_BYTES = 280  # a DelegateResource or UnDelegateResource, signed

OPEN = ("waiting", "funding", "funded", "signed", "sent")
FINAL = ("confirmed", "failed")


def trx(sun: int) -> str:
    """Sun as a TRX string (6 decimals, like µUSDT)."""
    return musdt_to_usdt_str(sun)


@dataclass(frozen=True)
class SweepCost:
    energy: int
    energy_price_sun: int
    sweep_burn_sun: int  # what the sweep itself burns at the address (energy + bandwidth)
    topup_sun: int  # what the hot wallet sends the address first (0: it has enough)
    topup_fee_sun: int  # what that top-up burns from the hot wallet (activation or bandwidth)
    activation: bool
    # sweeps.energy = "delegate": the stake lent (sun of staked TRX, not spent) and the
    # bandwidth its delegation and undelegation burn from the hot wallet.
    stake_sun: int = 0
    delegation_fee_sun: int = 0

    @property
    def total_sun(self) -> int:
        """The TRX this sweep is estimated to burn in all."""
        return self.sweep_burn_sun + self.topup_fee_sun + self.delegation_fee_sun


def estimate(energy: int, energy_price_sun: int, address_trx_sun: int,
             activated: bool) -> SweepCost:
    """`energy` and `energy_price_sun` as the chain answers them for this transfer."""
    burn = energy * energy_price_sun + USDT_TRANSFER_BYTES * NET_PRICE_SUN
    topup = max(0, burn - address_trx_sun) if activated else burn
    fee = 0
    if topup:
        fee = ACTIVATION_SUN if not activated else TRX_TRANSFER_BYTES * NET_PRICE_SUN
    return SweepCost(energy=energy, energy_price_sun=energy_price_sun, sweep_burn_sun=burn,
                     topup_sun=topup, topup_fee_sun=fee, activation=not activated)


def estimate_delegated(energy: int, energy_left: int, stake_sun: int, address_trx_sun: int,
                       address_net_left: int, activated: bool) -> SweepCost:
    """The sweep's energy lent from the hot wallet's stake (sweeps.energy = "delegate"):
    `stake_sun` of stake gives the address the `energy - energy_left` it lacks. The address
    burns no TRX for energy; its bandwidth comes from its free points when it has 345 left,
    else from TRX the top-up sends; an address never activated is activated by a top-up of
    that bandwidth's TRX (1.1 TRX burned). The delegation and the undelegation each burn their
    280 bytes of the hot wallet's bandwidth (counted even though its free points may cover
    them)."""
    net_short = address_net_left < USDT_TRANSFER_BYTES
    bandwidth_sun = USDT_TRANSFER_BYTES * NET_PRICE_SUN
    topup = 0
    if not activated:
        topup = bandwidth_sun
    elif net_short:
        topup = max(0, bandwidth_sun - address_trx_sun)
    fee = 0
    if topup:
        fee = ACTIVATION_SUN if not activated else TRX_TRANSFER_BYTES * NET_PRICE_SUN
    lend = max(0, energy - energy_left)
    return SweepCost(energy=energy, energy_price_sun=0, sweep_burn_sun=0, topup_sun=topup,
                     topup_fee_sun=fee, activation=not activated,
                     stake_sun=stake_sun if lend else 0,
                     delegation_fee_sun=2 * STAKE_TX_BYTES * NET_PRICE_SUN if lend else 0)


def stake_wait_reason(cost: SweepCost, delegatable_sun: int) -> str | None:
    """Why a delegated sweep waits for stake, or None."""
    if cost.stake_sun and delegatable_sun < cost.stake_sun:
        return (f"the hot wallet can lend {trx(delegatable_sun)} TRX of its energy stake, less "
                f"than the {trx(cost.stake_sun)} TRX ({cost.energy:,} energy) this sweep needs: "
                "stake more TRX for ENERGY (freezebalancev2) or set sweeps.energy = \"burn\"")
    return None


def wait_reason(cost: SweepCost, max_sun: int, hot_wallet_trx_sun: int | None,
                keep_sun: int = 0) -> str | None:
    """Why this sweep cannot start now, or None. `hot_wallet_trx_sun` is what the hot wallet
    holds and has not promised to another top-up; `keep_sun` of it stays for withdrawals."""
    if cost.total_sun > max_sun and cost.energy_price_sun == 0:
        return (f"this sweep would burn {trx(cost.total_sun)} TRX (its bandwidth and the "
                f"delegation's{', plus 1.1 TRX to activate the address' if cost.activation else ''}"
                f"), more than sweeps.max_trx_per_sweep ({trx(max_sun)} TRX): it waits until "
                "that is raised")
    if cost.total_sun > max_sun:
        parts = f"{cost.energy:,} energy at {cost.energy_price_sun} sun and its bandwidth"
        if cost.activation:
            parts += ", plus 1.1 TRX to activate the address"
        return (f"this sweep would burn {trx(cost.total_sun)} TRX ({parts}), more than "
                f"sweeps.max_trx_per_sweep ({trx(max_sun)} TRX): it waits until that is "
                "raised or the energy price falls")
    need = cost.topup_sun + cost.topup_fee_sun
    if need and hot_wallet_trx_sun is not None and hot_wallet_trx_sun < need:
        return (f"the hot wallet holds {trx(hot_wallet_trx_sun)} TRX, less than the "
                f"{trx(need)} TRX this sweep's top-up needs: waiting for the operator to top "
                "it up")
    if need and hot_wallet_trx_sun is not None and keep_sun and \
            hot_wallet_trx_sun - keep_sun < need:
        return (f"the hot wallet holds {trx(hot_wallet_trx_sun)} TRX and keeps "
                f"{trx(keep_sun)} TRX of it for withdrawals (sweeps.keep_trx_for_withdrawals),"
                f" leaving less than the {trx(need)} TRX this sweep's top-up needs: waiting "
                "for the operator to top it up")
    return None
