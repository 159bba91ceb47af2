"""The issue's bar, tried as a new user would over HTTP + WebSocket only (live time on a
controlled clock, tests/calls_helpers.py)."""

from __future__ import annotations

import asyncio

import pytest

from tests.calls_helpers import clocked_app, start_live_call, ws_client
from tests.conftest import actor, assert_error, audit_ok, fast_calls_config, fund, seller_online


@pytest.fixture
async def app_client(aiohttp_client, tmp_path):
    # The default-like grace: an 8-second pause must not end the call.
    cfg = fast_calls_config(tmp_path, billing={"reconnect_grace_s": 30})
    return (await clocked_app(aiohttp_client, cfg)).client


async def test_listing_rate_acknowledgment_funding_and_strangers(app_client):
    seller = await seller_online(app_client, 600)
    listing = await (await app_client.get("/api/sellers?online=true")).json()
    assert {"id": seller.id, "rate": 600, "online": True, "busy": False}.items() <= next(
        s for s in listing["sellers"] if s["id"] == seller.id).items()
    buyer = await actor(app_client)
    await assert_error(await buyer.post("/api/calls", {"seller_id": seller.id, "rate": 500}),
                       409, "rate_changed")
    await assert_error(await buyer.post("/api/calls", {"seller_id": seller.id, "rate": 600}),
                       402, "insufficient_funds")
    await fund(app_client, buyer.id, 600)
    stranger = await actor(app_client)
    sc, bc, xc = [await ws_client(app_client, a) for a in (seller, buyer, stranger)]
    try:
        cid = (await (await buyer.post("/api/calls", {"seller_id": seller.id, "rate": 600}))
               .json())["call"]["id"]
        await seller.post(f"/api/calls/{cid}/accept")
        await xc.send({"type": "signal", "call_id": cid, "data": {"sdp": "stranger"}})
        assert (await xc.next("error"))["code"] == "not_your_call"
        await bc.send({"type": "signal", "call_id": cid, "data": {"sdp": "buyer"}})
        assert (await sc.next("signal", cid))["data"] == {"sdp": "buyer"}
        await asyncio.sleep(0.3)
        for c in (sc, bc, xc):
            assert all(m["data"] != {"sdp": "stranger"} for m in c.seen("signal"))
        await buyer.post(f"/api/calls/{cid}/end")
    finally:
        for c in (sc, bc, xc):
            await c.close()


async def test_live_time_pauses_and_spend_cap_bill_as_the_bar_says(app_client):
    async def fourteen_seconds():
        call = await start_live_call(app_client, 600, funds=1000)
        try:
            await call.run(6)
            meter = await call.bc.next("meter", call.call_id)
            assert meter["billed_tenths"] == 1 and meter["charged"] == "60"
            assert meter["balance"] == "940" and meter["minutes_left"] == "1.5"
            assert meter["live_seconds"] == 6
            seller_meter = await call.sc.next("meter", call.call_id)
            assert seller_meter["balance"] is None
            await call.run(8)
            ended = await call.end()
        finally:
            await call.close()
        assert (ended["billed_tenths"], ended["charged"], ended["seller_earned"],
                ended["commission"]) == (2, "120", "90", "30")
        assert ended["live_seconds"] == 14
        assert (await call.buyer.me())["balance"] == {
            "available": "880", "held": "0", "pending": "0"}
        assert (await call.seller.me())["balance"]["available"] == "90"

    async def eight_second_pause():
        call = await start_live_call(app_client, 600, funds=1000)
        try:
            await call.run(5)
            call.sm.flowing = False  # the seller's picture freezes: counters stop growing
            await call.beat()
            await call.wait_state("paused")
            await call.run(8)
            call.sm.flowing = True
            await call.beat()
            await call.wait_state("live")
            await call.run(9)
            ended = await call.end()
        finally:
            await call.close()
        # 5 + 9 = 14 s live, so 2 segments; had the pause been billed, 22 s = 4.
        assert ended["billed_tenths"] == 2 and ended["charged"] == "120"
        assert (ended["live_seconds"], ended["pauses"], ended["paused_seconds"]) == (14, 1, 8)

    async def spend_cap_of_one_segment():
        call = await start_live_call(app_client, 600, funds=1000, spend_cap="60")
        try:
            ended = await call.run_until_ended()
        finally:
            await call.close()
        assert ended["end_reason"] == "spend_cap"
        assert (ended["billed_tenths"], ended["charged"], ended["seller_earned"]) == (
            1, "60", "45")
        assert ended["live_seconds"] == 6
        assert (await call.buyer.me())["balance"]["available"] == "940"

    # One after the other: each moves the one clock of the app.
    await fourteen_seconds()
    await eight_second_pause()
    await spend_cap_of_one_segment()
    report = await audit_ok(app_client)
    assert report["revenue_musdt"] == (30 + 30 + 15) * 10_000
