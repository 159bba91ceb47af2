"""The issue's bar, tried as new users would: USDT top-ups through the devnet faucet with a
10 % tier and a promotion, a spending limit that stops a live call like a cap and then
refuses the next one, a tip sent twice with one key, a self-excluded buyer whose transfer is
still credited, seller stats that match the calls, bonus tokens never withdrawable by the
buyer, and a clean ledger audit after all of it."""

from __future__ import annotations

from decimal import Decimal

import pytest

from meterchat.appkeys import DB
from meterchat.chain_ctx import DEVNET
from meterchat.core.units import tokens_to_musdt
from meterchat.money import ledger
from meterchat.tools.peer import SyntheticMedia
from tests.calls_helpers import LiveCall, clocked_app, clocked_of, ws_client
from tests.conftest import FAST_CALLS, actor, assert_error, audit_ok, chain_config, devnet_pay
from tests.conftest import seller_online as new_seller
from tests.test_economy_api import admin_actor, live_call


@pytest.fixture
async def app_client(aiohttp_client, tmp_path):
    cfg = chain_config(tmp_path, deposits={"watcher_interval_s": 3600},
                       economy={"bonus_tiers": ["50:5", "100:10"]},
                       withdrawals={"buyer_withdrawals": True}, **FAST_CALLS)
    # Calls on a controlled clock (tests/calls_helpers.py); the chain runs in real time.
    return (await clocked_app(aiohttp_client, cfg)).client


async def top_up(client, buyer, usdt: str) -> dict:
    resp = await buyer.post("/api/deposits/intents", {"usdt": usdt})
    assert resp.status == 201, await resp.text()
    intent = (await resp.json())["intent"]
    return intent


async def pay_and_claim(client, buyer, intent: dict) -> dict:
    node = client.app[DEVNET]
    txid = await devnet_pay(node.url, intent["address"], usdt=intent["amount_usdt"])
    await node.wait_solidified(txid)
    resp = await buyer.post("/api/deposits/claim", {"txid": txid})
    assert resp.status == 200, await resp.text()
    deposit = (await resp.json())["deposit"]
    await assert_error(await buyer.post("/api/deposits/claim", {"txid": txid}), 409,
                       "already_credited")
    return deposit


def tokens(text: str) -> Decimal:
    return Decimal(text)


