"""The bound on top-up bonuses that keeps laundering through a colluding seller unprofitable
(a pure rule, no I/O). A buyer who spends a whole top-up and its bonus on their own seller
account leaves that seller (1 + bonus)(1 - commission) of the top-up: the bonus must keep
that below 1. Read by the config's check of `economy.bonus_tiers` and by the economy's
checks of promotions and sellers' own commissions."""

from __future__ import annotations

from decimal import Decimal

from meterchat.core.units import PPM, commission_ppm_from_percent

# Per-charge rounding gives the seller's side at most 1 µUSDT of a charge of at least one
# segment at the lowest rate (1,000 µUSDT): 0.1 %, counted against the bonus bound.
BONUS_ROUNDING_PPM = 1_000


def max_bonus_ppm(commission_ppm: int) -> int:
    """The largest bonus (tier + promotion, ppm of a top-up) with which a buyer who spends a
    whole top-up and its bonus on a colluding seller at this commission leaves the seller
    less than the top-up: (1 + b)(1 - c + rounding) <= 1. 0 when no bonus is safe."""
    return max(0, PPM * PPM // (PPM - commission_ppm + BONUS_ROUNDING_PPM) - PPM)


def commission_floor_ppm(commission_percent: Decimal, tip_commission_percent: Decimal) -> int:
    """The lowest commission the config puts in force: minutes, and tips where set apart."""
    floor = commission_ppm_from_percent(commission_percent)
    if tip_commission_percent >= 0:
        floor = min(floor, commission_ppm_from_percent(tip_commission_percent))
    return floor
