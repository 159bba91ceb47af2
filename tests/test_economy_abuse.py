"""The economy tried as an attacker: bonus tokens laundered through a colluding seller (a
tip from bonus, a call that never went live, minutes paid with bonus). Real server, real
sockets, devnet top-ups."""

from __future__ import annotations

from decimal import Decimal

import pytest
from aiohttp import web

from server import economy
from server.app import create_app
from server.appkeys import DB
from server.config import ConfigError, config_from_dict
from tests.calls_helpers import ws_client
from tests.conftest import (
    FAST_CALLS,
    actor,
    assert_error,
    audit_ok,
    chain_config,
    fast_calls_config,
)
from tests.conftest import seller_online as new_seller
from tests.test_economy_api import (  # noqa: F401 (the fixture closes the sockets)
    admin_actor,
    live_call,
    sockets_closed_after_each_test,
    stop_media,
)
from tests.test_economy_bar import pay_and_claim, top_up


async def tip(buyer, call_id: str, tokens, key: str):
    return await buyer.post(f"/api/calls/{call_id}/tip", {"tokens": tokens},
                            headers={"Idempotency-Key": key})


# ---- item: bonus laundering through a colluding seller --------------------------------

@pytest.fixture
async def laundering_client(aiohttp_client, tmp_path):
    # 30 % is the largest whole tier the default 25 % commission allows (below 33.16 %).
    cfg = chain_config(tmp_path, deposits={"watcher_interval_s": 3600},
                       economy={"bonus_tiers": ["10:30"]},
                       billing={**FAST_CALLS["billing"], "min_prefund_minutes": 0},
                       server=FAST_CALLS["server"])
    return await aiohttp_client(create_app(cfg))


async def test_bonus_laundering_round_trip_through_an_own_seller_gains_nothing(
        laundering_client):
    client = laundering_client
    seller = await new_seller(client, 3000)  # the buyer's own seller account
    buyer = await actor(client)
    deposit = await pay_and_claim(client, buyer, await top_up(client, buyer, "10"))
    paid = Decimal(deposit["tokens"])  # 10.0000xx USDT = 1000.0xx tokens bought
    assert 1000 <= paid < 1001
    me = await buyer.me()
    assert me["bonus"] == {"unspent": "300", "withdrawable": deposit["tokens"]}
    bc, sc = await ws_client(client, buyer), await ws_client(client, seller)
    try:
        # A call that never went live cannot be tipped, during it or after it.
        resp = await buyer.post("/api/calls", {"seller_id": seller.id, "rate": 3000})
        never = (await resp.json())["call"]["id"]
        await seller.post(f"/api/calls/{never}/accept")
        await assert_error(await tip(buyer, never, 10, "never-1"), 409, "call_not_live")
        await buyer.post(f"/api/calls/{never}/end")
        await assert_error(await tip(buyer, never, 10, "never-2"), 409, "call_not_taken_place")

        # Live, hung up at once: nothing charged.
        call = await live_call(client, buyer, seller, 3000, bc, sc)
        ended = await call.end()
        assert ended["charged"] == "0"
        # The whole balance as a tip: the bonus part is refused, nothing moves.
        resp = await tip(buyer, call.call_id, 1300, "all")
        body = await assert_error(resp, 402, "bonus_not_tippable")
        assert "bonus" in body["error"]["message"]
        assert (await buyer.me())["balance"]["available"] == str(paid + 300)
        # What the buyer bought can be tipped: the seller gets it minus the commission.
        resp = await tip(buyer, call.call_id, 1000, "paid")
        assert resp.status == 201, await resp.text()
        assert (await resp.json())["tip"]["seller_receives"] == "750"
        await assert_error(await tip(buyer, call.call_id, 1, "one-more"), 402,
                           "bonus_not_tippable")

        # The bonus spent on minutes at the seller's own rate: one 6-s segment of 300.
        call = await live_call(client, buyer, seller, 3000, bc, sc, media=True)
        try:
            ended = (await bc.next("call.ended", call.call_id, within=20))["call"]
        finally:
            await stop_media(call)
        assert (ended["end_reason"], ended["charged"], ended["seller_earned"]) == (
            "insufficient_funds", "300", "225")
    finally:
        for c in (bc, sc):
            await c.close()

    # The seller withdraws everything: less than the buyer paid in USDT.
    seller_me = await seller.me()
    earned = Decimal(seller_me["balance"]["available"])
    assert seller_me["bonus"]["withdrawable"] == seller_me["balance"]["available"]
    assert earned == 975
    assert 750 <= paid * Decimal("0.75")  # the tip: at most what was paid less commission
    assert earned < paid  # the whole round trip, bonus minutes included, loses money
    resp = await seller.post("/api/withdrawals", {
        "tokens": seller_me["balance"]["available"],
        "address": "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"}, headers={"Idempotency-Key": "all"})
    assert resp.status == 201, await resp.text()
    buyer_me = await buyer.me()
    # Bonus is spent last: the crumbs of the top-up left over are bonus, not withdrawable.
    assert buyer_me["bonus"]["withdrawable"] == "0"
    # Buyer and seller together can take out less than the buyer put in.
    assert earned + Decimal(buyer_me["bonus"]["withdrawable"]) < paid
    await audit_ok(client)


