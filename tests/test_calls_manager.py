"""The call manager with live calls over real sockets on a controlled clock
(tests/calls_helpers.py): pause and resume, reconnect grace with the immediate-failure
refund, a seller going offline or a ban ending a call, rating, and 100 calls at once."""

from __future__ import annotations

import asyncio

import pytest

from meterchat.appkeys import DB
from meterchat.calls import ticker
from meterchat.calls.manager import CALLS
from meterchat.tools.peer import SyntheticMedia
from tests.calls_helpers import clocked_app, start_live_call, ws_client
from tests.conftest import actor, assert_error, audit_ok, fast_calls_config, fund


@pytest.fixture
async def clocked(aiohttp_client, tmp_path):
    return await clocked_app(aiohttp_client, fast_calls_config(tmp_path))


@pytest.fixture
async def app_client(clocked):
    return clocked.client


async def test_socket_drop_pauses_reconnect_resumes_and_grace_expiry_refunds(app_client):
    call = await start_live_call(app_client, 600, funds=1000)
    try:
        await call.run(1)
        # The buyer's tab drops: paused at once.
        call.buyer_beats = False
        await call.bc.close()
        paused = await call.wait_state("paused", client=call.sc)
        assert (paused["live_seconds"], paused["paused_by"]) == (1, "buyer")
        # Back within the grace (3 s in tests): a new socket's counters start again, so the
        # second heartbeat on it (half a second later) is the first that grows: live again.
        call.bc = await ws_client(app_client, call.buyer)
        call.bm = SyntheticMedia(call.bc, call.call_id)
        call.buyer_beats = True
        await call.beat()
        await call.run(0.5)
        await call.wait_state("live")
        await call.run(1)
        # The seller's media stops for good at 2.5 s: its last report counts for 1.5 s more
        # (media_timeout_s), then the grace of 3 s runs out.
        call.seller_beats = False
        ended = await call.run_until_ended()
    finally:
        await call.close()
    assert ended["end_reason"] == "connection_lost"
    assert (ended["live_seconds"], ended["pauses"], ended["paused_seconds"],
            ended["paused_by"]) == (3, 2, 3, "seller")
    # Less than refund_below_live_s of live time: nothing is charged.
    assert ended["charged"] == "0" and ended["seller_earned"] == "0"
    assert (await call.buyer.me())["balance"] == {"available": "1000", "held": "0",
                                                 "pending": "0"}
    await audit_ok(app_client)


async def test_seller_going_offline_ends_the_call_billing_up_to_then(app_client):
    call = await start_live_call(app_client, 600, funds=1000)
    try:
        await call.run(9.5)
        resp = await call.seller.put("/api/seller/status", {"online": False})
        assert resp.status == 200
        ended = (await call.bc.next("call.ended", call.call_id, within=5))["call"]
    finally:
        await call.close()
    assert ended["end_reason"] == "seller_offline"
    assert ended["live_seconds"] == 9
    assert ended["billed_tenths"] == 2  # 9.5 s rounds to 12 s
    assert ended["charged"] == "120"
    await audit_ok(app_client)


async def test_a_ban_ends_the_users_call_and_rating_after(app_client):
    call = await start_live_call(app_client, 100, funds=1000)
    try:
        await call.run(6.5)
        await app_client.app[CALLS].end_calls_of_user(int(call.seller.id), "banned")
        ended = (await call.bc.next("call.ended", call.call_id, within=5))["call"]
    finally:
        await call.close()
    assert ended["end_reason"] == "banned" and ended["billed_tenths"] == 1
    assert ended["charged"] == "10"
    cid = call.call_id
    stranger = await actor(app_client)
    await assert_error(await stranger.post(f"/api/calls/{cid}/rating", {"stars": 5}), 404)
    await assert_error(await call.buyer.post(f"/api/calls/{cid}/rating", {"stars": 6}), 422)
    resp = await call.buyer.post(f"/api/calls/{cid}/rating", {"stars": 4, "comment": "ok"})
    assert (await resp.json())["call"]["rating"] == 4
    await assert_error(await call.buyer.post(f"/api/calls/{cid}/rating", {"stars": 5}), 409,
                       "already_rated")
    seller = (await (await app_client.get(f"/api/sellers/{call.seller.id}")).json())["seller"]
    assert seller["rating"] == "4.0" and seller["calls"] == 1
    history = await app_client.app[DB].fetchall(
        "SELECT state, detail FROM call_events WHERE call_id = ? ORDER BY id", (int(cid),))
    assert [tuple(r) for r in history] == [("ringing", None), ("connecting", None),
                                           ("live", None), ("ended", "banned")]
    segments = await app_client.app[DB].fetchall(
        "SELECT tenth FROM call_segments WHERE call_id = ?", (int(cid),))
    assert [r[0] for r in segments] == [1]


