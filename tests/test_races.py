"""Races: two requests (or a request and the server's own jobs) at the same instant. A call
ended by both parties at once, accept racing cancel, accept racing decline, two buyers
calling one seller at once, a seller accepting twice at once, a clean stop racing a
watcher or sender pass. (Concurrent claims of one TXID: tests/test_deposits.py; concurrent
withdrawals: tests/test_withdrawals.py.) Each ends with the ledger audited."""

from __future__ import annotations

import asyncio
import logging

import pytest

from meterchat.app import create_app
from meterchat.deposits.watcher import WATCHER
from meterchat.withdrawals.sender import SENDER
from tests.calls_helpers import start_live_call
from tests.conftest import (
    actor,
    audit_ok,
    chain_config,
    fast_calls_config,
    fund,
    seller_online,
)

# Real time on purpose (sockets, timers, child processes): tests/conftest.py starts these
# files first, so their waits overlap the other files' work.
pytestmark = pytest.mark.slow


@pytest.fixture
async def app_client(aiohttp_client, tmp_path):
    return await aiohttp_client(create_app(fast_calls_config(tmp_path)))


async def _ringing(app_client, rate: int = 600):
    seller = await seller_online(app_client, rate)
    buyer = await actor(app_client)
    await fund(app_client, buyer.id, 1000)
    resp = await buyer.post("/api/calls", {"seller_id": seller.id, "rate": rate})
    assert resp.status == 201, await resp.text()
    return buyer, seller, (await resp.json())["call"]["id"]


async def _balances(who) -> dict:
    return (await who.me())["balance"]


async def test_call_ended_by_both_parties_at_once_is_billed_once(app_client):
    live = await start_live_call(app_client, rate=600, funds=1000)
    try:
        await live.bc.next("meter", live.call_id, within=10)  # one segment recorded
        a, b = await asyncio.gather(live.buyer.post(f"/api/calls/{live.call_id}/end"),
                                    live.seller.post(f"/api/calls/{live.call_id}/end"))
        assert (a.status, b.status) == (200, 200)
        first, second = (await a.json())["call"], (await b.json())["call"]
    finally:
        await live.close()
    # Both answers tell the same, final story.
    assert first["state"] == second["state"] == "ended"
    assert first["billed_tenths"] == second["billed_tenths"] >= 1
    assert first["end_reason"] == second["end_reason"] in ("buyer_hangup", "seller_hangup")
    charged = 60 * first["billed_tenths"]
    assert first["charged"] == str(charged)
    assert await _balances(live.buyer) == {"available": str(1000 - charged), "held": "0",
                                           "pending": "0"}
    report = await audit_ok(app_client)
    assert report["revenue_musdt"] == charged * 10_000 // 4


async def test_accept_racing_cancel_leaves_one_consistent_outcome(app_client):
    for _ in range(5):
        buyer, seller, call_id = await _ringing(app_client)
        cancel, accept = await asyncio.gather(buyer.post(f"/api/calls/{call_id}/end"),
                                              seller.post(f"/api/calls/{call_id}/accept"))
        assert cancel.status == 200
        final = (await (await buyer.get(f"/api/calls/{call_id}")).json())["call"]
        if accept.status == 200:
            # The accept won: the buyer's end then hung up the connecting call.
            assert final["state"] == "ended"
        else:
            assert accept.status == 409
            assert (await accept.json())["error"]["code"] == "invalid_state"
            assert final["state"] == "cancelled"
        assert final["billed_tenths"] == 0 and final["charged"] == "0"
        assert await _balances(buyer) == {"available": "1000", "held": "0", "pending": "0"}
    await audit_ok(app_client)


async def test_accept_racing_decline_and_double_accept_have_one_winner(app_client):
    buyer, seller, call_id = await _ringing(app_client)
    accept, decline = await asyncio.gather(seller.post(f"/api/calls/{call_id}/accept"),
                                           seller.post(f"/api/calls/{call_id}/decline"))
    assert sorted((accept.status, decline.status)) == [200, 409]
    await buyer.post(f"/api/calls/{call_id}/end")

    buyer, seller, call_id = await _ringing(app_client)
    answers = await asyncio.gather(*(seller.post(f"/api/calls/{call_id}/accept")
                                     for _ in range(5)))
    assert sorted(r.status for r in answers) == [200, 409, 409, 409, 409]
    call = (await (await seller.get(f"/api/calls/{call_id}")).json())["call"]
    assert call["state"] == "connecting"
    await seller.post(f"/api/calls/{call_id}/end")
    await audit_ok(app_client)


