"""What a cheating party can do to a call, over real sockets and real SQLite, with live time
on a controlled clock (tests/calls_helpers.py): numbers that do not fit in the database, an
end whose write fails, a buyer who fakes pauses or lost connections to watch for free, and
rating a call that cost nothing."""

from __future__ import annotations

from decimal import Decimal

import pytest

from meterchat.appkeys import DB
from tests.calls_helpers import LiveCall, call_between, clocked_app, start_live_call, ws_client
from tests.conftest import (
    Actor,
    actor,
    admin_actor,
    assert_error,
    audit_ok,
    fast_calls_config,
    fund,
    seller_online,
)


async def app_with(aiohttp_client, tmp_path, **billing):
    return (await clocked_app(aiohttp_client, fast_calls_config(tmp_path, billing=billing))
            ).client


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


async def flap(call: LiveCall, down_s: float, up_s: float) -> dict:
    """The buyer reports `disconnected` for down_s, then good heartbeats for up_s, over and
    over, until the call ends; the ended call as the seller is told."""
    for _ in range(100):
        for connected, seconds in ((False, down_s), (True, up_s)):
            call.bm.connected = connected
            await call.run(seconds)
            if not call.active():
                return (await call.sc.next("call.ended", call.call_id))["call"]
    raise AssertionError("the flapping never ended the call")


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


async def test_an_end_whose_write_fails_is_retried_on_a_later_tick_and_never_lost(app_client):
    db = app_client.app[DB]
    call = await start_live_call(app_client, 600, funds=1000)
    cid = int(call.call_id)
    # A real write failure: SQLite refuses to end this call while the trigger is there.
    trigger = (f"CREATE TRIGGER test_refuse_end BEFORE UPDATE OF state ON calls"
               f" WHEN new.id = {cid} AND new.state = 'ended'"
               f" BEGIN SELECT RAISE(ABORT, 'the disk says no'); END")
    try:
        await call.run(1.5)
        await db.tx(lambda conn: conn.execute(trigger))
        resp = await call.buyer.post(f"/api/calls/{call.call_id}/end")
        await assert_error(resp, 503, "end_pending")
        # Several ticks try and fail (over 7 s: a segment's worth had it been billed); the
        # call is still active in the database meanwhile.
        call.buyer_beats = call.seller_beats = False  # their heartbeats would be refused
        await call.run(7)
        assert call.active()
        row = await db.fetchone("SELECT state FROM calls WHERE id = ?", (cid,))
        assert row[0] == "live"
        assert (await call.buyer.me())["balance"]["held"] != "0"
        await db.tx(lambda conn: conn.execute("DROP TRIGGER test_refuse_end"))
        ended = await call.run_until_ended()
    finally:
        await call.close()
    # Ended as the buyer asked, with the live time of the moment they hung up (1.5 s,
    # nothing billed): the 7 s the write kept failing were not billed.
    assert ended["end_reason"] == "buyer_hangup"
    assert ended["live_seconds"] == 1 and ended["billed_tenths"] == 0
    assert (await call.buyer.me())["balance"] == {"available": "1000", "held": "0",
                                                 "pending": "0"}
    assert await seller_is_free(app_client, call.seller.id)
    await audit_ok(app_client)


# ---- item 3: pauses are bounded, and the seller sees who paused ---------------------------

async def test_a_buyer_flapping_disconnected_cannot_keep_a_call_paused_forever(
        aiohttp_client, tmp_path):
    app_client = await app_with(aiohttp_client, tmp_path, max_pauses_per_call=3,
                                max_paused_s_per_call=100)
    call = await start_live_call(app_client, 600, funds=1000)
    try:
        ended = await flap(call, 1, 1)
    finally:
        await call.close()
    # The fourth pause ends the call: no refund, the seller keeps what was earned.
    assert ended["end_reason"] == "too_many_pauses"
    assert ended["pauses"] == 4 and ended["paused_by"] == "buyer"
    # Live 0.5 s before the first pause (the first heartbeat down pauses), then 1 s after
    # each of the three that came back: 3.5 s.
    assert ended["live_seconds"] == 3
    assert ended["refunded"] == "0"
    assert Decimal(ended["seller_earned"]) + Decimal(ended["commission"]) \
        == Decimal(ended["charged"])
    await audit_ok(app_client)


async def test_total_paused_time_over_a_call_is_bounded_too(aiohttp_client, tmp_path):
    app_client = await app_with(aiohttp_client, tmp_path, max_pauses_per_call=100,
                                max_paused_s_per_call=2)
    call = await start_live_call(app_client, 600, funds=1000)
    # Each pause (1.5 s) is well inside reconnect_grace_s (3 s); their sum is not: the
    # second pause ends the call as it reaches 2 s in all.
    try:
        ended = await flap(call, 1.5, 1)
    finally:
        await call.close()
    assert ended["end_reason"] == "too_many_pauses"
    assert ended["pauses"] == 2 and ended["paused_seconds"] == 2
    assert ended["refunded"] == "0"
    await audit_ok(app_client)


