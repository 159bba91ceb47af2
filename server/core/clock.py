"""The one clock: monotonic seconds for durations (live time, pauses, timeouts) and wall
milliseconds since the epoch for what is written down. Code that measures time takes a
Clock; the app passes SYSTEM_CLOCK, tests a FakeClock they move by hand with `advance(s)`."""

from __future__ import annotations

import time
from typing import Protocol

from meterchat.core.units import SECOND_MS


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (only differences mean something)."""
        ...

    def now_ms(self) -> int:
        """Wall time: integer milliseconds since the epoch."""
        ...


class SystemClock:
    """The machine's clocks."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now_ms(self) -> int:
        return int(time.time() * SECOND_MS)


SYSTEM_CLOCK = SystemClock()


class FakeClock:
    """A clock that stands still until advanced; both readings move together. Wall time
    starts at the machine's (rows written with it sit among rows written by others)."""

    def __init__(self, monotonic: float = 1000.0, wall_ms: int | None = None) -> None:
        self._start = monotonic
        self._mono = monotonic
        self._wall0 = SYSTEM_CLOCK.now_ms() if wall_ms is None else wall_ms

    def monotonic(self) -> float:
        return self._mono

    def now_ms(self) -> int:
        return self._wall0 + round((self._mono - self._start) * SECOND_MS)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not go back")
        self._mono += seconds