async def test_two_buyers_calling_one_seller_at_once_get_one_call(app_client):
    seller = await seller_online(app_client, 600)
    buyers = [await actor(app_client) for _ in range(6)]
    for b in buyers:
        await fund(app_client, b.id, 1000)
    answers = await asyncio.gather(*(b.post("/api/calls", {"seller_id": seller.id, "rate": 600})
                                     for b in buyers))
    statuses = sorted(r.status for r in answers)
    assert statuses == [201, 409, 409, 409, 409, 409]
    for r in answers:
        if r.status == 409:
            assert (await r.json())["error"]["code"] == "seller_busy"
    # Only the caller who got the call has a hold; the others' tokens never moved.
    held = [(await _balances(b))["held"] for b in buyers]
    assert sorted(held) == ["0"] * 5 + ["600"]  # a minute at 600 tokens/min
    await audit_ok(app_client)


async def test_seller_accepting_a_second_call_while_in_one_cannot(app_client):
    live = await start_live_call(app_client, rate=600, funds=1000)
    try:
        other = await actor(app_client)
        await fund(app_client, other.id, 1000)
        resp = await other.post("/api/calls", {"seller_id": live.seller.id, "rate": 600})
        assert resp.status == 409
        assert (await resp.json())["error"]["code"] == "seller_busy"
        # The seller's socket sees no second incoming call.
        await asyncio.sleep(0.3)
        assert [m for m in live.sc.seen("call.incoming")] == []
    finally:
        await live.end()
        await live.close()
    await audit_ok(app_client)


async def test_end_racing_the_billing_pass_bills_each_segment_once(app_client):
    live = await start_live_call(app_client, rate=600, funds=1000)
    try:
        # End right as segments complete, many times over a minute boundary: the tick and
        # the hang-up run against each other.
        await live.bc.next("meter", live.call_id, within=10)
        await asyncio.sleep(5.9)
        resp = await live.buyer.post(f"/api/calls/{live.call_id}/end")
        call = (await resp.json())["call"]
    finally:
        await live.close()
    assert call["state"] == "ended" and 1 <= call["billed_tenths"] <= 3
    assert call["charged"] == str(60 * call["billed_tenths"])
    report = await audit_ok(app_client)
    assert report["users_total_musdt"] + report["revenue_musdt"] == 1000 * 10_000


async def test_a_socket_closing_while_its_call_ends_changes_nothing(app_client):
    live = await start_live_call(app_client, rate=600, funds=1000)
    await live.bc.next("meter", live.call_id, within=10)
    end = asyncio.create_task(live.buyer.post(f"/api/calls/{live.call_id}/end"))
    await live.bc.close()
    resp = await end
    call = (await resp.json())["call"]
    await live.close()
    assert call["state"] == "ended"
    assert call["charged"] == str(60 * call["billed_tenths"])
    await audit_ok(app_client)


# ---- a clean stop racing the chain jobs -------------------------------------------


@pytest.mark.parametrize("job", ["watcher", "sender"])
async def test_a_clean_stop_waits_for_the_pass_under_way(aiohttp_client, tmp_path, caplog,
                                                         job):
    """apscheduler's asyncio executor cancels a running job on shutdown; the pass must be
    left to finish (and nothing logged as an error) before the chain connection closes."""
    client = await aiohttp_client(create_app(chain_config(
        tmp_path, withdrawals={"sender_interval_s": 0.05})))
    runner = client.app[WATCHER] if job == "watcher" else client.app[SENDER]
    entered, finished = asyncio.Event(), asyncio.Event()
    real_pass = runner._pass

    async def slow_pass():
        entered.set()
        await asyncio.sleep(0.3)  # long enough for the stop to arrive mid-pass
        result = await real_pass()
        finished.set()
        return result

    runner._pass = slow_pass
    await asyncio.wait_for(entered.wait(), 10)
    caplog.set_level(logging.INFO)
    await client.close()
    assert finished.is_set(), "the pass under way was cut off by the stop"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]

