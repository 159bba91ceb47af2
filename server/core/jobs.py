"""Background jobs: the deposit watcher, the withdrawal sender and the earnings release each
run as one apscheduler interval job, started and stopped the same way here."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import AsyncIterator, Awaitable, Callable

from apscheduler.schedulers.asyncio import AsyncIOScheduler


@contextlib.asynccontextmanager
async def interval_job(run_once: Callable[[], Awaitable[None]], seconds: float, job_id: str,
                       stop: Callable[[], Awaitable[None]]) -> AsyncIterator[None]:
    """Run `run_once` at once and then every `seconds`, never two passes at once (missed
    runs coalesce into one). On exit `stop()` is awaited first and must wait for a pass
    under way: apscheduler's asyncio executor would cancel a running job on shutdown,
    cutting the pass off mid-way."""
    scheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop())
    scheduler.add_job(
        run_once, "interval", seconds=seconds, id=job_id, max_instances=1, coalesce=True,
        misfire_grace_time=None, next_run_time=datetime.datetime.now(datetime.UTC),
    )
    scheduler.start()
    try:
        yield
    finally:
        await stop()
        scheduler.shutdown(wait=False)