async def test_economy_bar(app_client):
    client = app_client
    admin = await admin_actor(client)
    seller = await new_seller(client, 600)
    alice = await actor(client, display_name="Alice")  # 100 USDT, 10 % tier
    bob = await actor(client, display_name="Bob")  # 50 USDT, 5 % tier + 5 % promotion
    carol = await actor(client, display_name="Carol")  # excludes herself

    # -- a 100 USDT top-up with a 10 % tier: 11,000 tokens, of which 1,000 are bonus
    deposit = await pay_and_claim(client, alice, await top_up(client, alice, "100"))
    me = await alice.me()
    paid = tokens(deposit["tokens"])
    assert 10_000 < paid < 10_010  # 100 USDT and a suffix below 0.1 USDT
    assert tokens(me["balance"]["available"]) == paid + 1000
    assert me["bonus"] == {"unspent": "1000", "withdrawable": deposit["tokens"]}
    entries = (await (await alice.get("/api/ledger")).json())["entries"]
    assert sorted((e["kind"], e["amount"]) for e in entries) == [
        ("bonus", "1000"), ("deposit", deposit["tokens"])]

    # -- a promotion on top of the 5 % tier
    resp = await admin.post("/api/admin/promotions", {
        "name": "Launch week", "percent": "5", "starts_at": "2020-01-01T00:00:00Z",
        "ends_at": "2099-01-01T00:00:00Z"})
    assert resp.status == 201, await resp.text()
    await pay_and_claim(client, bob, await top_up(client, bob, "50"))
    assert (await bob.me())["bonus"]["unspent"] == "500"
    promos = await (await admin.get("/api/admin/promotions")).json()
    assert promos["cost"] == {"tiers": "1250", "promotions": "250", "total": "1500",
                              "top_ups_with_bonus": 2, "promo_account_given": "1500"}
    assert promos["promotions"][0]["cost"] == "250"
    assert promos["promotions"][0]["top_ups"] == 1
    assert [t["percent"] for t in promos["tiers"]] == ["5", "10"]

    # -- a self-excluded buyer is refused, and her transfer is still credited
    intent = await top_up(client, carol, "10")
    resp = await carol.post("/api/me/self-exclusion", {"days": 30})
    assert resp.status == 200
    await pay_and_claim(client, carol, intent)
    carol_me = await carol.me()
    assert tokens(carol_me["balance"]["available"]) >= 1050
    assert carol_me["bonus"]["unspent"] == "50"  # the promotion has no minimum
    await assert_error(await carol.post("/api/calls", {"seller_id": seller.id, "rate": 600}),
                       403, "self_excluded")
    await assert_error(await carol.post("/api/deposits/intents", {"usdt": "10"}), 403,
                       "self_excluded")

    # -- a daily limit stops a live call like a spending cap, then refuses the next call
    resp = await alice.put("/api/me/limits", {"daily": "60"})
    assert (await resp.json())["limits"]["daily"] == "60"
    ac, sc = await ws_client(client, alice), await ws_client(client, seller)
    resp = await alice.post("/api/calls", {"seller_id": seller.id, "rate": 600})
    call = (await resp.json())["call"]
    assert call["spend_cap"] == "60"
    await seller.post(f"/api/calls/{call['id']}/accept")
    live = LiveCall(call["id"], alice, seller, ac, sc, SyntheticMedia(ac, call["id"]),
                    SyntheticMedia(sc, call["id"]), clocked_of(client))
    await live.beat()
    await live.beat()  # counters grew: live
    ended = await live.run_until_ended()
    assert (ended["end_reason"], ended["billed_tenths"], ended["charged"],
            ended["seller_earned"], ended["live_seconds"]) == ("spend_cap", 1, "60", "45", 6)
    await assert_error(await alice.post("/api/calls", {"seller_id": seller.id, "rate": 600}),
                       403, "daily_limit_reached")
    # Bonus is spent last: Alice paid the minute with her own tokens, the bonus is intact.
    me = await alice.me()
    assert me["bonus"]["unspent"] == "1000"
    assert tokens(me["bonus"]["withdrawable"]) == paid - 60

    # -- a buyer tips 50 tokens once despite a replayed key (in a call that went live)
    bc = await ws_client(client, bob)
    try:
        bob_live = await live_call(client, bob, seller, 600, bc, sc)
        bob_call = bob_live.call_id
        for status in (201, 200):
            resp = await bob.post(f"/api/calls/{bob_call}/tip", {"tokens": 50},
                                  headers={"Idempotency-Key": "bob-tip-1"})
            assert resp.status == status, await resp.text()
        assert (await bc.next("tip", bob_call, within=5))["tip"]["seller_receives"] == "37.5"
        assert (await sc.next("tip", bob_call, within=5))["tip"]["tokens"] == "50"
        await bob_live.run(1)  # live a moment, unbilled
        await bob.post(f"/api/calls/{bob_call}/end")
    finally:
        for c in (ac, sc, bc):
            await c.close()
    assert len(bc.seen("tip")) == 0  # one message only

    # -- seller stats match the calls made
    seller_calls = (await (await seller.get("/api/calls")).json())["calls"]
    stats = (await (await seller.get("/api/seller/stats")).json())["stats"]
    from_calls = sum(tokens(c["seller_earned"]) for c in seller_calls)
    assert from_calls == 45
    assert tokens(stats["earned_total"]) == from_calls + Decimal("37.5")
    assert stats["tips_total"] == "37.5"
    assert tokens(stats["per_day"][-1]["earned"]) == tokens(stats["earned_total"])
    lived = [c for c in seller_calls if c["state"] == "ended"]
    assert stats["calls"] == len(lived) == 2  # Bob's call was live a moment, unbilled
    assert stats["minutes_billed"] == "0.1"
    assert stats["average_call_seconds"] == 3  # (6 s + 1 s) / 2, in whole seconds
    # Neither opted in to supporter boards: counted, not named, in the seller's own stats.
    assert stats["top_supporters"] == [] and stats["supporters_not_shown"] == 2
    assert sum(tokens(h["minutes"]) for h in stats["busiest_hours"]) == Decimal("0.1")
    assert (await seller.me())["balance"]["available"] == "82.5"

    # -- a seller's earnings are the seller's: withdrawable in full, no buyer's bonus touched
    assert (await seller.me())["bonus"] == {"unspent": "0", "withdrawable": "82.5"}
    assert (await bob.me())["bonus"]["unspent"] == "500"

    # -- where buyers may withdraw, the bonus stays: only paid tokens leave
    me = await alice.me()
    address = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
    resp = await alice.post("/api/withdrawals", {"tokens": me["balance"]["available"],
                                                 "address": address},
                            headers={"Idempotency-Key": "alice-all"})
    await assert_error(resp, 402, "bonus_not_withdrawable")
    resp = await alice.post("/api/withdrawals", {"tokens": me["bonus"]["withdrawable"],
                                                 "address": address},
                            headers={"Idempotency-Key": "alice-paid"})
    assert resp.status == 201, await resp.text()
    me = await alice.me()
    assert me["balance"]["available"] == "1000"
    assert me["bonus"] == {"unspent": "1000", "withdrawable": "0"}

    # -- spending history
    spending = (await (await alice.get("/api/me/spending")).json())["spending"]
    assert spending["total"] == "60"
    assert spending["per_seller"][0]["seller_id"] == seller.id

    # -- the ledger: clean, and the promotion cost is exactly what promo:bonuses gave
    report = await audit_ok(client)
    promos = await (await admin.get("/api/admin/promotions")).json()
    assert promos["cost"]["total"] == promos["cost"]["promo_account_given"] == "1550"
    assert report["promo_given_musdt"] == tokens_to_musdt("1550")
    assert report["users_total_musdt"] + report["clearing_musdt"] == (
        report["deposits_in_musdt"] + report["promo_given_musdt"] - report["revenue_musdt"]
        - report["withdrawals_out_musdt"])
    promo_balance = await client.app[DB].read(ledger.balance, ledger.PROMO_BONUSES)
    assert promo_balance == -tokens_to_musdt("1550")
