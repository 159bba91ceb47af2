"""A call that never connected (no live time: "0:00" on its summary) offers no tip, no
rating and no dispute, and the server refuses each with 409 `call_not_taken_place`, moving
no money; a call with live time is tipped, as before. Real sockets, real SQLite, live time on
a controlled clock (tests/calls_helpers.py)."""

from __future__ import annotations

import pytest

from meterchat.economy.rules import had_live_time
from tests.calls_helpers import clocked_app, start_live_call
from tests.conftest import assert_error, audit_ok, fast_calls_config


@pytest.fixture
async def app_client(aiohttp_client, tmp_path):
    return (await clocked_app(aiohttp_client, fast_calls_config(tmp_path))).client


async def tip(buyer, call_id: str, tokens: int, key: str):
    return await buyer.post(f"/api/calls/{call_id}/tip", {"tokens": tokens},
                            headers={"Idempotency-Key": key})


def test_live_time_is_what_an_ended_call_recorded_and_a_call_under_way_has_gone_live():
    assert had_live_time("ended", live_at_ms=1, live_ms=1_000)
    assert not had_live_time("ended", live_at_ms=1, live_ms=999)  # shown as 0:00
    assert not had_live_time("ended", live_at_ms=None, live_ms=0)
    assert not had_live_time("declined", live_at_ms=None, live_ms=0)
    # Under way the row's live time lags behind: going live is enough.
    assert had_live_time("live", live_at_ms=1, live_ms=0)
    assert had_live_time("paused", live_at_ms=1, live_ms=0)
    assert not had_live_time("connecting", live_at_ms=None, live_ms=0)


async def test_a_tip_to_a_call_with_no_live_time_is_409_and_moves_no_money(app_client):
    call = await start_live_call(app_client)
    try:
        ended = await call.end()  # live for a moment, hung up at once
    finally:
        await call.close()
    assert (ended["live_seconds"], ended["charged"]) == (0, "0"), ended
    before = (await call.buyer.me())["balance"]
    seller_before = (await call.seller.me())["balance"]
    body = await assert_error(await tip(call.buyer, call.call_id, 5, "zero-1"), 409,
                              "call_not_taken_place")
    assert "never" in body["error"]["message"]
    assert (await call.buyer.me())["balance"] == before
    assert (await call.seller.me())["balance"] == seller_before
    resp = await call.buyer.get(f"/api/calls/{call.call_id}/tips")
    assert (await resp.json())["tips"] == []
    await audit_ok(app_client)


async def test_rating_and_dispute_of_a_call_with_no_live_time_are_refused_clearly(app_client):
    call = await start_live_call(app_client)
    try:
        await call.end()
        # Accepted and hung up before it ever went live: the same answers.
        resp = await call.buyer.post("/api/calls", {"seller_id": call.seller.id, "rate": 600})
        never = (await resp.json())["call"]["id"]
        resp = await call.seller.post(f"/api/calls/{never}/accept")
        assert resp.status == 200, await resp.text()
        await call.buyer.post(f"/api/calls/{never}/end")
    finally:
        await call.close()
    resp = await call.buyer.post(f"/api/calls/{call.call_id}/rating", {"stars": 5})
    await assert_error(resp, 409, "call_not_taken_place")
    resp = await call.buyer.post(f"/api/calls/{call.call_id}/dispute", {"reason": "no video"})
    await assert_error(resp, 409, "call_not_taken_place")
    for path, body in (("rating", {"stars": 1}), ("dispute", {"reason": "nothing"})):
        resp = await call.buyer.post(f"/api/calls/{never}/{path}", body)
        await assert_error(resp, 409, "call_not_taken_place")
    await assert_error(await tip(call.buyer, never, 5, "never"), 409, "call_not_taken_place")
    await audit_ok(app_client)


async def test_a_call_with_live_time_is_still_tipped(app_client):
    call = await start_live_call(app_client)
    try:
        await call.run(1)
        ended = await call.end()
    finally:
        await call.close()
    assert ended["live_seconds"] == 1 and ended["charged"] == "0", ended
    resp = await tip(call.buyer, call.call_id, 5, "one-second")
    assert resp.status == 201, await resp.text()
    await audit_ok(app_client)
