"""Call history for both sides (GET /api/calls, GET /api/calls/{id}/receipt): newest first, a
page at a time, each call with what it cost the buyer or earned the seller, tips and refunds,
and every figure equal to what the ledger moved."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.calls_helpers import call_between, clocked_app, start_live_call
from tests.conftest import actor, admin_actor, assert_error, fast_calls_config

RATE = 600  # tokens a minute: 60 a 6-s segment
FUNDS = 1000


@pytest.fixture
async def clocked(aiohttp_client, tmp_path):
    return await clocked_app(aiohttp_client, fast_calls_config(tmp_path))


def tokens(text: str) -> Decimal:
    return Decimal(text)


async def balance(who) -> dict:
    return (await who.me())["balance"]


async def test_history_amounts_equal_the_ledger_with_a_tip_and_a_refund(clocked):
    client = clocked.client
    call = await start_live_call(client, RATE, FUNDS)
    try:
        await call.run(30)
        await call.end()
    finally:
        await call.close()
    resp = await call.buyer.post(f"/api/calls/{call.call_id}/tip", {"tokens": "5"},
                                 headers={"Idempotency-Key": "tip-1"})
    assert resp.status in (200, 201), await resp.text()
    resp = await call.buyer.post(f"/api/calls/{call.call_id}/dispute", {"reason": "froze"})
    assert resp.status == 201, await resp.text()
    admin = await admin_actor(client)
    dispute_id = (await resp.json())["dispute"]["id"]
    resp = await admin.post(f"/api/admin/disputes/{dispute_id}/resolve",
                            {"refund_tokens": "10", "note": "a frozen minute"})
    assert resp.status == 200, await resp.text()

    mine = (await (await call.buyer.get("/api/calls")).json())
    assert mine["next_before"] is None
    [b] = mine["calls"]
    assert b["id"] == call.call_id and b["role"] == "buyer"
    assert b["with"] == {"id": call.seller.id, "display_name": call.seller.user["display_name"]}
    assert b["live_seconds"] >= 30
    a = b["amounts"]
    assert tokens(a["cost"]) == tokens(b["charged"]) > 0
    assert (tokens(a["tips"]), tokens(a["refunds"])) == (5, 10)
    assert tokens(a["total"]) == tokens(a["cost"]) + 5 - 10
    # What the buyer paid in all is what left their balance.
    bb = await balance(call.buyer)
    assert tokens(a["total"]) == FUNDS - tokens(bb["available"]) - tokens(bb.get("held", "0"))

    [s] = (await (await call.seller.get("/api/calls")).json())["calls"]
    assert s["role"] == "seller" and s["with"]["id"] == call.buyer.id
    sa = s["amounts"]
    assert tokens(sa["earned"]) == tokens(s["seller_earned"])  # after commission
    assert tokens(sa["earned"]) < tokens(a["cost"])
    assert 0 < tokens(sa["tips"]) <= 5 and 0 < tokens(sa["refunds"]) <= 10
    sb = await balance(call.seller)
    assert tokens(sa["total"]) == tokens(sb["available"]) + tokens(sb["pending"])

    receipt = (await (await call.buyer.get(f"/api/calls/{call.call_id}/receipt")).json())["call"]
    assert receipt["amounts"] == a
    assert sum(tokens(line["amount"]) for line in receipt["lines"]) == -tokens(a["total"])
    assert {line["kind"] for line in receipt["lines"]} >= {"call_hold", "call_settle", "tip",
                                                           "dispute_refund"}
    assert [t["amount"] for t in receipt["tip_list"]] == ["5"]


async def test_history_is_paged_newest_first(clocked):
    client = clocked.client
    call = await start_live_call(client, RATE, FUNDS)
    ids = [call.call_id]
    try:
        await call.end()
        for _ in range(2):
            again = await call_between(client, call.buyer, call.seller, call.bc, call.sc, RATE)
            ids.append(again.call_id)
            await again.end()
            for m in (again.bm, again.sm):
                await m.stop()
    finally:
        await call.close()
    newest_first = list(reversed(ids))
    page1 = await (await call.buyer.get("/api/calls?limit=2")).json()
    assert [c["id"] for c in page1["calls"]] == newest_first[:2]
    assert page1["next_before"] == newest_first[1]
    page2 = await (await call.buyer.get(
        f"/api/calls?limit=2&before={page1['next_before']}")).json()
    assert [c["id"] for c in page2["calls"]] == newest_first[2:]
    assert page2["next_before"] is None
    everything = await (await call.seller.get("/api/calls")).json()
    assert [c["id"] for c in everything["calls"]] == newest_first


async def test_bad_paging_and_strangers_receipts_are_refused(clocked):
    client = clocked.client
    call = await start_live_call(client, RATE, FUNDS)
    try:
        await call.end()
    finally:
        await call.close()
    for query in ("before=abc", "before=0", "limit=0", "limit=51", "before=-1"):
        await assert_error(await call.buyer.get(f"/api/calls?{query}"), 422, "invalid_value")
    stranger = await actor(client)
    assert (await (await stranger.get("/api/calls")).json())["calls"] == []
    await assert_error(await stranger.get(f"/api/calls/{call.call_id}/receipt"), 404,
                       "call_not_found")
    await assert_error(await call.buyer.get("/api/calls/999999/receipt"), 404, "call_not_found")


async def test_wallet_ledger_shows_a_call_as_one_line_that_never_drops_to_the_hold(clocked):
    client = clocked.client
    # 600 tokens at 600 a minute: the first hold (a minute ahead) takes all of it.
    call = await start_live_call(client, RATE, 600)
    try:
        await call.run(12)
        flat = (await (await call.buyer.get("/api/ledger")).json())["entries"]
        assert min(tokens(e["balance_after"]) for e in flat if e["bucket"] == "available") == 0
        grouped = (await (await call.buyer.get("/api/ledger?group=calls")).json())["entries"]
        [line] = [e for e in grouped if e["kind"] == "call"]
        assert line["call_id"] == call.call_id and line["line_count"] > 1
        bal = await balance(call.buyer)
        held_in_all = tokens(bal["available"]) + tokens(bal["held"])
        assert tokens(line["balance_after"]) == held_in_all == 600 + tokens(line["amount"]) > 0
        await call.end()
    finally:
        await call.close()
    grouped = (await (await call.buyer.get("/api/ledger?group=calls")).json())["entries"]
    [line] = [e for e in grouped if e["kind"] == "call"]
    [mine] = (await (await call.buyer.get("/api/calls")).json())["calls"]
    assert tokens(line["amount"]) == -tokens(mine["amounts"]["total"])
    assert tokens(line["balance_after"]) == tokens((await balance(call.buyer))["available"])
    # The deposit stays its own line, under the call.
    assert [e["kind"] for e in grouped][-1] != "call"
    seller_lines = (await (await call.seller.get("/api/ledger?group=calls")).json())["entries"]
    [s] = seller_lines
    [sc] = (await (await call.seller.get("/api/calls")).json())["calls"]
    assert tokens(s["amount"]) == tokens(sc["amounts"]["total"]) > 0
    await assert_error(await call.buyer.get("/api/ledger?group=nope"), 422, "invalid_value")