async def test_a_hundred_calls_at_once(aiohttp_client, tmp_path):
    # Presence runs on the app's clock too: set-ups at once, however slow on a busy machine,
    # take none of the grace between a seller going online and their socket.
    clocked = await clocked_app(aiohttp_client, fast_calls_config(tmp_path))
    n = 100
    app_client = clocked.client
    # Set up at once over 200 sockets; all go live at the same moment of the clock.
    started = await asyncio.gather(*(start_live_call(app_client, 600, funds=1000)
                                     for _ in range(n)), return_exceptions=True)
    calls = [c for c in started if not isinstance(c, BaseException)]
    try:
        failed = [c for c in started if isinstance(c, BaseException)]
        if failed:
            raise failed[0]
        # 7 s of all of them: every step 200 heartbeats, then one tick bills every call.
        await clocked.advance(7, 1.0, calls)
        ended = await asyncio.gather(*(call.end() for call in calls))
    finally:
        for call in calls:
            await call.close()
    # 7 s of live time is one segment (rounded to the nearest 6 s), for every call.
    tenths = [c["billed_tenths"] for c in ended]
    assert tenths == [1] * n
    assert all(c["live_seconds"] == 7 for c in ended)
    for c in ended:
        assert c["charged"] == str(60 * c["billed_tenths"])
        assert c["commission"] == str(15 * c["billed_tenths"])
    report = await audit_ok(app_client)
    assert report["revenue_musdt"] == sum(tenths) * 15 * 10_000
    rows = await app_client.app[DB].fetchall(
        "SELECT COUNT(*), SUM(billed_tenths) FROM calls WHERE state = 'ended'")
    assert tuple(rows[0]) == (n, sum(tenths))


async def test_a_segment_completed_between_ticks_is_billed_at_its_boundary(clocked):
    """The meter need not wait for the next tick: the calls whose segment completes are
    billed from the heap of due times the tick leaves behind."""
    app_client = clocked.client
    call = await start_live_call(app_client, 600, funds=1000)
    try:
        await clocked.advance(5, 1.0, [call])
        boundaries = await clocked.manager.tick()
        assert [cid for _, cid in boundaries] == [int(call.call_id)]
        due_at = boundaries[0][0]
        clocked.clock.advance(due_at - clocked.clock.monotonic() - 0.01)
        await ticker.bill_boundaries(clocked.manager, boundaries, clocked.clock.monotonic())
        assert clocked.manager.active[int(call.call_id)].billed_tenths == 0  # not yet
        await call.beat()
        clocked.clock.advance(0.02)
        await ticker.bill_boundaries(clocked.manager, boundaries, clocked.clock.monotonic())
        assert clocked.manager.active[int(call.call_id)].billed_tenths == 1
        meter = await call.bc.next("meter", call.call_id)
        assert meter["billed_tenths"] == 1 and meter["charged"] == "60"
        # Back on the heap for the segment after.
        assert [cid for _, cid in boundaries] == [int(call.call_id)]
        assert boundaries[0][0] > clocked.clock.monotonic() + 5
    finally:
        await call.close()


async def test_unfunded_buyer_cannot_ring_and_new_user_sees_call_list(app_client):
    buyer = await actor(app_client)
    await fund(app_client, buyer.id, 5)
    body = await (await buyer.get("/api/calls")).json()
    assert body["calls"] == [] and body["next_before"] is None
