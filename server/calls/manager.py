"""Calls: the state machine (ringing -> connecting -> live <-> paused -> ended, also declined,
missed, cancelled), the rules for starting one (rate acknowledgment, seller online and not
busy, blocks, pre-funding, spending cap), live time from both parties' media heartbeats,
and the CallManager that keeps the active calls in memory, relays signalling between the
two parties, runs the billing pass every tick and pushes call.* and meter messages.

Live time runs only while both parties report `connected` with growing counters, each
report fresh for media_timeout_s; the server's monotonic clock measures it. A party stops
counting at the moment its last good report goes stale, its report says otherwise, or its
socket closes, so a stale party is never billed past that moment even if noticed later.

Pauses are bounded over the whole call (count and total time), and each pause names the
side it comes from (`paused_by`). A call's end is written to the database before the call
is forgotten in memory; a write that fails is tried again on the next tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from meterchat.accounts.users import User
from meterchat.calls.signalling import Hub
from meterchat.core import logs
from meterchat.core.config import Config
from meterchat.core.db import Database, now_ms
from meterchat.core.errors import (
    ApiError,
    Conflict,
    Forbidden,
    NotFound,
    PaymentRequired,
    Unavailable,
    Unprocessable,
)
from meterchat.core.units import MUSDT_PER_TOKEN, commission_ppm_from_percent, musdt_to_tokens_str
from meterchat.economy import limits as economy_limits
from meterchat.money import billing, ledger
from meterchat.money.billing import ACCEPTED_STATES, FINAL_STATES
from meterchat.sellers import store as sellers

log = logging.getLogger("meterchat.calls")
# A tick over many calls lets the event loop run between batches of this many.
YIELD_EVERY = 32
# Counters in a media report: non-negative integers that a browser's JavaScript number holds
# exactly (and far below SQLite's 2**63).
MAX_COUNTER = 2**53 - 1


# ---- live time (pure, clock passed in) ---------------------------------------------------

@dataclass
class PartyMedia:
    """What one party's heartbeats say. ok_until: the moment this party stops counting."""

    socket_open: bool = False
    ok_until: float = float("-inf")
    last_bytes: int | None = None
    last_frames: int | None = None
    # Kept for the call's record (call_media), which a dispute is decided on.
    reports: int = 0
    good_reports: int = 0
    last_state: str | None = None
    last_report_at: float | None = None

    def report(self, now: float, connected: bool, bytes_received: int | None,
               frames_decoded: int | None, timeout_s: float) -> None:
        grew = (
            bytes_received is not None and frames_decoded is not None
            and self.last_bytes is not None and self.last_frames is not None
            and bytes_received > self.last_bytes and frames_decoded > self.last_frames
        )
        if bytes_received is not None:
            self.last_bytes = bytes_received
        if frames_decoded is not None:
            self.last_frames = frames_decoded
        self.reports += 1
        self.last_state = "connected" if connected else "disconnected"
        self.last_report_at = now
        if connected and grew and self.socket_open:
            self.good_reports += 1
            self.ok_until = now + timeout_s
        else:
            self.ok_until = min(self.ok_until, now)

    def socket_closed(self, now: float) -> None:
        self.socket_open = False
        self.ok_until = min(self.ok_until, now)

    def gone(self, now: float, timeout_s: float) -> bool:
        """This party's side is gone: its socket closed or no report of any kind for
        timeout_s. (A party that still reports, even media lost, is present.) The other
        party cannot make this happen: it is this party's own socket and heartbeats."""
        return (not self.socket_open or self.last_report_at is None
                or now - self.last_report_at >= timeout_s)


@dataclass(frozen=True)
class Ending:
    """An end decided for a call and not yet written (or being written): what it will be
    written with, fixed at the moment it was decided, so a retry changes nothing."""

    state: str
    reason: str
    live_ms: int
    seller_side_failed: bool
    pauses: billing.Pauses


