"""Helpers for call tests: users on real WebSockets with scripted media heartbeats.

Two ways to run time. On the machine's clock (`create_app(cfg)`), heartbeats go every
MEDIA_INTERVAL_S and the manager ticks by itself, as in production. On a controlled clock
(`clocked_app`), the ticker is stopped and nothing happens until the test says so:
`call.run(seconds)` advances the FakeClock step by step, sends one heartbeat from each
party over its real socket per step (what `bm`/`sm` say: flowing, connected), and runs the
tick; live time, pauses, grace and timeouts then come out exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from meterchat.app import create_app
from meterchat.appkeys import CLOCK
from meterchat.calls.manager import CALLS, CallManager
from meterchat.core.clock import FakeClock
from meterchat.core.config import Config
from meterchat.tools.peer import Client, SyntheticMedia
from tests.conftest import Actor, actor, fund, seller_online

MEDIA_INTERVAL_S = 0.3
# A step of the controlled clock: below media_timeout_s of the fast test config (1.5 s), and
# a power of two, so sums of steps are exact in floating point.
STEP_S = 0.5


@dataclass
class Clocked:
    """An app on a FakeClock whose ticker is stopped."""

    client: Any  # aiohttp's TestClient
    clock: FakeClock
    manager: CallManager

    async def tick(self) -> None:
        """One tick of the manager, and the writes it started (ends, state records)."""
        await self.manager.tick()
        await self.manager.drain()

    async def advance(self, seconds: float, step: float = STEP_S,
                      calls: Sequence[LiveCall] = ()) -> None:
        """Move time on by `seconds` in steps; at each step every call's parties send a
        heartbeat (as their `*_beats` flags say), then the manager ticks."""
        left = seconds
        while left > 1e-9:
            dt = min(step, left)
            self.clock.advance(dt)
            left -= dt
            for call in calls:
                await call.beat()
            await self.tick()


async def clocked_app(aiohttp_client, config: Config) -> Clocked:
    clock = FakeClock()
    client = await aiohttp_client(create_app(config, clock))
    manager = client.app[CALLS]
    await manager.stop_ticker()
    return Clocked(client, clock, manager)


def clocked_of(app_client) -> Clocked | None:
    clock = app_client.app[CLOCK]
    if not isinstance(clock, FakeClock):
        return None
    return Clocked(app_client, clock, app_client.app[CALLS])


async def ws_client(app_client, who: Actor) -> Client:
    c = Client(str(app_client.make_url("")))
    await c.__aenter__()
    c.token = who.token
    c.user = who.user
    await c.open_ws()
    return c


@dataclass
class LiveCall:
    call_id: str
    buyer: Actor
    seller: Actor
    bc: Client
    sc: Client
    bm: SyntheticMedia
    sm: SyntheticMedia
    clocked: Clocked | None = None
    # On a controlled clock: whether each party sends heartbeats at each step.
    buyer_beats: bool = True
    seller_beats: bool = True

    async def beat(self) -> None:
        """One heartbeat from each party that beats, each read by the server before this
        returns (a ping after it on the same socket is answered after it)."""
        for beats, media in ((self.buyer_beats, self.bm), (self.seller_beats, self.sm)):
            if beats:
                await media.beat()
                await media.client.send({"type": "ping"})
                await media.client.next("pong")

    async def run(self, seconds: float, step: float = STEP_S) -> None:
        """On the controlled clock: `seconds` of this call, heartbeats and ticks."""
        assert self.clocked is not None, "run() needs clocked_app"
        await self.clocked.advance(seconds, step, [self])

    def active(self) -> bool:
        assert self.clocked is not None
        return int(self.call_id) in self.clocked.manager.active

    async def run_until_ended(self, limit_s: float = 120.0, step: float = STEP_S,
                              client: Client | None = None) -> dict:
        """On the controlled clock: run until the server ends the call; the ended call."""
        assert self.clocked is not None, "run_until_ended() needs clocked_app"
        ran = 0.0
        while self.active():
            assert ran < limit_s, f"call {self.call_id} still active after {ran} s"
            await self.run(step, step)
            ran += step
        return (await (client or self.bc).next("call.ended", self.call_id))["call"]

    async def wait_state(self, state: str, within: float = 10.0, client: Client | None = None,
                         ) -> dict:
        while True:
            msg = await (client or self.bc).next("call.state", self.call_id, within=within)
            if msg["call"]["state"] == state:
                return msg["call"]

    async def end(self) -> dict:
        resp = await self.buyer.post(f"/api/calls/{self.call_id}/end")
        assert resp.status == 200, await resp.text()
        return (await resp.json())["call"]

    async def close(self) -> None:
        for m in (self.bm, self.sm):
            await m.stop()
        for c in (self.bc, self.sc):
            await c.close()


async def start_live_call(app_client, rate: int = 600, funds: int = 1000,
                          spend_cap: str | None = None) -> LiveCall:
    seller = await seller_online(app_client, rate)
    # The seller's socket first: with many calls set up at once, the buyers' registrations
    # could otherwise outlast the presence grace and take the seller offline.
    sc = await ws_client(app_client, seller)
    bc: Client | None = None
    try:
        buyer = await actor(app_client)
        await fund(app_client, buyer.id, funds)
        bc = await ws_client(app_client, buyer)
        return await call_between(app_client, buyer, seller, bc, sc, rate, spend_cap)
    except BaseException:
        # A set-up that failed leaves no socket open for the next test to trip over.
        for c in (bc, sc):
            if c is not None:
                await c.close()
        raise


async def call_between(app_client, buyer: Actor, seller: Actor, bc: Client, sc: Client,
                       rate: int = 600, spend_cap: str | None = None) -> LiveCall:
    """A live call between two users whose sockets are open (again and again, for tests of
    what repeating something gains), with fresh synthetic heartbeats on both sides (on a
    controlled clock: two heartbeats each, at the clock's present moment)."""
    body = {"seller_id": seller.id, "rate": rate}
    if spend_cap is not None:
        body["spend_cap"] = spend_cap
    resp = await buyer.post("/api/calls", body)
    assert resp.status == 201, await resp.text()
    call_id = (await resp.json())["call"]["id"]
    await sc.next("call.incoming", call_id)
    resp = await seller.post(f"/api/calls/{call_id}/accept")
    assert resp.status == 200, await resp.text()
    bm = SyntheticMedia(bc, call_id, MEDIA_INTERVAL_S)
    sm = SyntheticMedia(sc, call_id, MEDIA_INTERVAL_S)
    live = LiveCall(call_id, buyer, seller, bc, sc, bm, sm, clocked_of(app_client))
    if live.clocked is None:
        bm.start()
        sm.start()
    else:
        # Growing counters from both sides: live at this very moment of the clock.
        await live.beat()
        await live.beat()
    await live.wait_state("live")
    return live
