"""Tips: whole tokens from a call's buyer to its seller, commission as for minutes, once per
Idempotency-Key, both parties told, the ledger balanced after."""

from __future__ import annotations

from decimal import Decimal

import pytest

from server.app import create_app
from server.config import EconomyConfig
from server.errors import Unprocessable
from server.tips import check_tip_tokens, tip_commission_ppm
from tests.calls_helpers import start_live_call
from tests.conftest import actor, assert_error, audit_ok, fast_calls_config


@pytest.fixture
async def app_client(aiohttp_client, tmp_path):
    return await aiohttp_client(create_app(fast_calls_config(tmp_path)))


def test_tip_amount_rules():
    cfg = EconomyConfig()
    assert check_tip_tokens(50, cfg) == 500_000
    assert check_tip_tokens("7", cfg) == 70_000
    for bad in (0, -1, "1.5", 1.5, True, None, "", "ten", "²", "٣", "9" * 40,
                cfg.max_tip_tokens + 1):
        with pytest.raises(Unprocessable):
            check_tip_tokens(bad, cfg)


def test_tip_commission_is_the_calls_unless_the_operator_sets_one():
    assert tip_commission_ppm(250_000, EconomyConfig()) == 250_000
    assert tip_commission_ppm(250_000, EconomyConfig(tip_commission_percent=Decimal(10))) == 100_000
    assert tip_commission_ppm(250_000, EconomyConfig(tip_commission_percent=Decimal(0))) == 0


async def tip(call, tokens, key="tip-1"):
    return await call.buyer.post(f"/api/calls/{call.call_id}/tip", {"tokens": tokens},
                                 headers={"Idempotency-Key": key})


async def test_a_tip_replayed_moves_once_and_the_seller_gets_it_minus_commission(app_client):
    call = await start_live_call(app_client, 600, funds=1000)
    try:
        before_buyer = (await call.buyer.me())["balance"]["available"]
        resp = await tip(call, 50)
        assert resp.status == 201, await resp.text()
        first = (await resp.json())["tip"]
        assert first["tokens"] == "50" and first["seller_tokens"] == "37.5"
        assert first["commission"] == "12.5"
        again = await tip(call, 50)
        assert again.status == 200 and again.headers["Idempotent-Replayed"] == "true"
        assert (await again.json())["tip"] == first
        await assert_error(await tip(call, 60), 409, "idempotency_key_reused")
        for client in (call.bc, call.sc):
            msg = await client.next("tip", call.call_id)
            assert msg["tip"]["id"] == first["id"]
        after = (await call.buyer.me())["balance"]["available"]
        assert Decimal(before_buyer) - Decimal(after) == 50
        seller_entries = (await (await call.seller.get("/api/ledger")).json())["entries"]
        assert [e for e in seller_entries if e["kind"] == "tip"][0]["amount"] == "37.5"
        listed = (await (await call.seller.get(f"/api/calls/{call.call_id}/tips")).json())
        assert listed == {"tips": [first]}
    finally:
        await call.end()
        await call.close()
    await audit_ok(app_client)


async def test_bad_tips_are_refused_and_move_nothing(app_client):
    call = await start_live_call(app_client, 600, funds=700)
    try:
        url = f"/api/calls/{call.call_id}/tip"
        await assert_error(await call.buyer.post(url, {"tokens": 5}), 400,
                           "idempotency_key_required")
        await assert_error(await tip(call, "2.5", "k1"), 422, "invalid_amount")
        await assert_error(await tip(call, 0, "k2"), 422, "invalid_amount")
        await assert_error(await call.buyer.post(url, {}, headers={"Idempotency-Key": "k3"}),
                           422, "missing_field")
        await assert_error(await tip(call, 100000, "k4"), 402, "insufficient_funds")
        resp = await call.seller.post(url, {"tokens": 5}, headers={"Idempotency-Key": "k5"})
        await assert_error(resp, 403, "wrong_role")
        stranger = await actor(app_client)
        resp = await stranger.post(url, {"tokens": 5}, headers={"Idempotency-Key": "k6"})
        await assert_error(resp, 404, "call_not_found")
        assert (await (await call.buyer.get(f"/api/calls/{call.call_id}/tips")).json()) == {
            "tips": []}
    finally:
        await call.end()
        await call.close()
    await audit_ok(app_client)


async def test_a_declined_call_cannot_be_tipped(app_client):
    from tests.conftest import fund, seller_online

    seller = await seller_online(app_client, 100)
    buyer = await actor(app_client)
    await fund(app_client, buyer.id, 500)
    call_id = (await (await buyer.post("/api/calls", {"seller_id": seller.id, "rate": 100}))
               .json())["call"]["id"]
    assert (await seller.post(f"/api/calls/{call_id}/decline")).status == 200
    resp = await buyer.post(f"/api/calls/{call_id}/tip", {"tokens": 5},
                            headers={"Idempotency-Key": "d1"})
    await assert_error(resp, 409, "call_not_tippable")
    await audit_ok(app_client)
