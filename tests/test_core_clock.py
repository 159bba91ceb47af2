"""core/clock.py: the system clock reads the machine's, the fake one moves only by hand."""

from __future__ import annotations

import time

import pytest

from meterchat.core.clock import SYSTEM_CLOCK, Clock, FakeClock


def test_the_system_clock_reads_the_machines_clocks():
    clock: Clock = SYSTEM_CLOCK
    before_ms, before = int(time.time() * 1000), time.monotonic()
    ms, mono = clock.now_ms(), clock.monotonic()
    assert before_ms <= ms <= int(time.time() * 1000)
    assert before <= mono <= time.monotonic()


def test_a_fake_clock_stands_still_until_advanced_and_both_readings_move_together():
    clock: Clock = FakeClock(monotonic=50.0, wall_ms=1_750_000_000_000)
    assert isinstance(clock, FakeClock)
    assert (clock.monotonic(), clock.now_ms()) == (50.0, 1_750_000_000_000)
    time.sleep(0.01)
    assert (clock.monotonic(), clock.now_ms()) == (50.0, 1_750_000_000_000)
    for _ in range(10):
        clock.advance(0.1)  # sums of 0.1 are not exact in binary: the wall time still is
    assert clock.now_ms() == 1_750_000_001_000
    assert clock.monotonic() == pytest.approx(51.0)
    clock.advance(0)
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_a_fake_clocks_wall_time_starts_at_the_machines():
    before = SYSTEM_CLOCK.now_ms()
    assert before <= FakeClock().now_ms() <= SYSTEM_CLOCK.now_ms()