@dataclass
class Runtime:
    """An active call in memory. Times are monotonic seconds."""

    call_id: int
    buyer_id: int
    seller_id: int
    rate_tokens_per_min: int
    state: str
    state_since: float
    media_timeout_s: float
    billed_tenths: int = 0
    live_s: float = 0.0  # accumulated before live_since
    live_since: float | None = None
    parties: dict[int, PartyMedia] = field(default_factory=dict)
    sockets: dict[int, Any] = field(default_factory=dict)
    pauses: int = 0
    paused_s: float = 0.0  # pauses that are over
    paused_by: str | None = None  # the current pause's side: buyer, seller or both
    ending: Ending | None = None  # decided; finished once written
    end_failures: int = 0  # writes of the end the database refused
    finished: bool = False

    def __post_init__(self) -> None:
        self.parties = {self.buyer_id: PartyMedia(), self.seller_id: PartyMedia()}

    def other(self, user_id: int) -> int:
        return self.seller_id if user_id == self.buyer_id else self.buyer_id

    def side(self, user_id: int) -> str:
        return "buyer" if user_id == self.buyer_id else "seller"

    def ok_until(self) -> float:
        return min(p.ok_until for p in self.parties.values())

    def live_ms(self, now: float) -> int:
        if self.ending is not None:
            return self.ending.live_ms
        total = self.live_s
        if self.live_since is not None:
            total += max(0.0, min(now, self.ok_until()) - self.live_since)
        return int(total * 1000)

    def paused_total_s(self, now: float) -> float:
        current = max(0.0, now - self.state_since) if self.state == "paused" else 0.0
        return self.paused_s + current

    def pause_record(self, now: float) -> billing.Pauses:
        return billing.Pauses(self.pauses, int(self.paused_total_s(now) * 1000),
                              self.paused_by if self.state == "paused" else None)

    def blame(self, now: float) -> str | None:
        """The side a pause comes from, now. Each party reports what it *receives*, so when
        one side's network dies the other side's report (media stalled) often arrives first:
        a party that is gone (socket closed, or no report for media_timeout_s) is therefore
        the one that paused, before a party that only reports media lost; both failing the
        same way is `both`. None while both are fine."""
        failing = [uid for uid, p in self.parties.items() if p.ok_until <= now]
        if not failing:
            return None
        gone = [uid for uid in failing if self.parties[uid].gone(now, self.media_timeout_s)]
        pick = gone or failing
        return "both" if len(pick) == 2 else self.side(pick[0])

    def seller_side_failed(self, now: float) -> bool:
        """The current pause comes from the seller's side being gone, the buyer still there
        (what the immediate-failure refund asks for; the buyer cannot fake it)."""
        return (self.state == "paused" and self.blame(now) == "seller"
                and self.parties[self.seller_id].gone(now, self.media_timeout_s))

    def must_end(self, now: float, reconnect_grace_s: float, max_pauses: int,
                 max_paused_s: float) -> str | None:
        """The end reason of a paused call that may pause no longer, else None: more pauses
        than max_pauses or max_paused_s paused in all over the call (too_many_pauses, which
        no side can use to get a refund), or this pause longer than the grace
        (connection_lost)."""
        if self.state != "paused":
            return None
        if self.pauses > max_pauses or self.paused_total_s(now) >= max_paused_s:
            return "too_many_pauses"
        if now - self.state_since >= reconnect_grace_s:
            return "connection_lost"
        return None

    def accept(self, now: float) -> None:
        self.state = "connecting"
        self.state_since = now

    def report(self, user_id: int, now: float, connected: bool, bytes_received: int | None,
               frames_decoded: int | None) -> None:
        p = self.parties[user_id]
        p.socket_open = True
        p.report(now, connected, bytes_received, frames_decoded, self.media_timeout_s)

    def socket_closed(self, user_id: int, now: float) -> None:
        self.parties[user_id].socket_closed(now)

    def evaluate(self, now: float) -> str | None:
        """Move between connecting, live and paused; returns the new state if it changed,
        or "paused" again when the side the pause comes from changed (the record and both
        parties are told)."""
        if self.state not in ACCEPTED_STATES or self.ending is not None:
            return None
        both_ok = self.ok_until() > now
        if both_ok and self.state in ("connecting", "paused"):
            if self.state == "paused":
                self.paused_s += max(0.0, now - self.state_since)
            self.state, self.state_since, self.live_since = "live", now, now
            self.paused_by = None
            return "live"
        if not both_ok and self.state == "live":
            assert self.live_since is not None
            stopped = max(self.live_since, min(now, self.ok_until()))
            self.live_s += stopped - self.live_since
            self.live_since = None
            self.state, self.state_since = "paused", stopped
            self.pauses += 1
            self.paused_by = self.blame(now)
            return "paused"
        if self.state == "paused":
            by = self.blame(now)
            if by is not None and by != self.paused_by:
                self.paused_by = by
                return "paused"
        return None


# ---- database functions ---------------------------------------------------------------

_CALL_COLS = (
    "id, buyer_id, seller_id, rate_tokens_per_min, state, live_ms, billed_tenths,"
    " settled_tenths, charged_musdt, seller_earned_musdt, commission_musdt, refunded_musdt,"
    " end_reason, created_at_ms, ended_at_ms, spend_cap_musdt, rating_stars, pauses,"
    " paused_ms, paused_by"
)


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


