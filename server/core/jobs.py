"""The app's one scheduler of background jobs. `jobs_ctx` (a cleanup_ctx) opens one apscheduler
AsyncIOScheduler under `app[JOBS]`; each job (the deposit watcher, the withdrawal sender, the
earnings release) is registered on it with its interval by `interval_job`, in the cleanup_ctx
that owns the job's resources, and leaves it again before they close.

apscheduler's own lines ("Adding job tentatively", "Scheduler started", a line per run) stay
out of the log: its loggers are held at WARNING. Each job says once that it started."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from meterchat.core.logs import event

log = logging.getLogger("meterchat.jobs")
logging.getLogger("apscheduler").setLevel(logging.WARNING)

RunOnce = Callable[[], Awaitable[object]]
Stop = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Job:
    job_id: str
    seconds: float
    stop: Stop


class Jobs:
    """One AsyncIOScheduler for every interval job of the app. `start()` on the event loop,
    `add()` / `remove()` a job, `shutdown()` once every job has left."""

    def __init__(self) -> None:
        self._scheduler: AsyncIOScheduler | None = None
        self._jobs: dict[str, Job] = {}

    @property
    def job_ids(self) -> list[str]:
        """The jobs scheduled now, as the scheduler holds them."""
        if self._scheduler is None:
            return []
        return [job.id for job in self._scheduler.get_jobs()]

    @property
    def running(self) -> bool:
        return self._scheduler is not None

    def start(self) -> None:
        if self._scheduler is not None:
            raise RuntimeError("the scheduler is already running")
        self._scheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop())
        self._scheduler.start()

    def add(self, job_id: str, run_once: RunOnce, seconds: float, stop: Stop) -> None:
        """Run `run_once` at once and then every `seconds`, never two passes at once (missed
        runs coalesce into one). `stop()` is awaited when the job leaves and must wait for
        a pass under way: apscheduler's asyncio executor would cancel a running job on
        shutdown, cutting the pass off mid-way."""
        if self._scheduler is None:
            raise RuntimeError("the scheduler is not running (jobs_ctx must come first)")
        if job_id in self._jobs:
            raise ValueError(f"a job {job_id!r} is already scheduled")
        self._scheduler.add_job(
            run_once, "interval", seconds=seconds, id=job_id, max_instances=1, coalesce=True,
            misfire_grace_time=None, next_run_time=datetime.datetime.now(datetime.UTC),
        )
        self._jobs[job_id] = Job(job_id, seconds, stop)
        event(log, "job_started", job=job_id, every_s=seconds)

    async def remove(self, job_id: str) -> None:
        """No new run of the job; then its `stop()`, which waits for the pass under way."""
        job = self._jobs.pop(job_id, None)
        if job is None:
            return  # already left (the scheduler was shut down first)
        if self._scheduler is not None:
            self._scheduler.remove_job(job_id)
        await job.stop()

    async def shutdown(self) -> None:
        """Stop every job still scheduled (each waits for its pass), then the scheduler."""
        for job_id in reversed(list(self._jobs)):
            await self.remove(job_id)
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None


JOBS = web.AppKey("jobs", Jobs)


async def jobs_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the app's scheduler, before every job's own cleanup_ctx and shut down
    after them."""
    jobs = Jobs()
    jobs.start()
    app[JOBS] = jobs
    try:
        yield
    finally:
        await jobs.shutdown()


@contextlib.asynccontextmanager
async def interval_job(app: web.Application, run_once: RunOnce, seconds: float, job_id: str,
                       stop: Stop) -> AsyncIterator[None]:
    """The job on the app's scheduler while the block runs (see `Jobs.add`); on exit it
    leaves the scheduler and `stop()` is awaited, before the resources it uses close."""
    jobs = app[JOBS]
    jobs.add(job_id, run_once, seconds, stop)
    try:
        yield
    finally:
        await jobs.remove(job_id)
