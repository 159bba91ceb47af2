"""The economy tried as an attacker: bonus tokens laundered through a colluding seller (a
tip from bonus, a call that never went live, minutes paid with bonus), and a tip during a
call that would take the buyer past the daily limit. Real server, real sockets, devnet
top-ups; the billing order is also driven pass by pass on a real database."""

from __future__ import annotations

from decimal import Decimal

import pytest
from aiohttp import web

from meterchat.accounts import users as accounts
from meterchat.app import create_app
from meterchat.appkeys import DB
from meterchat.calls import store as calls
from meterchat.core import bonus_bound
from meterchat.core.config import ConfigError, config_from_dict
from meterchat.core.db import connect_sync, migrate_sync, run_read, run_tx
from meterchat.core.units import MUSDT_PER_TOKEN
from meterchat.economy import bonuses, limits
from meterchat.economy import tips as economy_tips
from meterchat.money import billing, ledger
from tests.calls_helpers import clocked_app, ws_client
from tests.conftest import (
    FAST_CALLS,
    actor,
    assert_error,
    audit_ok,
    chain_config,
    fast_calls_config,
    fund,
)
from tests.conftest import seller_online as new_seller
from tests.test_economy_api import (  # noqa: F401 (the fixture closes the sockets)
    admin_actor,
    live_call,
    sockets_closed_after_each_test,
    stop_media,
)
from tests.test_economy_bar import pay_and_claim, top_up

T = MUSDT_PER_TOKEN


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
    return (await clocked_app(aiohttp_client, cfg)).client


async def test_bonus_laundering_round_trip_through_an_own_seller_gains_nothing(
        laundering_client):
    client = laundering_client
    seller = await new_seller(client, 3000)  # the buyer's own seller account
    buyer = await actor(client)
    deposit = await pay_and_claim(client, buyer, await top_up(client, buyer, "10"))
    # 10 USDT plus the intent's suffix (at most 0.099999 USDT) = 1000 to 1010 tokens bought.
    paid = Decimal(deposit["tokens"])
    assert 1000 <= paid < 1010
    # 30 % of it, rounded down to whole tokens: 300 to 302 (the suffix is random).
    bonus = int(paid * 3 / 10)
    me = await buyer.me()
    assert me["bonus"] == {"unspent": str(bonus), "withdrawable": deposit["tokens"]}
    bc, sc = await ws_client(client, buyer), await ws_client(client, seller)
    try:
        # A call that never went live cannot be tipped, during it or after it.
        resp = await buyer.post("/api/calls", {"seller_id": seller.id, "rate": 3000})
        never = (await resp.json())["call"]["id"]
        await seller.post(f"/api/calls/{never}/accept")
        await assert_error(await tip(buyer, never, 10, "never-1"), 409, "call_not_live")
        await buyer.post(f"/api/calls/{never}/end")
        await assert_error(await tip(buyer, never, 10, "never-2"), 409, "call_not_taken_place")

        # Live for a second, then hung up: nothing charged (under half a segment), and a
        # call with live time can be tipped.
        call = await live_call(client, buyer, seller, 3000, bc, sc)
        await call.run(1)
        ended = await call.end()
        assert ended["charged"] == "0" and ended["live_seconds"] == 1
        # The whole balance as a tip: the bonus part is refused, nothing moves.
        resp = await tip(buyer, call.call_id, 1300, "all")
        body = await assert_error(resp, 402, "bonus_not_tippable")
        assert "bonus" in body["error"]["message"]
        assert (await buyer.me())["balance"]["available"] == str(paid + bonus)
        # What the buyer bought can be tipped (whole tokens): the seller gets it minus the
        # commission.
        whole = int(paid)
        resp = await tip(buyer, call.call_id, whole, "paid")
        assert resp.status == 201, await resp.text()
        assert Decimal((await resp.json())["tip"]["seller_receives"]) == whole * Decimal("0.75")
        await assert_error(await tip(buyer, call.call_id, 1, "one-more"), 402,
                           "bonus_not_tippable")

        # The bonus spent on minutes at the seller's own rate: one 6-s segment of 300.
        call = await live_call(client, buyer, seller, 3000, bc, sc, media=True)
        ended = await call.run_until_ended()
        assert (ended["end_reason"], ended["charged"], ended["seller_earned"]) == (
            "insufficient_funds", "300", "225")
        assert ended["live_seconds"] == 6
    finally:
        for c in (bc, sc):
            await c.close()

    # The seller withdraws everything: less than the buyer paid in USDT.
    seller_me = await seller.me()
    earned = Decimal(seller_me["balance"]["available"])
    assert seller_me["bonus"]["withdrawable"] == seller_me["balance"]["available"]
    assert earned == whole * Decimal("0.75") + 225
    assert whole * Decimal("0.75") <= paid * Decimal("0.75")  # the tip: what was paid less commission
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
        b = bonus_bound.max_bonus_ppm(c)
        assert b >= 0
        if b:
            # Every token bought and given, spent at commission c, with up to 0.1 % lost to
            # the seller's side in rounding: still less than the top-up.
            assert (1_000_000 + b) * (1_000_000 - c + 1_000) <= 1_000_000 ** 2
            assert (1_000_000 + b + 1) * (1_000_000 - c + 1_000) > 1_000_000 ** 2
    assert bonus_bound.max_bonus_ppm(0) == 0  # no commission: no bonus at all
    assert bonus_bound.max_bonus_ppm(250_000) == 331_557


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
    problem = await client.app[DB].read(bonuses.bonus_bound_problem, 250_000, 0)
    assert problem is not None and "30 %" in problem and "20 %" in problem
    await client.close()
    runner = web.AppRunner(create_app(fast_calls_config(
        tmp_path, economy={"bonus_tiers": ["10:30"]})))
    try:
        with pytest.raises(ConfigError, match="seller's own commission"):
            await runner.setup()  # the start-up, as `meterchat serve` runs it
    finally:
        await runner.cleanup()