def test_a_tier_that_would_make_laundering_pay_is_refused_at_start(tmp_path):
    # 25 % commission: a bonus above 25/75 = 33.33 % (33.1557 % with the rounding margin)
    # would pay a colluding seller more than the top-up cost.
    config_from_dict({"economy": {"bonus_tiers": ["10:33"]}}, tmp_path)
    with pytest.raises(ConfigError, match="bonus_tiers.*commission"):
        config_from_dict({"economy": {"bonus_tiers": ["10:34"]}}, tmp_path)
    with pytest.raises(ConfigError, match="bonus_tiers"):
        config_from_dict({"economy": {"bonus_tiers": ["10:33.2"]}}, tmp_path)
    # A lower commission lowers the bound (10 %: 10/90 = 11.11 %, 10.9877 % with the
    # margin); a tip commission of its own counts as well.
    with pytest.raises(ConfigError, match="at most 10.9877 %"):
        config_from_dict({"billing": {"commission_percent": 10},
                          "economy": {"bonus_tiers": ["10:11"]}}, tmp_path)
    config_from_dict({"billing": {"commission_percent": 10},
                      "economy": {"bonus_tiers": ["10:10.98"]}}, tmp_path)
    with pytest.raises(ConfigError, match="bonus_tiers"):
        config_from_dict({"economy": {"bonus_tiers": ["10:5"], "tip_commission_percent": 0}},
                         tmp_path)


def test_max_bonus_keeps_a_full_spend_below_the_top_up():
    for c in (0, 500, 1000, 1001, 100_000, 250_000, 500_000, 999_999, 1_000_000):
        b = economy.max_bonus_ppm(c)
        assert b >= 0
        if b:
            # Every token bought and given, spent at commission c, with up to 0.1 % lost to
            # the seller's side in rounding: still less than the top-up.
            assert (1_000_000 + b) * (1_000_000 - c + 1_000) <= 1_000_000 ** 2
            assert (1_000_000 + b + 1) * (1_000_000 - c + 1_000) > 1_000_000 ** 2
    assert economy.max_bonus_ppm(0) == 0  # no commission: no bonus at all
    assert economy.max_bonus_ppm(250_000) == 331_557


async def test_a_promotion_that_would_make_laundering_pay_is_refused(aiohttp_client,
                                                                    tmp_path):
    client = await aiohttp_client(create_app(fast_calls_config(
        tmp_path, economy={"bonus_tiers": ["10:30"]})))
    admin = await admin_actor(client)
    promo = {"name": "Big week", "percent": "4", "starts_at": "2020-01-01T00:00:00Z",
             "ends_at": "2099-01-01T00:00:00Z"}
    # 30 % tier + 4 % promotion = 34 %: above the bound for 25 %.
    body = await assert_error(await admin.post("/api/admin/promotions", promo), 422,
                              "bonus_too_high")
    assert "3.1557" in body["error"]["message"]
    resp = await admin.post("/api/admin/promotions", {**promo, "percent": "3"})
    assert resp.status == 201, await resp.text()
    # A seller with a commission of their own lowers the bound for every promotion.
    seller = await new_seller(client, 60)
    await client.app[DB].tx(lambda c: c.execute(
        "UPDATE sellers SET commission_ppm = 200000 WHERE user_id = ?", (int(seller.id),)))
    await assert_error(await admin.post("/api/admin/promotions", {**promo, "percent": "1"}),
                       422, "bonus_too_high")
    # ... and the check a restart makes names the problem.
    problem = await client.app[DB].read(economy.bonus_bound_problem, 250_000, 0)
    assert problem is not None and "30 %" in problem and "20 %" in problem
    await client.close()
    runner = web.AppRunner(create_app(fast_calls_config(
        tmp_path, economy={"bonus_tiers": ["10:30"]})))
    try:
        with pytest.raises(ConfigError, match="seller's own commission"):
            await runner.setup()  # the start-up, as `meterchat serve` runs it
    finally:
        await runner.cleanup()
