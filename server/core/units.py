"""Units of money and time, and their text forms: the one place for each constant and for
the one timestamp format of the API. The ledger unit is 1 µUSDT (USDT has 6 decimals);
1 token = 0.01 USDT = 10,000 µUSDT. Everything here is integer or Decimal, never float.
Times are integer milliseconds since the epoch (`*_ms`)."""

from __future__ import annotations

import time
from decimal import Decimal, InvalidOperation
from typing import overload

MUSDT_PER_USDT = 1_000_000
MUSDT_PER_TOKEN = 10_000
TOKENS_PER_USDT = 100
PPM = 1_000_000  # parts per million: commissions and bonuses
SUN_PER_TRX = 1_000_000  # TRX, burned for energy, is counted in sun

SECOND_MS = 1_000
MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000


def commission_ppm_from_percent(percent: Decimal) -> int:
    """A percent from the config (Decimal, e.g. 12.5) as parts per million (125,000)."""
    return int(Decimal(percent) * 10_000)


@overload
def iso_ms(ms: int) -> str: ...
@overload
def iso_ms(ms: None) -> None: ...


def iso_ms(ms: int | None) -> str | None:
    """The API's timestamp: ISO 8601 UTC with milliseconds, e.g. 2026-12-01T21:49:27.123Z."""
    if ms is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


class AmountError(ValueError):
    """A text amount that is not a valid number of tokens or USDT."""


def _parse(text: str | int | Decimal, places: int, what: str) -> int:
    if isinstance(text, bool) or not isinstance(text, str | int | Decimal):
        raise AmountError(f"{what} must be a decimal string like \"12.5\"")
    try:
        value = Decimal(text) if not isinstance(text, Decimal) else text
    except InvalidOperation:
        raise AmountError(f"{what} must be a decimal string like \"12.5\"") from None
    if not value.is_finite():
        raise AmountError(f"{what} must be a finite number")
    # SQLite integers stop at 9.2e18; nothing real comes near 1e17 µUSDT.
    if abs(value) >= Decimal(10) ** (17 - places):
        raise AmountError(f"{what} is too large")
    scaled = value.scaleb(places)
    if scaled != scaled.to_integral_value():
        raise AmountError(f"{what} has more than {places} decimals")
    return int(scaled)


def usdt_to_musdt(usdt: str | int | Decimal) -> int:
    """"10.000317" -> 10000317; more than 6 decimals is an error, never rounded."""
    return _parse(usdt, 6, "a USDT amount")


def tokens_to_musdt(tokens: str | int | Decimal) -> int:
    """"12.5" tokens -> 125000 µUSDT. A token's 4th decimal is exactly 1 µUSDT, so more
    than 4 decimals is an error, never rounded."""
    return _parse(tokens, 4, "a token amount")


def _format(amount: int, places: int) -> str:
    sign = "-" if amount < 0 else ""
    whole, frac = divmod(abs(amount), 10**places)
    if frac == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:0{places}d}".rstrip("0")


def musdt_to_usdt_str(amount_musdt: int) -> str:
    """10000317 -> "10.000317"."""
    return _format(amount_musdt, 6)


def musdt_to_tokens_str(amount_musdt: int) -> str:
    """µUSDT as tokens (exact: 0.0001 token = 1 µUSDT): 125000 -> "12.5"."""
    return _format(amount_musdt, 4)
