"""A chain job's pass that never raises (the deposit watcher, the withdrawal sender, the
sweeper): one pass at a time; a failed pass (the node unreachable, or anything else, logged
with its traceback) backs the job off, its interval doubled for each failure in a row up to
MAX_BACKOFF_S, and says why in one log event; `stop` lets no new pass start and waits for the
one under way. Each job's state (`failures`, `last_error`) is what its health and metrics
show."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from meterchat.chain.gateway import ChainUnavailable
from meterchat.core.logs import event

T = TypeVar("T")
MAX_BACKOFF_S = 60.0


class RetryingJob:
    """The pass-and-back-off of a job. `name` is said in the log of an unexpected failure,
    `error_event` is the event of every failure, `recovered_event` (if any) the event of the
    first pass that succeeds after failures; `interval_s` is the job's interval."""

    def __init__(self, name: str, error_event: str, interval_s: float,
                 logger: logging.Logger, recovered_event: str | None = None) -> None:
        self.job_name = name
        self.error_event = error_event
        self.recovered_event = recovered_event
        self.job_interval_s = interval_s
        self.job_log = logger
        self.failures = 0
        self.backoff_until = 0.0
        self.last_error: str | None = None
        self.stopped = False
        self._lock = asyncio.Lock()

    async def stop(self) -> None:
        """No new passes; wait for the one under way."""
        self.stopped = True
        async with self._lock:
            pass

    async def run_guarded(self, one_pass: Callable[[], Awaitable[T]],
                          after: Callable[[], Awaitable[None]] | None = None) -> T | None:
        """One pass unless stopped or backing off: `one_pass`'s value, or None when it did
        not run or failed (counted, backing the job off). `after` runs in the same turn,
        whatever the outcome."""
        if self.stopped or time.monotonic() < self.backoff_until:
            return None
        async with self._lock:
            value = await self._guarded(one_pass)
            if after is not None:
                await after()
        return value

    async def _guarded(self, one_pass: Callable[[], Awaitable[T]]) -> T | None:
        try:
            value = await one_pass()
        except ChainUnavailable as exc:
            self._fail(str(exc))
            return None
        except Exception as exc:  # keep the job going whatever happened; say why
            self.job_log.exception("%s pass failed", self.job_name)
            self._fail(f"{type(exc).__name__}: {exc}")
            return None
        if self.failures and self.recovered_event is not None:
            event(self.job_log, self.recovered_event, after_failures=self.failures)
        self.failures = 0
        self.last_error = None
        return value

    def _fail(self, reason: str) -> None:
        self.failures += 1
        self.last_error = reason
        delay = min(MAX_BACKOFF_S, self.job_interval_s * (2 ** min(self.failures, 10)))
        self.backoff_until = time.monotonic() + delay
        event(self.job_log, self.error_event, logging.WARNING, reason=reason,
              failures=self.failures, retry_in_s=round(delay, 2))
