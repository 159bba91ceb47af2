"""The call manager: the active calls in memory (their live time is calls/live.py's), the
actions of the two parties (start, accept, decline, end; signalling, media heartbeats, chat
messages and mute / camera-off states from their sockets), the tick (presence, timeouts,
then one billing pass for every live call; calls/ticker.py runs it, and the passes between
ticks at each call's next segment) and the call.* and meter messages pushed to both
parties. Time comes from the Clock it is given.

A call's end is written to the database before the call is forgotten in memory; a write
that fails is tried again on the next tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections.abc import Coroutine
from typing import Any

from aiohttp import web

from meterchat.accounts.users import User
from meterchat.calls import chat, store, ticker
from meterchat.calls.live import CallLimits, Runtime, hangup_reason
from meterchat.calls.signalling import Hub
from meterchat.calls.store import CallRow, call_json, meter_json
from meterchat.core import logs
from meterchat.core.clock import SYSTEM_CLOCK, Clock
from meterchat.core.config import Config
from meterchat.core.db import Database
from meterchat.core.errors import Conflict, Forbidden, NotFound, Unavailable
from meterchat.core.units import SECOND_MS, commission_ppm_from_percent, musdt_to_tokens_str
from meterchat.money import billing
from meterchat.money.billing import ACCEPTED_STATES
from meterchat.sellers import store as sellers

log = logging.getLogger("meterchat.calls")
# A tick over many calls lets the event loop run between batches of this many.
YIELD_EVERY = 32


class CallManager:
    """Active calls in memory; every money change goes through billing on the DB thread."""

    def __init__(self, db: Database, hub: Hub, config: Config,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.db = db
        self.hub = hub
        self.clock = clock
        self.cfg = config.billing
        self.limits = CallLimits(self.cfg.ring_timeout_s, self.cfg.connect_timeout_s,
                                 self.cfg.reconnect_grace_s, self.cfg.max_pauses_per_call,
                                 self.cfg.max_paused_s_per_call)
        self.default_ppm = commission_ppm_from_percent(config.billing.commission_percent)
        # Earnings land in `pending` while the operator holds them (operator/earnings.py).
        self.seller_bucket = "pending" if config.operator.earnings_hold_hours > 0 else "available"
        self.active: dict[int, Runtime] = {}
        self.by_user: dict[int, int] = {}
        # The socket each party of an active call last spoke from: call id -> user -> ws.
        self.sockets: dict[int, dict[int, object]] = {}
        # What each party last said of its microphone and camera: call -> user -> (a, v).
        self.media_states: dict[int, dict[int, tuple[bool, bool]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._bg: set[asyncio.Task[Any]] = set()
        self._end_writes: dict[int, asyncio.Task[bool]] = {}  # call id -> its end's write
        self.pass_ms: list[float] = []  # recent pass durations, for metrics
        self.metrics: Any = None  # web.metrics.Metrics, set by the app

    # -- lifecycle
    async def start(self) -> None:
        """Recover from a crash, watch the presence of online sellers, and tick every
        tick_interval_s (until `stop_ticker`: a test on a FakeClock then calls `tick`)."""
        done = await self.db.tx(billing.recover_after_crash, self.clock.now_ms())
        for f in done:
            logs.event(log, "call_recovered", call_id=f.call_id, state=f.state,
                       billed_tenths=f.billed_tenths)
        for seller_id in await self.db.read(sellers.online_seller_ids):
            self.hub.watch_presence(seller_id)
        self._task = asyncio.get_running_loop().create_task(ticker.run(self))

    async def stop_ticker(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def stop(self) -> None:
        await self.stop_ticker()
        for rt in list(self.active.values()):
            # One that cannot be written now is ended by the next start (server_restart).
            await self._end(rt, "server_shutdown")
        await self.drain()

    async def drain(self) -> None:
        """Wait for the background work started so far (records of state changes, ends
        decided by the tick) and what it started in turn."""
        while self._bg:
            await asyncio.gather(*self._bg, return_exceptions=True)

    def _background(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)

    # -- HTTP actions
    async def start_call(self, buyer: User, seller_id: int, rate: int,
                         spend_cap_musdt: int | None) -> dict[str, Any]:
        if buyer.role != "buyer":
            raise Forbidden("only buyer accounts start calls", "wrong_role")
        row = await self.db.tx(store.create_call_tx, buyer.id, seller_id, rate,
                               spend_cap_musdt, self.cfg.min_prefund_minutes,
                               self.default_ppm, self.clock.now_ms(), self.seller_bucket)
        rt = Runtime(row.id, buyer.id, seller_id, rate, "ringing", self.clock.monotonic(),
                     self.cfg.media_timeout_s)
        self.active[rt.call_id] = rt
        self.sockets[rt.call_id] = {}
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

    async def get_call(self, user: User, call_id: int,
                       parties_only: bool = False) -> dict[str, Any]:
        """The call as its parties (and, read-only, an operator) see it; 404 otherwise."""
        row = await self.db.read(store.get_call, call_id)
        may_read = user.role == "admin" and not parties_only
        if row is None or (user.id not in (row.buyer_id, row.seller_id) and not may_read):
            raise NotFound("no such call of yours", "call_not_found")
        rt = self.active.get(call_id)
        if rt is None:
            return call_json(row)
        return self._live_json(rt, row)

    async def accept(self, user: User, call_id: int) -> dict[str, Any]:
        rt = self._runtime_for(user, call_id)
        if rt is None:
            await self.get_call(user, call_id, parties_only=True)  # 404 for strangers
            raise Conflict("this call is no longer ringing", "invalid_state")
        if user.id != rt.seller_id:
            raise Forbidden("only the seller accepts a call", "not_seller")
        if rt.state != "ringing" or rt.ending is not None:
            raise Conflict("this call is no longer ringing", "invalid_state")
        rt.accept(self.clock.monotonic())
        row = await self.db.tx(store.accept_call_tx, call_id, self.clock.now_ms())
        return await self._push_state(rt, row)

    async def decline(self, user: User, call_id: int) -> dict[str, Any]:
        rt = self._runtime_for(user, call_id)
        if rt is None or rt.state != "ringing":
            await self.get_call(user, call_id, parties_only=True)
            raise Conflict("this call is no longer ringing", "invalid_state")
        if user.id != rt.seller_id:
            raise Forbidden("only the seller declines a call", "not_seller")
        return await self._finish(rt, "declined")

    async def end(self, user: User, call_id: int) -> dict[str, Any]:
        rt = self._runtime_for(user, call_id)
        if rt is None:
            # Already over: ending again changes nothing. An operator is no party to it.
            return await self.get_call(user, call_id, parties_only=True)
        return await self._finish(rt, hangup_reason(rt.state, user.id == rt.buyer_id))

    async def end_calls_of_user(self, user_id: int, reason: str) -> None:
        """A ban or a seller going offline: end the user's call, billing up to now."""
        call_id = self.by_user.get(user_id)
        rt = self.active.get(call_id) if call_id is not None else None
        if rt is not None:
            await self._end(rt, reason)  # a failed write is tried again by the tick

    async def on_user_gone(self, user_id: int) -> None:
        """Presence: every socket of the user has been gone for the grace."""
        try:
            await self.db.tx(sellers.set_online_tx, user_id, False)
        except Conflict:
            return  # not a seller
        logs.event(log, "seller_offline", user_id=user_id, why="presence")
        await self.end_calls_of_user(user_id, "seller_offline")

    # -- finishing
    async def _finish(self, rt: Runtime, reason: str) -> dict[str, Any]:
        """End the call for a request: the ended call, or 503 when the database refused the
        write (the call stays active in memory and the tick tries again)."""
        if not await self._end(rt, reason):
            raise Unavailable("the call is ending; recording its end failed for now and is"
                              " tried again in a moment", "end_pending",
                              headers={"Retry-After": "2"})
        return call_json(await self._row(rt.call_id))

    async def _row(self, call_id: int) -> CallRow:
        row = await self.db.read(store.get_call, call_id)
        assert row is not None  # calls are never deleted
        return row

    async def _end(self, rt: Runtime, reason: str) -> bool:
        """Decide the end (if not yet) and write it; True once it is in the database."""
        if rt.finished:
            return True
        rt.decide_end(reason, self.clock.monotonic())
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
        now, wall = self.clock.monotonic(), self.clock.now_ms()
        try:
            done = await self.db.tx(
                store.finish_call_tx, rt.media_records(now, wall), rt.call_id, e.state,
                e.reason, e.live_ms, wall, int(self.cfg.refund_below_live_s * SECOND_MS),
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
        call = call_json(await self._row(rt.call_id))
        logs.event(log, "call_ended", call_id=rt.call_id, state=call["state"],
                   reason=call["end_reason"], billed_tenths=call["billed_tenths"])
        self._push_ended(rt, call)
        return True

    def _push_ended(self, rt: Runtime, call: dict[str, Any]) -> None:
        for uid in (rt.buyer_id, rt.seller_id):
            self.hub.send(uid, {"type": "call.ended", "call": call})

    def _forget(self, rt: Runtime) -> None:
        self.active.pop(rt.call_id, None)
        self.sockets.pop(rt.call_id, None)
        self.media_states.pop(rt.call_id, None)
        for uid in (rt.buyer_id, rt.seller_id):
            if self.by_user.get(uid) == rt.call_id:
                del self.by_user[uid]

    def view(self, row: CallRow) -> dict[str, Any]:
        """A call row as the API shows it; for a call under way, as its runtime knows it."""
        rt = self.active.get(row.id)
        return call_json(row) if rt is None else self._live_json(rt, row)

    def _live_json(self, rt: Runtime, row: CallRow) -> dict[str, Any]:
        """An active call as its runtime knows it (the row lags behind by one write)."""
        now = self.clock.monotonic()
        call = call_json(row, rt.live_ms(now))
        p = rt.pause_record(now)
        call.update(state=rt.state, pauses=p.count, paused_seconds=p.paused_ms // 1000,
                    paused_by=p.paused_by)
        return call

    async def _push_state(self, rt: Runtime, row: CallRow | None = None) -> dict[str, Any]:
        if row is None:
            row = await self._row(rt.call_id)
        call = self._live_json(rt, row)
        for uid in (rt.buyer_id, rt.seller_id):
            self.hub.send(uid, {"type": "call.state", "call": call})
        return call

    def _state_changed(self, rt: Runtime, state: str) -> None:
        logs.event(log, "call_state", call_id=rt.call_id, state=state)
        self._background(self._record_and_push(rt, state))

    async def _record_and_push(self, rt: Runtime, state: str) -> None:
        now, wall = self.clock.monotonic(), self.clock.now_ms()
        await self.db.tx(store.record_state_tx, rt.call_id, state, wall,
                         rt.pause_record(now), rt.media_records(now, wall))
        if rt.ending is None:
            await self._push_state(rt)

    # -- socket messages (parsed by calls/ws.py)
    def _party_call(self, user_id: int, call_id: int) -> Runtime:
        rt = self.active.get(call_id)
        if rt is None or user_id not in (rt.buyer_id, rt.seller_id):
            raise NotFound("no active call of yours with this id", "not_your_call")
        if rt.state not in ACCEPTED_STATES or rt.ending is not None:
            raise Conflict("this call is not connecting or live", "invalid_state")
        return rt

    def _spoke_from(self, rt: Runtime, user_id: int, ws: object) -> None:
        self.sockets.setdefault(rt.call_id, {})[user_id] = ws

    async def on_signal(self, user_id: int, ws: object, call_id: int, data: Any) -> None:
        """Relay signalling to the other party's socket (the one it last spoke from)."""
        rt = self._party_call(user_id, call_id)
        self._spoke_from(rt, user_id, ws)
        rt.parties[user_id].socket_open = True
        other = rt.other(user_id)
        target = self.sockets[rt.call_id].get(other)
        self.hub.send(other, {"type": "signal", "call_id": str(rt.call_id),
                              "data": data, "from": str(user_id)}, only=target)

    async def on_media(self, user_id: int, ws: object, call_id: int, connected: bool,
                       bytes_received: int | None, frames_decoded: int | None) -> None:
        """A party's media heartbeat: what it receives, and whether it is connected."""
        rt = self._party_call(user_id, call_id)
        self._spoke_from(rt, user_id, ws)
        now = self.clock.monotonic()
        rt.report(user_id, now, connected, bytes_received, frames_decoded)
        changed = rt.evaluate(now)
        if changed:
            self._state_changed(rt, changed)

    async def on_chat(self, user_id: int, call_id: int, text: str) -> None:
        """A party's chat message (text already checked by chat.chat_text): stored in one
        write, then queued to every socket of both parties (the sender's tabs too)."""
        rt = self._party_call(user_id, call_id)
        msg = await self.db.tx(chat.add_message_tx, call_id, user_id, text,
                               self.clock.now_ms())
        out = {"type": "chat", "call_id": str(call_id), "message": msg}
        for uid in (rt.buyer_id, rt.seller_id):
            self.hub.send(uid, out)

    async def on_media_state(self, user_id: int, call_id: int, audio: bool,
                             video: bool) -> None:
        """A party's microphone and camera (muted, camera off): relayed to the other party,
        who is also told the sender what the other side last said (after a reload). Only
        what the party says of itself; billing does not read it (README: camera off)."""
        rt = self._party_call(user_id, call_id)
        states = self.media_states.setdefault(call_id, {})
        states[user_id] = (audio, video)
        other = rt.other(user_id)
        cid = str(call_id)
        self.hub.send(other, {"type": "media_state", "call_id": cid, "from": str(user_id),
                              "audio": audio, "video": video})
        known = states.get(other)
        if known is not None:
            self.hub.send(user_id, {"type": "media_state", "call_id": cid, "from": str(other),
                                    "audio": known[0], "video": known[1]})

    def on_socket_closed(self, user_id: int, ws: object) -> None:
        call_id = self.by_user.get(user_id, -1)
        rt = self.active.get(call_id)
        socks = self.sockets.get(call_id, {})
        if rt is None or socks.get(user_id) is not ws or rt.ending is not None:
            return
        del socks[user_id]
        now = self.clock.monotonic()
        rt.socket_closed(user_id, now)
        changed = rt.evaluate(now)
        if changed:
            self._state_changed(rt, changed)

    # -- the tick: presence, timeouts, then one billing pass for every live call
    async def tick(self) -> ticker.Heap:
        """Presence (the users whose grace ended), the timeouts and state changes of every
        active call, then one billing pass for the live time completed, in one scan of the
        calls. Returns the live calls by the time their next segment completes (a heap),
        for the ticker to bill between ticks."""
        now = self.clock.monotonic()
        for user_id in self.hub.gone_users(now):
            self._background(self.on_user_gone(user_id))
        due: list[tuple[int, int]] = []
        heap: ticker.Heap = []
        for i, rt in enumerate(list(self.active.values())):
            if i % YIELD_EVERY == YIELD_EVERY - 1:
                # Sockets never wait for a long list: 4,900 calls in one go held the loop
                # for ~15 ms.
                await asyncio.sleep(0)
            if rt.finished:
                continue
            if rt.ending is not None:
                if rt.call_id not in self._end_writes:
                    self._background(self._end(rt, rt.ending.reason))  # a failed write
                continue
            step = rt.step(now, self.limits)
            if step.changed:
                self._state_changed(rt, step.changed)
            if step.end_reason is not None:
                # Its end settles what it owes (billing.finish_call), not this pass.
                self._background(self._end(rt, step.end_reason))
                continue
            tenths = rt.due_tenths(now)
            if tenths is not None:
                due.append((rt.call_id, tenths))
                continue
            at = rt.next_due_at(now)
            if at is not None:
                heap.append((at, rt.call_id))
        heapq.heapify(heap)
        if due:
            await self.bill(due)
            ticker.push_next_due(self, heap, due)
        return heap

    async def bill(self, due: list[tuple[int, int]]) -> None:
        """One billing pass over the calls whose live time completed segments; the meter
        to both parties, and the end of a call the pass ended (spend cap, funds)."""
        started = time.perf_counter()
        outcomes = await self.db.tx(billing.run_pass, due, self.clock.now_ms())
        took = time.perf_counter() - started
        self.pass_ms.append(took * 1000)
        del self.pass_ms[:-1000]
        if self.metrics is not None:
            self.metrics.tick_seconds.observe(took)
            billed = 0
            for o in outcomes:
                known = self.active.get(o.call_id)
                if known is not None:
                    billed += max(0, o.billed_tenths - known.billed_tenths)
            self.metrics.segments_settled.inc(billed)
        now = self.clock.monotonic()
        for i, o in enumerate(outcomes):
            if i % YIELD_EVERY == YIELD_EVERY - 1:
                await asyncio.sleep(0)
            rt = self.active.get(o.call_id)
            if rt is None or rt.ending is not None:
                continue
            rt.billed_tenths = o.billed_tenths
            meter = meter_json(o, rt.live_ms(now))
            # Sends only queue: the pass never waits for a client (calls/signalling.py).
            self.hub.send(rt.buyer_id, {**meter,
                                        "balance": musdt_to_tokens_str(o.buyer_balance_musdt)})
            self.hub.send(rt.seller_id, {**meter, "balance": None})
            if o.end_reason is not None:
                await self._ended_by_pass(rt, o.end_reason, o.billed_tenths, now)

    async def _ended_by_pass(self, rt: Runtime, reason: str, billed_tenths: int,
                             now: float) -> None:
        """The pass has ended the call in the database already: forget it now, then add its
        media and pauses to the record (a failure there loses no money)."""
        rt.decide_end(reason, now)
        rt.finished = True
        self._forget(rt)
        try:
            await self.db.tx(store.save_end_record_tx, rt.call_id,
                             rt.media_records(now, self.clock.now_ms()), rt.pause_record(now))
        except Exception:
            log.exception("recording media of ended call %s failed", rt.call_id)
        call = call_json(await self._row(rt.call_id))
        logs.event(log, "call_ended", call_id=rt.call_id, state="ended", reason=reason,
                   billed_tenths=billed_tenths)
        self._push_ended(rt, call)


CALLS = web.AppKey("calls", CallManager)
HUB = web.AppKey("hub", Hub)