def call_json(row, live_ms: int | None = None) -> dict:
    price = billing.segment_price_musdt(row[3])
    charged = row[8] + (row[6] - row[7]) * price if row[4] not in FINAL_STATES else row[8]
    return {
        "id": str(row[0]),
        "buyer_id": str(row[1]),
        "seller_id": str(row[2]),
        "rate": row[3],
        "state": row[4],
        "live_seconds": (live_ms if live_ms is not None else row[5]) // 1000,
        "billed_tenths": row[6],
        "charged": musdt_to_tokens_str(charged),
        "seller_earned": musdt_to_tokens_str(row[9]),
        "commission": musdt_to_tokens_str(row[10]),
        "refunded": musdt_to_tokens_str(row[11]),
        "end_reason": row[12],
        "created_at": _iso(row[13]),
        "ended_at": _iso(row[14]),
        "spend_cap": None if row[15] is None else musdt_to_tokens_str(row[15]),
        "rating": row[16],
        # Pauses over the whole call, and the side the current pause (for an ended call,
        # the pause it ended in) comes from: "buyer", "seller", "both" or null.
        "pauses": row[17],
        "paused_seconds": row[18] // 1000,
        "paused_by": row[19],
    }


def get_call_row(conn: sqlite3.Connection, call_id: int):
    return conn.execute(f"SELECT {_CALL_COLS} FROM calls WHERE id = ?", (call_id,)).fetchone()


def list_calls_of(conn: sqlite3.Connection, user_id: int, limit: int = 50) -> list:
    return conn.execute(
        f"SELECT {_CALL_COLS} FROM calls WHERE buyer_id = ? OR seller_id = ?"
        " ORDER BY id DESC LIMIT ?",
        (user_id, user_id, limit),
    ).fetchall()


def _acct_id(conn: sqlite3.Connection, name: str) -> int:
    return ledger._account_row(conn, name)[0]


def create_call(conn: sqlite3.Connection, buyer_id: int, seller_id: int, rate: int,
                spend_cap_musdt: int | None, min_prefund_minutes: int,
                default_commission_ppm: int, now: int, seller_bucket: str = "available"):
    """Start a call (ringing) and hold its first minute, or refuse with the reason."""
    economy_limits.check_not_excluded(conn, buyer_id, now)
    s = conn.execute(
        "SELECT s.rate_tokens_per_min, s.online, s.commission_ppm FROM sellers s"
        " JOIN users u ON u.id = s.user_id WHERE s.user_id = ? AND u.banned_at_ms IS NULL",
        (seller_id,),
    ).fetchone()
    if s is None or seller_id == buyer_id:
        raise NotFound("no such seller", "seller_not_found")
    current_rate, online, ppm = s
    if sellers.is_blocked_between(conn, buyer_id, seller_id):
        raise Forbidden("you cannot call this seller", "blocked")
    if not online:
        raise Conflict("this seller is offline", "seller_offline")
    busy = conn.execute(
        "SELECT 1 FROM calls WHERE seller_id = ? AND state IN"
        " ('ringing', 'connecting', 'live', 'paused')", (seller_id,)).fetchone()
    if busy:
        raise Conflict("this seller is in another call", "seller_busy")
    if rate != current_rate:
        raise Conflict(
            f"the seller's rate is now {current_rate} tokens per minute; acknowledge it to call",
            "rate_changed",
        )
    if conn.execute(
        "SELECT 1 FROM calls WHERE buyer_id = ? AND state IN"
        " ('ringing', 'connecting', 'live', 'paused')", (buyer_id,)).fetchone():
        raise Conflict("you are already in a call; end it first", "buyer_busy")
    price = billing.segment_price_musdt(rate)
    if spend_cap_musdt is not None and spend_cap_musdt < price:
        raise Unprocessable(
            f"spend_cap must cover at least one 6-second segment ({musdt_to_tokens_str(price)}"
            " tokens)", "spend_cap_too_low")
    # The buyer's daily and monthly limits cap the call like a spending cap.
    spend_cap_musdt = economy_limits.call_cap(conn, buyer_id, spend_cap_musdt, price, now)
    available = ledger.balance(conn, ledger.user_account(buyer_id))
    need = min_prefund_minutes * rate * MUSDT_PER_TOKEN
    if available < max(need, price):
        raise PaymentRequired(
            f"you need at least {musdt_to_tokens_str(max(need, price))} tokens to start this"
            " call; top up first", "insufficient_funds")
    cur = conn.execute(
        "INSERT INTO calls (buyer_id, seller_id, rate_tokens_per_min, commission_ppm,"
        " spend_cap_musdt, state, buyer_available_acct, buyer_held_acct, seller_acct,"
        " created_at_ms) VALUES (?, ?, ?, ?, ?, 'ringing', ?, ?, ?, ?)",
        (buyer_id, seller_id, rate, ppm if ppm is not None else default_commission_ppm,
         spend_cap_musdt, _acct_id(conn, ledger.user_account(buyer_id)),
         _acct_id(conn, ledger.user_account(buyer_id, "held")),
         _acct_id(conn, ledger.user_account(seller_id, seller_bucket)), now),
    )
    call_id = cur.lastrowid
    if billing.first_hold(conn, call_id, buyer_id, rate, spend_cap_musdt, available) is None:
        raise PaymentRequired("not enough tokens for one segment", "insufficient_funds")
    conn.execute("INSERT INTO call_events (call_id, at_ms, state, detail) VALUES (?, ?, ?, ?)",
                 (call_id, now, "ringing", None))
    return get_call_row(conn, call_id)