# ---- item: a tip cannot take the buyer past the daily limit ---------------------------

async def test_a_tip_during_a_call_capped_by_the_daily_limit_never_passes_the_limit(
        aiohttp_client, tmp_path):
    client = (await clocked_app(aiohttp_client, fast_calls_config(
        tmp_path, billing={"min_prefund_minutes": 0}))).client
    seller = await new_seller(client, 300)  # 30 tokens per 6-s segment
    buyer = await actor(client)
    await fund(client, buyer.id, 59)  # the first hold is one segment
    resp = await buyer.put("/api/me/limits", {"daily": "70"})
    assert resp.status == 200
    call = await live_call(client, buyer, seller, 300, media=True)
    try:
        got = (await (await buyer.get(f"/api/calls/{call.call_id}")).json())["call"]
        assert got["spend_cap"] == "70"
        # 30 held, 29 available: the call may still take 70, so no tip fits under the limit.
        body = await assert_error(await tip(buyer, call.call_id, 29, "mid"), 403,
                                  "daily_limit_reached")
        assert "call" in body["error"]["message"]
        limits = (await (await buyer.get("/api/me/limits")).json())["limits"]
        assert limits["left_today"] == "0"
        await fund(client, buyer.id, 100)  # a top-up mid-call lets it run to its cap
        ended = await call.run_until_ended()
    finally:
        await stop_media(call)
    assert (ended["end_reason"], ended["charged"]) == ("spend_cap", "60")
    assert ended["live_seconds"] == 12  # two segments: a third would pass the cap of 70
    limits = (await (await buyer.get("/api/me/limits")).json())["limits"]
    assert (limits["spent_today"], limits["left_today"]) == ("60", "10")
    await assert_error(await tip(buyer, call.call_id, 11, "after-11"), 403,
                       "daily_limit_reached")
    assert (await tip(buyer, call.call_id, 10, "after-10")).status == 201
    limits = (await (await buyer.get("/api/me/limits")).json())["limits"]
    assert (limits["spent_today"], limits["left_today"]) == ("70", "0")
    await audit_ok(client)


def _db(path):
    conn = connect_sync(path)
    migrate_sync(conn)
    return conn


