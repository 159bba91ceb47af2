"""When the billing passes run: the tick every billing.tick_interval_s (CallManager.tick:
presence, timeouts, one pass for every live call) and, between ticks, a pass for the calls
whose next segment has just completed (the heap of their due times each tick leaves), at
most every billing.meter_gap_s: the meter then trails a boundary by that gap, not by up to
a whole tick, and each pass is a small one instead of one large pass a tick. Time comes
from the manager's Clock."""

from __future__ import annotations

import asyncio
import heapq
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from meterchat.calls.manager import CallManager

log = logging.getLogger("meterchat.calls")
# The live calls by when their next segment completes (monotonic seconds, call id): a heap.
Heap = list[tuple[float, int]]


async def run(manager: CallManager) -> None:
    """The manager's ticker, until cancelled; a failed tick or pass is logged, not fatal."""
    cfg, clock = manager.cfg, manager.clock
    interval = cfg.tick_interval_s
    gap = min(cfg.meter_gap_s, interval)
    next_tick = clock.monotonic() + interval
    boundaries: Heap = []
    while True:
        now = clock.monotonic()
        wake = min(next_tick, max(boundaries[0][0], now + gap) if boundaries else next_tick)
        await asyncio.sleep(max(0.0, wake - now))
        now = clock.monotonic()
        try:
            if now >= next_tick:
                if manager.metrics is not None:
                    manager.metrics.tick_lag_seconds.set(max(0.0, now - next_tick))
                next_tick = max(next_tick + interval, now + gap)
                boundaries = await manager.tick()
            else:
                await bill_boundaries(manager, boundaries, now)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("billing tick failed")


async def bill_boundaries(manager: CallManager, boundaries: Heap, now: float) -> None:
    """Bill the calls whose segment has completed by now; each goes back on the heap for
    its next one (a call that paused meanwhile waits for the tick's scan)."""
    due = []
    while boundaries and boundaries[0][0] <= now:
        _, call_id = heapq.heappop(boundaries)
        rt = manager.active.get(call_id)
        if rt is None or rt.finished:
            continue
        tenths = rt.due_tenths(now)
        if tenths is not None:
            due.append((call_id, tenths))
    if due:
        await manager.bill(due)
        push_next_due(manager, boundaries, due)


def push_next_due(manager: CallManager, heap: Heap, billed: list[tuple[int, int]]) -> None:
    """Back on the heap: each billed call's next segment."""
    now = manager.clock.monotonic()
    for call_id, _ in billed:
        rt = manager.active.get(call_id)
        at = rt.next_due_at(now) if rt is not None else None
        if at is not None and at > now:
            heapq.heappush(heap, (at, call_id))