def media_rows(rt: Runtime, now: float, wall_ms: int) -> list[tuple]:
    """Both parties' heartbeat summaries as call_media rows (monotonic times made wall)."""
    rows = []
    for uid, p in rt.parties.items():
        at = None if p.last_report_at is None else wall_ms - int((now - p.last_report_at) * 1000)
        rows.append((rt.call_id, uid, p.reports, p.good_reports, p.last_state, p.last_bytes,
                     p.last_frames, at, int(p.socket_open), wall_ms))
    return rows


def save_media(conn: sqlite3.Connection, rows: list[tuple]) -> None:
    conn.executemany(
        "INSERT OR REPLACE INTO call_media (call_id, user_id, reports, good_reports,"
        " last_state, bytes_received, frames_decoded, last_report_at_ms, socket_open,"
        " updated_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)


def finish_with_media(conn: sqlite3.Connection, rows: list[tuple], *args, **kwargs):
    save_media(conn, rows)
    return billing.finish_call(conn, *args, **kwargs)


def record_state_with_media(conn: sqlite3.Connection, call_id: int, state: str, now: int,
                            rows: list[tuple], pauses: billing.Pauses | None = None) -> None:
    record_state(conn, call_id, state, now, pauses)
    save_media(conn, rows)


def save_end_record(conn: sqlite3.Connection, call_id: int, rows: list[tuple],
                    pauses: billing.Pauses) -> None:
    """What the billing pass does not write when it ends a call: the media and pauses."""
    save_media(conn, rows)
    conn.execute("UPDATE calls SET pauses = ?, paused_ms = ?, paused_by = ? WHERE id = ?",
                 (pauses.count, pauses.paused_ms, pauses.paused_by, call_id))


def accept_call(conn: sqlite3.Connection, call_id: int, now: int):
    cur = conn.execute(
        "UPDATE calls SET state = 'connecting', accepted_at_ms = ? WHERE id = ?"
        " AND state = 'ringing'", (now, call_id))
    if cur.rowcount == 0:
        raise Conflict("this call is no longer ringing", "invalid_state")
    conn.execute("INSERT INTO call_events (call_id, at_ms, state) VALUES (?, ?, 'connecting')",
                 (call_id, now))
    return get_call_row(conn, call_id)


def record_state(conn: sqlite3.Connection, call_id: int, state: str, now: int,
                 pauses: billing.Pauses | None = None) -> None:
    """A change between connecting, live and paused; a `paused` event names the side the
    pause comes from."""
    pauses = pauses or billing.Pauses()
    cur = conn.execute(
        "UPDATE calls SET state = ?, live_at_ms = CASE WHEN ? = 'live'"
        " THEN COALESCE(live_at_ms, ?) ELSE live_at_ms END, pauses = ?, paused_ms = ?,"
        " paused_by = ? WHERE id = ? AND state IN ('connecting', 'live', 'paused')",
        (state, state, now, pauses.count, pauses.paused_ms, pauses.paused_by, call_id),
    )
    if cur.rowcount == 0:
        return  # already ended: a late record of a state changes nothing
    conn.execute("INSERT INTO call_events (call_id, at_ms, state, detail) VALUES (?, ?, ?, ?)",
                 (call_id, now, state, pauses.paused_by if state == "paused" else None))


def rate_call(conn: sqlite3.Connection, call_id: int, buyer_id: int, stars: int,
              comment: str | None):
    row = get_call_row(conn, call_id)
    if row is None or row[1] != buyer_id:
        raise NotFound("no such call of yours", "call_not_found")
    if row[4] != "ended" or row[5] <= 0:
        raise Conflict("only a call that took place and has ended can be rated",
                       "invalid_state")
    if row[8] <= 0:
        # A free call would let throwaway accounts rate any seller for nothing.
        raise Conflict("only a call that cost something can be rated", "nothing_to_rate")
    if row[16] is not None:
        raise Conflict("this call is already rated", "already_rated")
    conn.execute("UPDATE calls SET rating_stars = ?, rating_comment = ? WHERE id = ?",
                 (stars, comment, call_id))
    return get_call_row(conn, call_id)


# ---- the manager -------------------------------------------------------------------

class WsError(ApiError):
    """A bad WebSocket message: answered with an `error` message, the socket stays open."""


MAX_ID_DIGITS = 18  # ids are SQLite rowids: below 2**63


def ws_counter(stats: dict, name: str) -> int | None:
    """A counter of a media report: absent, or an integer 0..MAX_COUNTER. Floats, booleans,
    strings and numbers SQLite cannot store are refused."""
    v = stats.get(name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_COUNTER:
        raise WsError(f"stats.{name} must be an integer from 0 to {MAX_COUNTER}",
                      "invalid_message")
    return v


def ws_call_id(raw: Any) -> int:
    """A call id from a socket message: a string of digits (as the API gives ids) or an
    integer. Floats, booleans, huge numbers and anything else are refused (int() of
    Infinity raises OverflowError, of 1.5 silently gives 1)."""
    if isinstance(raw, int) and not isinstance(raw, bool) and 0 < raw < 10**MAX_ID_DIGITS:
        return raw
    if isinstance(raw, str) and raw.isascii() and raw.isdigit() \
            and len(raw) <= MAX_ID_DIGITS and int(raw) > 0:
        return int(raw)
    raise WsError("call_id is missing or not an id", "invalid_message")


class CallManager:
    """Active calls in memory; every money change goes through billing on the DB thread."""

    def __init__(self, db: Database, hub: Hub, config: Config) -> None:
        self.db = db
        self.hub = hub
        self.cfg = config.billing
        self.default_ppm = commission_ppm_from_percent(config.billing.commission_percent)
        # Earnings land in `pending` while the operator holds them (server/earnings.py).
        self.seller_bucket = "pending" if config.operator.earnings_hold_hours > 0 else "available"
        self.active: dict[int, Runtime] = {}
        self.by_user: dict[int, int] = {}
        self._task: asyncio.Task | None = None
        self._bg: set[asyncio.Task] = set()
        self._end_writes: dict[int, asyncio.Task] = {}  # call id -> its end being written
        self.pass_ms: list[float] = []  # recent pass durations, for metrics
        self.metrics: Any = None  # server.metrics.Metrics, set by the app
        hub.on_user_gone = self.on_user_gone

    # -- lifecycle
    async def start(self) -> None:
        done = await self.db.tx(billing.recover_after_crash, now_ms())
        for f in done:
            logs.event(log, "call_recovered", call_id=f.call_id, state=f.state,
                       billed_tenths=f.billed_tenths)
        for seller_id in await self.db.read(sellers.online_seller_ids):
            self.hub.watch_presence(seller_id)
        self._task = asyncio.get_running_loop().create_task(self._ticker())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for rt in list(self.active.values()):
            # One that cannot be written now is ended by the next start (server_restart).
            await self._end(rt, "server_shutdown")
        for t in list(self._bg):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

    def _background(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)

    # -- HTTP actions
    async def start_call(self, buyer: User, seller_id: int, rate: int,
                         spend_cap_musdt: int | None) -> dict:
        if buyer.role != "buyer":
            raise Forbidden("only buyer accounts start calls", "wrong_role")
        row = await self.db.tx(create_call, buyer.id, seller_id, rate, spend_cap_musdt,
                               self.cfg.min_prefund_minutes, self.default_ppm, now_ms(),
                               self.seller_bucket)
        rt = Runtime(row[0], buyer.id, seller_id, rate, "ringing", time.monotonic(),
                     self.cfg.media_timeout_s)
        self.active[rt.call_id] = rt
        self.by_user[buyer.id] = rt.call_id
        self.by_user[seller_id] = rt.call_id
        call = call_json(row)
        logs.event(log, "call_started", call_id=rt.call_id, rate=rate)
        # The seller's dialog names who is calling.
        self.hub.send(seller_id, {"type": "call.incoming", "call": call, "buyer": {
            "id": str(buyer.id), "display_name": buyer.display_name}})
        self.hub.send(buyer.id, {"type": "call.state", "call": call})
        return call

    def _runtime_for(self, user: User, call_id: int) -> Runtime | None:
        rt = self.active.get(call_id)
        if rt is not None and user.id not in (rt.buyer_id, rt.seller_id):
            return None
        return rt

    async def get_call(self, user: User, call_id: int, parties_only: bool = False) -> dict:
        """The call as its parties (and, read-only, an operator) see it; 404 otherwise."""
        row = await self.db.read(get_call_row, call_id)
        may_read = user.role == "admin" and not parties_only
        if row is None or (user.id not in (row[1], row[2]) and not may_read):
            raise NotFound("no such call of yours", "call_not_found")
        rt = self.active.get(call_id)
        if rt is None:
            return call_json(row)
        return self._live_json(rt, row)

    async def accept(self, user: User, call_id: int) -> dict:
        rt = self._runtime_for(user, call_id)
        if rt is None:
            await self.get_call(user, call_id, parties_only=True)  # 404 for strangers
            raise Conflict("this call is no longer ringing", "invalid_state")
        if user.id != rt.seller_id:
            raise Forbidden("only the seller accepts a call", "not_seller")
        if rt.state != "ringing" or rt.ending is not None:
            raise Conflict("this call is no longer ringing", "invalid_state")
        rt.accept(time.monotonic())
        row = await self.db.tx(accept_call, call_id, now_ms())
        return await self._push_state(rt, row)

    async def decline(self, user: User, call_id: int) -> dict:
        rt = self._runtime_for(user, call_id)
        if rt is None or rt.state != "ringing":
            await self.get_call(user, call_id, parties_only=True)
            raise Conflict("this call is no longer ringing", "invalid_state")
        if user.id != rt.seller_id:
            raise Forbidden("only the seller declines a call", "not_seller")
        return await self._finish(rt, "declined")

    async def end(self, user: User, call_id: int) -> dict:
        rt = self._runtime_for(user, call_id)
        if rt is None:
            # Already over: ending again changes nothing. An operator is no party to it.
            return await self.get_call(user, call_id, parties_only=True)
        reason = "buyer_hangup" if user.id == rt.buyer_id else "seller_hangup"
        if rt.state == "ringing":
            reason = "cancelled" if user.id == rt.buyer_id else "declined"
        return await self._finish(rt, reason)

    async def end_calls_of_user(self, user_id: int, reason: str) -> None:
        """A ban or a seller going offline: end the user's call, billing up to now."""
        call_id = self.by_user.get(user_id)
        rt = self.active.get(call_id) if call_id is not None else None
        if rt is not None:
            await self._end(rt, reason)  # a failed write is tried again by the tick

    async def on_user_gone(self, user_id: int) -> None:
        """Presence: every socket of the user has been gone for the grace."""
        try:
            await self.db.tx(sellers.set_online, user_id, False)
        except Conflict:
            return  # not a seller
        logs.event(log, "seller_offline", user_id=user_id, why="presence")
        await self.end_calls_of_user(user_id, "seller_offline")

    # -- finishing
    def _final_state(self, rt: Runtime, reason: str) -> str:
        if rt.state != "ringing":
            return "ended"
        return {"declined": "declined", "cancelled": "cancelled",
                "missed": "missed"}.get(reason, "cancelled")

    def _decide_end(self, rt: Runtime, reason: str, now: float) -> Ending:
        """Fix how the call ends, at this moment. The first decision stands: a hangup whose
        write failed stays a hangup when the tick writes it."""
        if rt.ending is None:
            rt.ending = Ending(
                self._final_state(rt, reason), reason,
                rt.live_ms(now) if rt.state != "ringing" else 0,
                rt.seller_side_failed(now), rt.pause_record(now))
        return rt.ending

    async def _finish(self, rt: Runtime, reason: str) -> dict:
        """End the call for a request: the ended call, or 503 when the database refused the
        write (the call stays active in memory and the tick tries again)."""
        if not await self._end(rt, reason):
            raise Unavailable("the call is ending; recording its end failed for now and is"
                              " tried again in a moment", "end_pending",
                              headers={"Retry-After": "2"})
        row = await self.db.read(get_call_row, rt.call_id)
        return call_json(row)

    async def _end(self, rt: Runtime, reason: str) -> bool:
        """Decide the end (if not yet) and write it; True once it is in the database."""
        if rt.finished:
            return True
        self._decide_end(rt, reason, time.monotonic())
        task = self._end_writes.get(rt.call_id)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._write_end(rt))
            self._end_writes[rt.call_id] = task
            task.add_done_callback(lambda _t: self._end_writes.pop(rt.call_id, None))
        # Shielded: a request that goes away does not stop the write others wait for.
        return await asyncio.shield(task)

    async def _write_end(self, rt: Runtime) -> bool:
        """Write the decided end; only then is the call forgotten in memory. A write that
        fails (the database refused it) leaves the call where it is: the hold still held,
        the seller still busy, and the next tick tries again."""
        e = rt.ending
        assert e is not None
        now = time.monotonic()
        wall = now_ms()
        try:
            done = await self.db.tx(
                finish_with_media, media_rows(rt, now, wall), rt.call_id, e.state, e.reason,
                e.live_ms, wall, int(self.cfg.refund_below_live_s * 1000),
                seller_side_failed=e.seller_side_failed,
                refunds_per_day=self.cfg.auto_refunds_per_day, pauses=e.pauses)
        except Exception as exc:
            rt.end_failures += 1
            if rt.end_failures == 1:
                log.exception("ending call %s (%s) failed; tried again every tick",
                              rt.call_id, e.reason)
            logs.event(log, "call_end_failed", logging.WARNING, call_id=rt.call_id,
                       reason=e.reason, attempts=rt.end_failures, error=str(exc))
            return False
        rt.finished = True
        self._forget(rt)
        if done is not None and self.metrics is not None:
            self.metrics.segments_settled.inc(max(0, done.billed_tenths - rt.billed_tenths))
        row = await self.db.read(get_call_row, rt.call_id)
        call = call_json(row)
        logs.event(log, "call_ended", call_id=rt.call_id, state=call["state"],
                   reason=call["end_reason"], billed_tenths=call["billed_tenths"])
        for uid in (rt.buyer_id, rt.seller_id):
            self.hub.send(uid, {"type": "call.ended", "call": call})
        return True

    def _forget(self, rt: Runtime) -> None:
        self.active.pop(rt.call_id, None)
        for uid in (rt.buyer_id, rt.seller_id):
            if self.by_user.get(uid) == rt.call_id:
                del self.by_user[uid]

    def _live_json(self, rt: Runtime, row) -> dict:
        """An active call as its runtime knows it (the row lags behind by one write)."""
        now = time.monotonic()
        call = call_json(row, rt.live_ms(now))
        p = rt.pause_record(now)
        call.update(state=rt.state, pauses=p.count, paused_seconds=p.paused_ms // 1000,
                    paused_by=p.paused_by)
        return call

    async def _push_state(self, rt: Runtime, row=None) -> dict:
        if row is None:
            row = await self.db.read(get_call_row, rt.call_id)
        call = self._live_json(rt, row)
        for uid in (rt.buyer_id, rt.seller_id):
            self.hub.send(uid, {"type": "call.state", "call": call})
        return call

    def _state_changed(self, rt: Runtime, state: str) -> None:
        logs.event(log, "call_state", call_id=rt.call_id, state=state)
        self._background(self._record_and_push(rt, state))

    async def _record_and_push(self, rt: Runtime, state: str) -> None:
        wall = now_ms()
        now = time.monotonic()
        await self.db.tx(record_state_with_media, rt.call_id, state, wall,
                         media_rows(rt, now, wall), rt.pause_record(now))
        if rt.ending is None:
            await self._push_state(rt)

    # -- WebSocket messages
    def _party_call(self, user_id: int, msg: dict) -> Runtime:
        call_id = ws_call_id(msg.get("call_id"))
        rt = self.active.get(call_id)
        if rt is None or user_id not in (rt.buyer_id, rt.seller_id):
            raise WsError("no active call of yours with this id", "not_your_call")
        if rt.state not in ACCEPTED_STATES or rt.ending is not None:
            raise WsError("this call is not connecting or live", "invalid_state")
        return rt

    async def on_signal(self, user_id: int, ws, msg: dict) -> None:
        rt = self._party_call(user_id, msg)
        if "data" not in msg:
            raise WsError("signal needs data", "invalid_message")
        rt.sockets[user_id] = ws
        rt.parties[user_id].socket_open = True
        other = rt.other(user_id)
        target = rt.sockets.get(other)
        self.hub.send(other, {"type": "signal", "call_id": str(rt.call_id),
                              "data": msg["data"], "from": str(user_id)}, only=target)

    async def on_media(self, user_id: int, ws, msg: dict) -> None:
        rt = self._party_call(user_id, msg)
        state = msg.get("state")
        if state not in ("connected", "disconnected"):
            raise WsError("state must be connected or disconnected", "invalid_message")
        stats = msg.get("stats") or {}
        if not isinstance(stats, dict):
            raise WsError("stats must be an object", "invalid_message")
        counters = [ws_counter(stats, name) for name in ("bytes_received", "frames_decoded")]
        rt.sockets[user_id] = ws
        now = time.monotonic()
        rt.report(user_id, now, state == "connected", counters[0], counters[1])
        changed = rt.evaluate(now)
        if changed:
            self._state_changed(rt, changed)

    def on_socket_closed(self, user_id: int, ws) -> None:
        rt = self.active.get(self.by_user.get(user_id, -1))
        if rt is None or rt.sockets.get(user_id) is not ws or rt.ending is not None:
            return
        del rt.sockets[user_id]
        now = time.monotonic()
        rt.socket_closed(user_id, now)
        changed = rt.evaluate(now)
        if changed:
            self._state_changed(rt, changed)

    # -- the tick: timeouts, then one billing pass for every live call
    async def _ticker(self) -> None:
        interval = self.cfg.tick_interval_s
        loop = asyncio.get_running_loop()
        while True:
            due_at = loop.time() + interval
            await asyncio.sleep(interval)
            if self.metrics is not None:
                self.metrics.tick_lag_seconds.set(max(0.0, loop.time() - due_at))
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("billing tick failed")

    async def tick(self) -> None:
        now = time.monotonic()
        cfg = self.cfg
        for i, rt in enumerate(list(self.active.values())):
            if i % YIELD_EVERY == YIELD_EVERY - 1:
                await asyncio.sleep(0)  # sockets never wait for a long list
            if rt.finished:
                continue
            if rt.ending is not None:
                if rt.call_id not in self._end_writes:
                    self._background(self._end(rt, rt.ending.reason))  # a failed write
                continue
            age = now - rt.state_since
            if rt.state == "ringing" and age >= cfg.ring_timeout_s:
                self._background(self._end(rt, "missed"))
                continue
            if rt.state == "connecting" and age >= cfg.connect_timeout_s:
                self._background(self._end(rt, "failed"))
                continue
            changed = rt.evaluate(now)
            if changed:
                self._state_changed(rt, changed)
            reason = rt.must_end(now, cfg.reconnect_grace_s, cfg.max_pauses_per_call,
                                 cfg.max_paused_s_per_call)
            if reason is not None:
                self._background(self._end(rt, reason))
        due = []
        for i, rt in enumerate(list(self.active.values())):
            if i % YIELD_EVERY == YIELD_EVERY - 1:
                await asyncio.sleep(0)  # 4,900 calls in one go held the loop for ~15 ms
            if rt.state in ("live", "paused") and rt.ending is None:
                tenths = billing.completed_tenths(rt.live_ms(now))
                if tenths > rt.billed_tenths:
                    due.append((rt.call_id, tenths))
        if not due:
            return
        started = time.perf_counter()
        outcomes = await self.db.tx(billing.run_pass, due, now_ms())
        took = time.perf_counter() - started
        self.pass_ms.append(took * 1000)
        if self.metrics is not None:
            self.metrics.tick_seconds.observe(took)
            billed = 0
            for o in outcomes:
                rt = self.active.get(o.call_id)
                if rt is not None:
                    billed += max(0, o.billed_tenths - rt.billed_tenths)
            self.metrics.segments_settled.inc(billed)
        del self.pass_ms[:-1000]
        now = time.monotonic()
        for i, o in enumerate(outcomes):
            if i % YIELD_EVERY == YIELD_EVERY - 1:
                await asyncio.sleep(0)
            rt = self.active.get(o.call_id)
            if rt is None or rt.ending is not None:
                continue
            rt.billed_tenths = o.billed_tenths
            meter = {
                "type": "meter", "call_id": str(o.call_id),
                "live_seconds": rt.live_ms(now) // 1000,
                "billed_tenths": o.billed_tenths,
                "charged": musdt_to_tokens_str(o.charged_musdt),
                "minutes_left": f"{o.minutes_left_tenths // 10}.{o.minutes_left_tenths % 10}",
            }
            # The buyer's balance is the buyer's business only. Sends only queue: the pass
            # never waits for a client (server/signalling.py).
            self.hub.send(rt.buyer_id, {**meter,
                                        "balance": musdt_to_tokens_str(o.buyer_balance_musdt)})
            self.hub.send(rt.seller_id, {**meter, "balance": None})
            if o.end_reason is not None:
                # The pass has ended the call in the database already: forget it now, then
                # add its media and pauses to the record (a failure there loses no money).
                self._decide_end(rt, o.end_reason, now)
                rt.finished = True
                self._forget(rt)
                try:
                    await self.db.tx(save_end_record, rt.call_id, media_rows(rt, now, now_ms()),
                                     rt.pause_record(now))
                except Exception:
                    log.exception("recording media of ended call %s failed", rt.call_id)
                row = await self.db.read(get_call_row, rt.call_id)
                call = call_json(row)
                logs.event(log, "call_ended", call_id=rt.call_id, state="ended",
                           reason=o.end_reason, billed_tenths=o.billed_tenths)
                for uid in (rt.buyer_id, rt.seller_id):
                    self.hub.send(uid, {"type": "call.ended", "call": call})


CALLS = web.AppKey("calls", CallManager)
HUB = web.AppKey("hub", Hub)
