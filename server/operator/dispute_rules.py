"""The rules of a dispute refund (pure, no I/O): when a call may still be disputed, how a
refund splits between the seller and the commission, and where the seller's part is taken
from."""

from __future__ import annotations

from meterchat.core.units import DAY_MS


def within_window(ended_at_ms: int | None, now_ms: int, window_days: int) -> bool:
    """A call may be disputed up to `operator.dispute_window_days` after it ended."""
    return ended_at_ms is not None and now_ms <= ended_at_ms + window_days * DAY_MS


def refund_split(refund_musdt: int, charged_musdt: int, seller_earned_musdt: int
                 ) -> tuple[int, int]:
    """(from seller, from commission) in the proportion of the original split. The seller's
    part is rounded down, so rounding never takes more from the seller than they earned."""
    if refund_musdt <= 0 or charged_musdt <= 0:
        return 0, 0
    seller = refund_musdt * seller_earned_musdt // charged_musdt
    return seller, refund_musdt - seller


def take_from_seller(amount_musdt: int, pending_musdt: int, available_musdt: int
                     ) -> tuple[int, int, int]:
    """(from pending, from available, shortfall the platform covers)."""
    from_pending = min(amount_musdt, max(0, pending_musdt))
    rest = amount_musdt - from_pending
    from_available = min(rest, max(0, available_musdt))
    return from_pending, from_available, rest - from_available
