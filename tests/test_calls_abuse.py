"""What a cheating party can do to a call, over real sockets and real SQLite: numbers that do
not fit in the database, an end whose write fails, a buyer who fakes pauses or lost
connections to watch for free, and rating a call that cost nothing."""

from __future__ import annotations

import asyncio

import pytest

from server.app import create_app
from server.appkeys import DB
from tests.calls_helpers import start_live_call
from tests.conftest import (
    actor,
    assert_error,
    audit_ok,
    fast_calls_config,
    fund,
)
from tools.peer import SyntheticMedia


def app_with(aiohttp_client, tmp_path, **billing):
    return aiohttp_client(create_app(fast_calls_config(tmp_path, billing=billing)))


@pytest.fixture
async def app_client(aiohttp_client, tmp_path):
    return await app_with(aiohttp_client, tmp_path)


async def seller_is_free(app_client, seller_id: str) -> bool:
    """Another buyer can ring the seller (the call is cancelled at once)."""
    other = await actor(app_client)
    await fund(app_client, other.id, 1000)
    resp = await other.post("/api/calls", {"seller_id": seller_id, "rate": 600})
    if resp.status != 201:
        return False
    call_id = (await resp.json())["call"]["id"]
    assert (await other.post(f"/api/calls/{call_id}/end")).status == 200
    return True


async def flap(media: SyntheticMedia, down_s: float, up_s: float) -> None:
    """Report `disconnected` for down_s, then good heartbeats for up_s, over and over."""
    while True:
        media.connected = False
        await asyncio.sleep(down_s)
        media.connected = True
        await asyncio.sleep(up_s)


# ---- item 2: numbers at the edge, and an end that is never lost -------------------------

async def test_a_huge_counter_in_a_media_report_gets_an_error_and_the_call_ends_cleanly(
        app_client):
    call = await start_live_call(app_client, 600, funds=1000)
    try:
        for bad in (2**63, 2**53, -1, 1.5, 1e20, True, "12"):
            await call.bc.send({"type": "media", "call_id": call.call_id, "state": "connected",
                                "stats": {"bytes_received": bad, "frames_decoded": 10}})
            err = await call.bc.next("error", within=5)
            assert err["code"] == "invalid_message", (bad, err)
        # The socket stays open and the call is unaffected: still live, then ended cleanly.
        assert (await call.buyer.get(f"/api/calls/{call.call_id}")).status == 200
        ended = await call.end()
    finally:
        await call.close()
    assert ended["state"] == "ended" and ended["end_reason"] == "buyer_hangup"
    assert (await call.buyer.me())["balance"]["held"] == "0"
    assert await seller_is_free(app_client, call.seller.id)
    media = await app_client.app[DB].fetchall(
        "SELECT bytes_received FROM call_media WHERE call_id = ?", (int(call.call_id),))
    assert len(media) == 2 and all(r[0] < 2**53 for r in media)
    await audit_ok(app_client)


# ---- item 11: rating ---------------------------------------------------------------------

async def test_a_call_that_cost_nothing_cannot_be_rated(app_client):
    call = await start_live_call(app_client, 600, funds=1000)
    try:
        await asyncio.sleep(1)
        ended = await call.end()
    finally:
        await call.close()
    assert ended["charged"] == "0" and ended["live_seconds"] >= 1
    resp = await call.buyer.post(f"/api/calls/{call.call_id}/rating", {"stars": 5})
    await assert_error(resp, 409, "nothing_to_rate")
    seller = (await (await app_client.get(f"/api/sellers/{call.seller.id}")).json())["seller"]
    assert seller["rating"] is None