def _people(conn, rate: int, funds_tokens: int) -> tuple[int, int]:
    buyer = run_tx(conn, accounts.insert_user_tx, "b@example.com", "x", "buyer", "b").id
    seller = run_tx(conn, accounts.insert_user_tx, "s@example.com", "x", "seller", "s").id
    run_tx(conn, lambda c: c.execute(
        "INSERT INTO sellers (user_id, rate_tokens_per_min, online, updated_at_ms)"
        " VALUES (?, ?, 1, 0)", (seller, rate)))
    run_tx(conn, ledger.transfer, ledger.CHAIN_DEPOSITS, ledger.user_account(buyer),
           funds_tokens * T, "deposit")
    return buyer, seller


NOW = 1_750_000_000_000  # a fixed clock, mid-day UTC


def _drive(conn, buyer: int, seller: int, tips: dict[int, int], limit_tokens: int,
           lower_to: tuple[int, int] | None = None) -> dict:
    """One call at 60 tokens/min (6 per segment) billed pass by pass on a fixed clock;
    tips[t] = tokens tipped before segment t is billed (0 = right when it goes live).
    lower_to = (t, tokens): the daily limit set to that before segment t."""
    run_tx(conn, limits.set_limits_tx, buyer, {"daily": limit_tokens * T}, 0, NOW)
    row = run_tx(conn, calls.create_call_tx, buyer, seller, 60, None, 0, 250_000, NOW)
    call_id = row.id
    run_tx(conn, calls.accept_call_tx, call_id, NOW)
    run_tx(conn, calls.record_state_tx, call_id, "live", NOW)
    refused = []
    t = 0
    while True:
        if lower_to is not None and lower_to[0] == t:
            run_tx(conn, limits.set_limits_tx, buyer, {"daily": lower_to[1] * T}, 0, NOW)
        if t in tips:
            try:
                run_tx(conn, economy_tips.tip_tx, buyer, call_id, tips[t], f"k{t}", 3_600_000,
                       None, NOW)
            except limits.LimitReached:
                refused.append(t)
        t += 1
        out = run_tx(conn, billing.run_pass, [(call_id, t)], NOW)
        if not out or out[0].end_reason is not None or t > 40:
            break
    run_tx(conn, billing.finish_call, call_id, "ended", "hangup", None, NOW, 0)
    state = run_read(conn, limits.limits_state, buyer, NOW)
    call = conn.execute("SELECT charged_musdt, end_reason FROM calls WHERE id = ?",
                        (call_id,)).fetchone()
    return {"spent": state["spent_today"], "refused": refused, "charged": call[0],
            "left": state["daily_left"], "call_id": call_id, "end_reason": call[1]}


@pytest.mark.parametrize("when", [0, 1, 5, 9, 10, 11, 12])
@pytest.mark.parametrize("tokens", [1, 4, 10, 40])
def test_spent_never_passes_the_daily_limit_whatever_the_order(tmp_path, when, tokens):
    conn = _db(tmp_path / "m.sqlite3")
    try:
        buyer, seller = _people(conn, 60, 500)
        got = _drive(conn, buyer, seller, {when: tokens}, 70)
        assert got["spent"] <= 70 * T, got
        # After the call, what is left can be tipped, exactly up to the limit.
        if got["left"]:
            left_tokens = got["left"] // T
            with pytest.raises(limits.LimitReached):
                run_tx(conn, economy_tips.tip_tx, buyer, got["call_id"], left_tokens + 1, "x",
                       3_600_000, None, NOW)
            if left_tokens:
                run_tx(conn, economy_tips.tip_tx, buyer, got["call_id"], left_tokens, "y",
                       3_600_000, None, NOW)
        assert run_read(conn, limits.limits_state, buyer, NOW)["spent_today"] <= 70 * T
        assert run_read(conn, ledger.audit).ok
    finally:
        conn.close()


def test_a_limit_set_during_a_call_caps_the_call_at_once(tmp_path):
    conn = _db(tmp_path / "m.sqlite3")
    try:
        buyer, seller = _people(conn, 60, 500)
        # No limit when the call starts (a huge one), 70 from its 3rd segment on.
        got = _drive(conn, buyer, seller, {}, 100_000, lower_to=(3, 70))
        assert got["end_reason"] == "spend_cap"
        assert got["spent"] <= 70 * T and got["charged"] == 66 * T
    finally:
        conn.close()
