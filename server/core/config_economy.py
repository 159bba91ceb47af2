"""Config sections of the market around the calls: `[economy]` (top-up bonus tiers, tips,
spending limits, self-exclusion; `parse_bonus_tiers` reads the tiers), `[sellers]` (photos)
and `[favourites]`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from meterchat.core.config_keys import key
from meterchat.core.units import usdt_to_musdt


def parse_bonus_tiers(tiers: list[str]) -> list[tuple[int, int]]:
    """["50:5", "100:10"] -> [(50 USDT in µUSDT, 5 % in ppm), ...], sorted by threshold.
    Raises ValueError naming the bad entry."""
    out: dict[int, int] = {}
    for text in tiers:
        parts = text.split(":")
        try:
            if len(parts) != 2:
                raise ValueError
            from_usdt, percent = Decimal(parts[0].strip()), Decimal(parts[1].strip())
            if not (from_usdt.is_finite() and percent.is_finite()):
                raise ValueError
            from_musdt = usdt_to_musdt(from_usdt)
        except (ValueError, ArithmeticError):
            raise ValueError(f"{text!r} is not \"from_usdt:percent\" like \"100:10\"") from None
        if from_musdt <= 0 or not Decimal(0) < percent <= Decimal(100):
            raise ValueError(f"{text!r}: from_usdt must be above 0 and percent in (0, 100]")
        ppm = percent * 10_000
        if ppm != ppm.to_integral_value():
            raise ValueError(f"{text!r}: percent has more than 4 decimals")
        if from_musdt in out:
            raise ValueError(f"{text!r}: two tiers start at the same amount")
        out[from_musdt] = int(ppm)
    return sorted(out.items())


@dataclass(frozen=True)
class EconomyConfig:
    bonus_tiers: list[str] = key(
        [], 'top-up bonus tiers "from_usdt:percent", e.g. ["50:5", "100:10"]: a top-up of at '
        "least from_usdt gets percent extra tokens from promo:bonuses (the highest tier "
        "reached applies; bonus tokens pay for minutes, are never withdrawable or tippable; "
        "the highest tier plus any promotion must stay below the bound the lowest commission "
        "sets, 33.1557 % at 25 %)"
    )
    tip_commission_percent: Decimal = key(
        Decimal(-1), "platform share of a tip, percent; -1 = as for call minutes (the "
        "seller's own commission, else billing.commission_percent)",
        min=Decimal(-1), max=Decimal(100),
    )
    tip_window_hours: float = key(24.0, "hours after a call ends in which it can be tipped",
                                  min=0)
    max_tip_tokens: int = key(100_000, "largest single tip, whole tokens", min=1)
    limit_raise_delay_hours: float = key(
        24.0, "hours before a buyer's raised (or removed) spending limit takes effect; "
        "lowering takes effect at once", min=0,
    )
    max_self_exclusion_days: int = key(3650, "longest self-exclusion a buyer may choose",
                                       min=1)

    @property
    def bonus_tiers_ppm(self) -> list[tuple[int, int]]:
        return parse_bonus_tiers(self.bonus_tiers)



@dataclass(frozen=True)
class SellersConfig:
    max_photo_bytes: int = key(
        5 * 1024 * 1024, "largest seller photo upload, bytes (larger: 413 photo_too_large)",
        min=1024)
    max_photo_pixels: int = key(
        40_000_000, "most pixels (width x height) a seller photo may decode to; more is refused"
        " as a decompression bomb (422 photo_too_many_pixels)", min=10_000)
    photo_uploads_per_hour: int = key(
        20, "seller photo uploads one seller may make per hour (more: 429)", min=1)
    photo_dir: Path = key(
        Path("data/photos"), "where the re-encoded seller photos are stored; relative to the"
        " config file")


@dataclass(frozen=True)
class FavouritesConfig:
    notice_interval_minutes: float = key(
        60.0, "at most one 'favourite online' notice (socket, and mail if opted in) per seller"
        " per buyer in this many minutes", min=0)
