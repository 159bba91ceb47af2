"""The issue's bar, tried as a new user would over HTTP + WebSocket only."""

from __future__ import annotations

import asyncio

import pytest

from meterchat.app import create_app
from tests.calls_helpers import start_live_call, ws_client
from tests.conftest import actor, assert_error, audit_ok, fast_calls_config, fund, seller_online


@pytest.fixture
async def app_client(aiohttp_client, tmp_path):
    # The default-like grace: an 8-second pause must not end the call.
    cfg = fast_calls_config(tmp_path, billing={"reconnect_grace_s": 30})
    return await aiohttp_client(create_app(cfg))


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
            meter = await call.bc.next("meter", call.call_id, within=9)
            assert meter["billed_tenths"] == 1 and meter["charged"] == "60"
            assert meter["balance"] == "940" and meter["minutes_left"] == "1.5"
            seller_meter = await call.sc.next("meter", call.call_id, within=3)
            assert seller_meter["balance"] is None
            await asyncio.sleep(14 - meter["live_seconds"])
            ended = await call.end()
        finally:
            await call.close()
        assert (ended["billed_tenths"], ended["charged"], ended["seller_earned"],
                ended["commission"]) == (2, "120", "90", "30")
        assert 14 <= ended["live_seconds"] <= 15
        assert (await call.buyer.me())["balance"] == {
            "available": "880", "held": "0", "pending": "0"}
        assert (await call.seller.me())["balance"]["available"] == "90"

    async def eight_second_pause():
        call = await start_live_call(app_client, 600, funds=1000)
        try:
            await asyncio.sleep(5)
            call.sm.flowing = False  # the seller's picture freezes: counters stop growing
            await call.wait_state("paused")
            await asyncio.sleep(8)
            call.sm.flowing = True
            await call.wait_state("live")
            await asyncio.sleep(9)
            ended = await call.end()
        finally:
            await call.close()
        # 5 + 9 = 14 s live, so 2 segments; had the pause been billed, 22 s = 4.
        assert ended["billed_tenths"] == 2 and ended["charged"] == "120"
        assert 13 <= ended["live_seconds"] <= 15

    async def spend_cap_of_one_segment():
        call = await start_live_call(app_client, 600, funds=1000, spend_cap="60")
        try:
            ended = (await call.bc.next("call.ended", call.call_id, within=10))["call"]
        finally:
            await call.close()
        assert ended["end_reason"] == "spend_cap"
        assert (ended["billed_tenths"], ended["charged"], ended["seller_earned"]) == (
            1, "60", "45")
        assert (await call.buyer.me())["balance"]["available"] == "940"

    await asyncio.gather(fourteen_seconds(), eight_second_pause(), spend_cap_of_one_segment())
    report = await audit_ok(app_client)
    assert report["revenue_musdt"] == (30 + 30 + 15) * 10_000
