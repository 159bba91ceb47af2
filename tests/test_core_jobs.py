"""The app's one scheduler (core/jobs.py): every job on one AsyncIOScheduler, first pass at
once then every interval, never two passes of a job at once, and a stop that waits for the
pass under way; the app registers the deposit watcher, the withdrawal sender and the earnings
release on it."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiohttp import web

from meterchat.app import create_app
from meterchat.core import jobs as jobs_module
from meterchat.core.jobs import JOBS, Jobs, interval_job, jobs_ctx
from tests.conftest import chain_config, eventually


class Pass:
    """A job that counts its passes, can be held mid-pass, and stops like the real ones."""

    def __init__(self, hold_s: float = 0.0) -> None:
        self.hold_s = hold_s
        self.runs = 0
        self.running = 0
        self.most_at_once = 0
        self.finished = 0
        self.stopped = False
        self._lock = asyncio.Lock()
        self.entered = asyncio.Event()

    async def run_once(self) -> None:
        if self.stopped:
            return
        async with self._lock:
            self.runs += 1
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            self.entered.set()
            await asyncio.sleep(self.hold_s)
            self.running -= 1
            self.finished += 1

    async def stop(self) -> None:
        self.stopped = True
        async with self._lock:
            pass


async def test_first_pass_at_once_then_every_interval():
    jobs = Jobs()
    jobs.start()
    job = Pass()
    jobs.add("counting", job.run_once, 0.05, job.stop)
    await asyncio.wait_for(job.entered.wait(), 1.0)  # at once, not after the interval
    await asyncio.sleep(0.3)
    await jobs.shutdown()
    assert job.runs >= 3
    assert jobs.job_ids == [] and not jobs.running


async def test_a_slow_pass_never_runs_twice_at_once(caplog):
    caplog.set_level(logging.INFO)
    jobs = Jobs()
    jobs.start()
    job = Pass(hold_s=0.25)
    jobs.add("slow", job.run_once, 0.02, job.stop)
    await asyncio.sleep(0.6)
    await jobs.shutdown()
    assert job.most_at_once == 1 and job.runs >= 2
    # apscheduler's own info lines (a line per run, "Scheduler started") stay out of the log.
    assert [r for r in caplog.records
            if r.name.startswith("apscheduler") and r.levelno <= logging.INFO] == []


async def test_leaving_waits_for_the_pass_under_way_and_others_keep_running():
    jobs = Jobs()
    jobs.start()
    slow, other = Pass(hold_s=0.3), Pass()
    jobs.add("slow", slow.run_once, 0.05, slow.stop)
    jobs.add("other", other.run_once, 0.05, other.stop)
    assert sorted(jobs.job_ids) == ["other", "slow"]
    await asyncio.wait_for(slow.entered.wait(), 1.0)
    await jobs.remove("slow")
    assert slow.finished == slow.runs == 1, "the pass under way was cut off"
    assert jobs.job_ids == ["other"]
    runs = other.runs
    # the one scheduler goes on for the others (a pass every 0.05 s; a busy machine may
    # skip a few, so the wait is for the next one, not for a number of them)
    async def ran_again() -> bool:
        return other.runs > runs

    await eventually(ran_again, timeout_s=5.0)
    await jobs.shutdown()
    await asyncio.sleep(0.1)
    assert slow.runs == 1


async def test_shutdown_stops_every_job_still_scheduled_without_cancelling_it():
    jobs = Jobs()
    jobs.start()
    job = Pass(hold_s=0.2)
    jobs.add("held", job.run_once, 0.05, job.stop)
    await asyncio.wait_for(job.entered.wait(), 1.0)
    await jobs.shutdown()
    assert job.stopped and job.finished == job.runs


async def test_misuse_is_refused():
    jobs = Jobs()
    job = Pass()
    with pytest.raises(RuntimeError, match="not running"):
        jobs.add("early", job.run_once, 1.0, job.stop)
    jobs.start()
    with pytest.raises(RuntimeError, match="already running"):
        jobs.start()
    jobs.add("once", job.run_once, 1.0, job.stop)
    with pytest.raises(ValueError, match="already scheduled"):
        jobs.add("once", job.run_once, 1.0, job.stop)
    await jobs.shutdown()


async def test_interval_job_and_jobs_ctx_on_an_app(aiohttp_client):
    job = Pass(hold_s=0.2)

    async def job_ctx(app: web.Application):
        async with interval_job(app, job.run_once, 0.05, "app_job", job.stop):
            yield

    app = web.Application()
    app.cleanup_ctx.append(jobs_ctx)
    app.cleanup_ctx.append(job_ctx)
    client = await aiohttp_client(app)
    assert app[JOBS].job_ids == ["app_job"]
    await asyncio.wait_for(job.entered.wait(), 1.0)
    await client.close()
    assert job.stopped and job.finished == job.runs >= 1
    assert not app[JOBS].running


async def test_the_app_runs_its_three_jobs_on_one_scheduler(aiohttp_client, tmp_path,
                                                            monkeypatch, caplog):
    made = []

    class CountedScheduler(jobs_module.AsyncIOScheduler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(jobs_module, "AsyncIOScheduler", CountedScheduler)
    caplog.set_level(logging.INFO)
    client = await aiohttp_client(create_app(chain_config(tmp_path)))
    jobs = client.app[JOBS]
    assert len(made) == 1
    assert sorted(jobs.job_ids) == ["deposit_watcher", "earnings_release", "withdrawal_sender"]
    assert sorted(j.id for j in made[0].get_jobs()) == sorted(jobs.job_ids)
    started = [r.fields["job"] for r in caplog.records if r.getMessage() == "job_started"]
    assert sorted(started) == sorted(jobs.job_ids)  # one line each
    await client.close()
    assert not jobs.running and jobs.job_ids == []
