"""Held earnings: while `[operator] earnings_hold_hours` > 0 a seller's call earnings land in
`user:<id>:pending` (billing credits the account each call was opened with), and this job
moves them to `available` once they are older than the hold.

What is due is derived from the ledger alone, oldest money first: the pending balance minus
what was credited to it within the hold window (a dispute refund that took from `pending`
has already reduced the balance). No extra table, nothing to keep in step. A hold of 0
releases whatever is still pending (the operator turned the hold off).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from meterchat.appkeys import CONFIG, DB
from meterchat.core import logs
from meterchat.core.db import Database, now_ms
from meterchat.core.jobs import interval_job
from meterchat.core.units import HOUR_MS
from meterchat.money import ledger

log = logging.getLogger("meterchat.earnings")
KIND_RELEASE = "earnings_release"


def due_musdt(pending_musdt: int, young_credits_musdt: int) -> int:
    """What may leave `pending`: everything but the credits still inside the hold."""
    return max(0, pending_musdt - young_credits_musdt)


@dataclass(frozen=True)
class Released:
    user_id: int
    amount_musdt: int


def release_due_tx(conn: sqlite3.Connection, hold_ms: int, at_ms: int) -> list[Released]:
    """Move every pending amount older than the hold to `available` (inside a transaction).
    The idempotency key names the last posting the amount was computed from, so a replay
    of the same state moves nothing twice."""
    cutoff = at_ms - hold_ms
    out = []
    for acct_id, user_id, balance in conn.execute(
        "SELECT id, user_id, balance_musdt FROM accounts"
        " WHERE name LIKE 'user:%:pending' AND balance_musdt > 0"
    ).fetchall():
        young, last = conn.execute(
            "SELECT COALESCE(SUM(CASE WHEN p.amount_musdt > 0 AND t.created_at_ms > ?"
            " THEN p.amount_musdt END), 0), MAX(p.id)"
            " FROM postings p JOIN ledger_tx t ON t.id = p.tx_id WHERE p.account_id = ?",
            (cutoff, acct_id),
        ).fetchone()
        amount = due_musdt(balance, young)
        if amount <= 0:
            continue
        ledger.transfer(conn, ledger.user_account(user_id, "pending"),
                        ledger.user_account(user_id), amount, KIND_RELEASE,
                        idem_key=f"earnings:{user_id}:release:{last}",
                        ref=f"user:{user_id}")
        out.append(Released(user_id, amount))
    return out


async def release_once(db: Database, hold_hours: float) -> list[Released]:
    done = await db.tx(release_due_tx, int(hold_hours * HOUR_MS), now_ms())
    for r in done:
        logs.event(log, "earnings_released", user_id=r.user_id, amount_musdt=r.amount_musdt)
    return done


async def release_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the release job every [operator] release_interval_s."""
    cfg = app[CONFIG].operator
    db = app[DB]

    lock = asyncio.Lock()
    stopped = False

    async def job() -> None:
        async with lock:
            if stopped:
                return
            try:
                await release_once(db, cfg.earnings_hold_hours)
            except Exception:
                log.exception("earnings release failed")

    async def stop() -> None:
        nonlocal stopped
        stopped = True
        async with lock:  # a pass under way finishes before the database closes
            pass

    async with interval_job(app, job, cfg.release_interval_s, "earnings_release", stop):
        yield