async def test_the_seller_sees_the_buyer_paused_and_ends_keeping_what_was_earned(app_client):
    call = await start_live_call(app_client, 600, funds=1000)
    try:
        await call.run(6.5)
        call.bm.connected = False  # the buyer says the video stopped; the seller streams on
        await call.beat()
        paused = await call.wait_state("paused", client=call.sc)
        assert paused["paused_by"] == "buyer"
        shown = (await (await call.seller.get(f"/api/calls/{call.call_id}")).json())["call"]
        assert shown["state"] == "paused" and shown["paused_by"] == "buyer"
        resp = await call.seller.post(f"/api/calls/{call.call_id}/end")
        assert resp.status == 200
        ended = (await resp.json())["call"]
    finally:
        await call.close()
    assert ended["end_reason"] == "seller_hangup"
    assert ended["billed_tenths"] == 1 and ended["charged"] == "60"
    assert ended["seller_earned"] == "45" and ended["refunded"] == "0"
    admin = await admin_actor(app_client)
    record = await (await admin.get(f"/api/admin/calls/{call.call_id}/record")).json()
    events = [(e["state"], e["detail"]) for e in record["events"]]
    assert ("paused", "buyer") in events and events[-1] == ("ended", "seller_hangup")
    assert record["call"]["pauses"] == 1
    await audit_ok(app_client)


# ---- item 4: the immediate-failure refund -------------------------------------------------

async def repeat_calls(app_client, rounds: int, fail) -> tuple[Actor, list[dict]]:
    """The same buyer calls the same seller `rounds` times; each call is live ~4 s (one
    segment, 60 tokens) and then `fail(call)` makes it end connection_lost."""
    seller = await seller_online(app_client, 600)
    sc = await ws_client(app_client, seller)
    buyer = await actor(app_client)
    await fund(app_client, buyer.id, 1000)
    bc = await ws_client(app_client, buyer)
    out = []
    try:
        for _ in range(rounds):
            call = await call_between(app_client, buyer, seller, bc, sc, 600)
            await call.run(4)
            await fail(call)
            out.append(await call.run_until_ended())
    finally:
        for c in (bc, sc):
            await c.close()
    return buyer, out


async def buyer_says_disconnected(call) -> None:
    call.bm.connected = False


async def sellers_side_goes(call) -> None:
    call.seller_beats = False  # the seller's heartbeats stop coming: the seller's side is gone
    await call.run(1.5)  # the last one counts for media_timeout_s
    paused = await call.wait_state("paused")
    assert paused["paused_by"] == "seller"


async def test_a_buyer_faking_lost_connections_again_and_again_is_never_refunded(
        aiohttp_client, tmp_path):
    app_client = await app_with(aiohttp_client, tmp_path, reconnect_grace_s=1)
    buyer, ended = await repeat_calls(app_client, 4, buyer_says_disconnected)
    for call in ended:
        assert call["end_reason"] == "connection_lost"
        assert call["charged"] == "60" and call["refunded"] == "0"
        assert call["paused_by"] == "buyer"
    # Four faked failures, four minutes-worth of segments paid: nothing gained.
    assert (await buyer.me())["balance"] == {"available": "760", "held": "0", "pending": "0"}
    await audit_ok(app_client)


async def test_seller_side_failures_are_refunded_only_up_to_the_daily_allowance(
        aiohttp_client, tmp_path):
    app_client = await app_with(aiohttp_client, tmp_path, reconnect_grace_s=1,
                                auto_refunds_per_day=2)
    buyer, ended = await repeat_calls(app_client, 3, sellers_side_goes)
    assert [c["end_reason"] for c in ended] == ["connection_lost"] * 3
    assert [(c["charged"], c["refunded"]) for c in ended] == [("0", "60"), ("0", "60"),
                                                              ("60", "0")]
    assert (await buyer.me())["balance"]["available"] == "940"
    # The one past the allowance is charged like any call, and its buyer can dispute it.
    resp = await buyer.post(f"/api/calls/{ended[2]['id']}/dispute",
                            {"reason": "the seller dropped out"})
    assert resp.status == 201, await resp.text()
    await audit_ok(app_client)


# ---- item 11: rating ---------------------------------------------------------------------

async def test_a_call_that_cost_nothing_cannot_be_rated(app_client):
    call = await start_live_call(app_client, 600, funds=1000)
    try:
        await call.run(1)
        ended = await call.end()
    finally:
        await call.close()
    assert ended["charged"] == "0" and ended["live_seconds"] == 1
    resp = await call.buyer.post(f"/api/calls/{call.call_id}/rating", {"stars": 5})
    await assert_error(resp, 409, "nothing_to_rate")
    seller = (await (await app_client.get(f"/api/sellers/{call.seller.id}")).json())["seller"]
    assert seller["rating"] is None
