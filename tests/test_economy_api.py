"""Economy over real HTTP and WebSocket: tips (once per key, commission, window, refusals),
spending limits and self-exclusion, spending history, the supporters board, seller stats
and chart, the operator's promotions, and the consents stored at sign-up. The ledger audit
is clean after each."""

from __future__ import annotations

import pytest

from meterchat.accounts import users as accounts
from meterchat.app import create_app
from meterchat.appkeys import DB, PASSWORDS
from meterchat.core.db import now_ms
from meterchat.economy import bonuses, consents
from meterchat.tools.peer import Client, SyntheticMedia
from tests.calls_helpers import MEDIA_INTERVAL_S, LiveCall, clocked_of, ws_client
from tests.conftest import (
    Actor,
    actor,
    assert_error,
    audit_ok,
    eventually,
    fast_calls_config,
    fund,
    login,
    seller_online,
)


@pytest.fixture
async def app_client(aiohttp_client, tmp_path):
    return await aiohttp_client(create_app(fast_calls_config(tmp_path)))


async def accepted_call(client, seller: Actor, buyer: Actor, rate: int = 60,
                        expect: int = 201) -> str:
    resp = await buyer.post("/api/calls", {"seller_id": seller.id, "rate": rate})
    assert resp.status == expect, await resp.text()
    call_id = (await resp.json())["call"]["id"]
    resp = await seller.post(f"/api/calls/{call_id}/accept")
    assert resp.status == 200, await resp.text()
    return call_id


# One WebSocket per user for the whole test (a seller whose last socket closes goes offline
# after the presence grace), closed after it.
_SOCKETS: dict[tuple[int, str], Client] = {}


@pytest.fixture(autouse=True)
async def sockets_closed_after_each_test():
    yield
    while _SOCKETS:
        await _SOCKETS.popitem()[1].close()


async def socket_of(client, who: Actor) -> Client:
    key = (id(client), who.id)
    if key not in _SOCKETS:
        _SOCKETS[key] = await ws_client(client, who)
    return _SOCKETS[key]


async def live_call(client, buyer: Actor, seller: Actor, rate: int = 60, bc=None, sc=None,
                    spend_cap: str | None = None, media: bool = False) -> LiveCall:
    """A call from buyer to seller that goes live on scripted media heartbeats (only a call
    that had live time can be tipped). Unless `media`, the heartbeats stop once it has been
    live for a second: the
    call pauses a moment later and bills nothing unless it runs on (on a controlled clock,
    tests/calls_helpers.py: the heartbeats go as `call.run` steps the clock). The sockets
    are the users' own for the test (`socket_of`) unless given."""
    bc = bc or await socket_of(client, buyer)
    sc = sc or await socket_of(client, seller)
    body = {"seller_id": seller.id, "rate": rate}
    if spend_cap is not None:
        body["spend_cap"] = spend_cap
    resp = await buyer.post("/api/calls", body)
    assert resp.status == 201, await resp.text()
    call_id = (await resp.json())["call"]["id"]
    resp = await seller.post(f"/api/calls/{call_id}/accept")
    assert resp.status == 200, await resp.text()
    bm = SyntheticMedia(bc, call_id, MEDIA_INTERVAL_S)
    sm = SyntheticMedia(sc, call_id, MEDIA_INTERVAL_S)
    call = LiveCall(call_id, buyer, seller, bc, sc, bm, sm, clocked_of(client))
    if call.clocked is not None:
        # A controlled clock: live now; heartbeats only when the test runs the call.
        await call.beat()
        await call.beat()
        call.buyer_beats = call.seller_beats = media
        await call.wait_state("live")
        return call
    bm.start()
    sm.start()
    await call.wait_state("live")
    if not media:
        # A second of live time first: a call that ended at 0:00 never connected and cannot
        # be tipped (tests/test_calls_never_connected.py).
        await eventually(lambda: live_for_a_second(buyer, call_id))
        await stop_media(call)
    return call


async def live_for_a_second(buyer: Actor, call_id: str) -> bool:
    got = (await (await buyer.get(f"/api/calls/{call_id}")).json())["call"]
    return got["live_seconds"] >= 1


async def stop_media(call: LiveCall) -> None:
    for m in (call.bm, call.sm):
        await m.stop()


async def tipped_call(client, seller: Actor, buyer: Actor, rate: int = 60) -> str:
    """A call that went live (it goes on, paused, billing nothing)."""
    return (await live_call(client, buyer, seller, rate)).call_id


async def tip(buyer: Actor, call_id: str, tokens, key: str | None = "k1"):
    headers = {"Idempotency-Key": key} if key is not None else {}
    return await buyer.post(f"/api/calls/{call_id}/tip", {"tokens": tokens}, headers=headers)


async def balance(who: Actor) -> dict:
    return (await who.me())["balance"]


async def test_a_replayed_tip_moves_once_and_both_parties_are_told(app_client):
    seller = await seller_online(app_client, 60)
    buyer = await actor(app_client)
    await fund(app_client, buyer.id, 500)
    bc, sc = await ws_client(app_client, buyer), await ws_client(app_client, seller)
    try:
        call_id = (await live_call(app_client, buyer, seller, 60, bc, sc)).call_id
        first = await tip(buyer, call_id, 50, "tip-abc")
        assert first.status == 201, await first.text()
        body = await first.json()
        assert body["replayed"] is False
        assert (body["tip"]["tokens"], body["tip"]["seller_receives"],
                body["tip"]["commission"]) == ("50", "37.5", "12.5")
        again = await tip(buyer, call_id, 50, "tip-abc")
        assert again.status == 200
        assert (await again.json()) == {**body, "replayed": True}
        # The same key for another amount is a mistake, not a second tip.
        await assert_error(await tip(buyer, call_id, 20, "tip-abc"), 409,
                           "idempotency_key_reused")
        for c in (bc, sc):
            msg = await c.next("tip", call_id, within=5)
            assert msg["tip"] == body["tip"]
        assert len(bc.seen("tip")) == 0 and len(sc.seen("tip")) == 0  # told once (consumed)
        await buyer.post(f"/api/calls/{call_id}/end")
    finally:
        await bc.close()
        await sc.close()
    assert (await balance(seller))["available"] == "37.5"
    assert (await balance(buyer)) == {"available": "450", "held": "0", "pending": "0"}
    for who, amount in ((buyer, "-50"), (seller, "37.5")):
        entries = (await (await who.get("/api/ledger")).json())["entries"]
        assert [(x["kind"], x["amount"]) for x in entries if x["kind"] == "tip"] == [
            ("tip", amount)]
    listed = (await (await seller.get(f"/api/calls/{call_id}/tips")).json())["tips"]
    assert [t["id"] for t in listed] == [body["tip"]["id"]]
    report = await audit_ok(app_client)
    assert report["revenue_musdt"] == 125_000


async def test_tip_refusals_move_nothing(app_client):
    seller = await seller_online(app_client, 60)
    buyer, stranger = await actor(app_client), await actor(app_client)
    await fund(app_client, buyer.id, 100)
    call_id = await tipped_call(app_client, seller, buyer)
    await assert_error(await tip(buyer, call_id, 5, None), 400, "idempotency_key_required")
    # The one Idempotency-Key rule (core/validate.py): 1 to 200 printable ASCII characters.
    await assert_error(await tip(buyer, call_id, 5, "x" * 201), 400, "invalid_idempotency_key")
    await assert_error(await tip(buyer, call_id, 5, "tab\there"), 400,
                       "invalid_idempotency_key")
    await assert_error(await tip(buyer, call_id, "5.5"), 422, "whole_tokens_only")
    await assert_error(await tip(buyer, call_id, 0), 422, "invalid_value")
    await assert_error(await tip(buyer, call_id, 10 ** 9), 422, "tip_too_large")
    await assert_error(await tip(buyer, call_id, 1000), 402, "insufficient_funds")
    await assert_error(await tip(stranger, call_id, 5), 404, "call_not_found")
    await assert_error(await tip(buyer, "999999", 5), 404, "call_not_found")
    await assert_error(await tip(seller, call_id, 5), 403, "wrong_role")
    assert (await balance(buyer)) == {"available": "40", "held": "60", "pending": "0"}
    await buyer.post(f"/api/calls/{call_id}/end")
    assert (await balance(seller))["available"] == "0"
    await audit_ok(app_client)


async def test_tips_only_for_calls_that_took_place_and_within_the_window(app_client):
    seller = await seller_online(app_client, 60)
    buyer = await actor(app_client)
    await fund(app_client, buyer.id, 300)
    resp = await buyer.post("/api/calls", {"seller_id": seller.id, "rate": 60})
    ringing = (await resp.json())["call"]["id"]
    await assert_error(await tip(buyer, ringing, 5), 409, "call_not_started")
    await seller.post(f"/api/calls/{ringing}/decline")
    await assert_error(await tip(buyer, ringing, 5, "k2"), 409, "call_not_taken_place")
    # Accepted but not live yet, then ended without going live: no tip either way.
    never = await accepted_call(app_client, seller, buyer)
    await assert_error(await tip(buyer, never, 5, "k3"), 409, "call_not_live")
    await buyer.post(f"/api/calls/{never}/end")
    await assert_error(await tip(buyer, never, 5, "k4"), 409, "call_not_taken_place")

    call_id = await tipped_call(app_client, seller, buyer)
    await buyer.post(f"/api/calls/{call_id}/end")
    resp = await tip(buyer, call_id, 5, "after")  # after the call: fine
    assert resp.status == 201, await resp.text()
    # 24 hours and a second later it is too late.
    await app_client.app[DB].tx(lambda c: c.execute(
        "UPDATE calls SET ended_at_ms = ended_at_ms - 86401000 WHERE id = ?", (int(call_id),)))
    await assert_error(await tip(buyer, call_id, 5, "late"), 409, "tip_window_closed")
    assert (await balance(buyer))["available"] == "295"
    await audit_ok(app_client)


async def test_tip_commission_can_be_set_apart_from_minutes(aiohttp_client, tmp_path):
    client = await aiohttp_client(create_app(fast_calls_config(
        tmp_path, economy={"tip_commission_percent": 10})))
    seller = await seller_online(client, 60)
    buyer = await actor(client)
    await fund(client, buyer.id, 200)
    call_id = await tipped_call(client, seller, buyer)
    body = await (await tip(buyer, call_id, 50)).json()
    assert (body["tip"]["seller_receives"], body["tip"]["commission"]) == ("45", "5")
    await buyer.post(f"/api/calls/{call_id}/end")
    await audit_ok(client)


async def test_limits_lower_at_once_raise_after_a_day_and_stop_calls(app_client):
    seller = await seller_online(app_client, 60)
    buyer = await actor(app_client)
    await fund(app_client, buyer.id, 1000)
    limits = (await (await buyer.get("/api/me/limits")).json())["limits"]
    assert limits["daily"] is None and limits["left_today"] is None

    resp = await buyer.put("/api/me/limits", {"daily": "100", "monthly": 5000})
    limits = (await resp.json())["limits"]
    assert (limits["daily"], limits["monthly"], limits["daily_pending"]) == ("100", "5000", None)

    # A call's effective cap is what is left today, and tips count against it too: what
    # the call may still take (up to its cap) is not left for a tip.
    call = await live_call(app_client, buyer, seller, 60)
    got = (await (await buyer.get(f"/api/calls/{call.call_id}")).json())["call"]
    assert got["spend_cap"] == "100"
    await assert_error(await tip(buyer, call.call_id, 1), 403, "daily_limit_reached")
    await call.end()
    # A call with a spending cap of its own below the limit leaves the rest to tip.
    call = await live_call(app_client, buyer, seller, 60, spend_cap="30")
    await assert_error(await tip(buyer, call.call_id, 71, "k2"), 403, "daily_limit_reached")
    assert (await tip(buyer, call.call_id, 70, "k3")).status == 201
    await call.end()
    await assert_error(await tip(buyer, call.call_id, 31, "k4"), 403, "daily_limit_reached")
    assert (await tip(buyer, call.call_id, 30, "k5")).status == 201

    # At the daily limit: no call.
    await assert_error(await buyer.post("/api/calls", {"seller_id": seller.id, "rate": 60}),
                       403, "daily_limit_reached")
    # Raising waits a day; the old limit still holds.
    limits = (await (await buyer.put("/api/me/limits", {"daily": "500"})).json())["limits"]
    assert limits["daily"] == "100" and limits["daily_pending"]["limit"] == "500"
    assert limits["left_today"] == "0" and limits["spent_today"] == "100"
    await assert_error(await buyer.post("/api/calls", {"seller_id": seller.id, "rate": 60}),
                       403, "daily_limit_reached")
    # Lowering the monthly limit below what was spent: refused by the monthly one.
    limits = (await (await buyer.put("/api/me/limits", {"daily": None, "monthly": "90"}))
              .json())["limits"]
    assert limits["monthly"] == "90" and limits["daily"] == "100"
    assert limits["daily_pending"]["limit"] is None  # removal waits like a raise
    for bad in ({"daily": "-1"}, {"daily": "1.00001"}, {"monthly": True}, {}):
        await assert_error(await buyer.put("/api/me/limits", bad), 422)
    await assert_error(await seller.put("/api/me/limits", {"daily": "5"}), 403, "wrong_role")
    assert (await balance(buyer))["available"] == "900"
    await audit_ok(app_client)


async def test_monthly_limit_refuses_with_its_own_code(app_client):
    seller = await seller_online(app_client, 60)
    buyer = await actor(app_client)
    await fund(app_client, buyer.id, 1000)
    # Less than one 6-second segment (6 tokens at 60/min) left this month: no call.
    await buyer.put("/api/me/limits", {"monthly": "5.9999"})
    await assert_error(await buyer.post("/api/calls", {"seller_id": seller.id, "rate": 60}),
                       403, "monthly_limit_reached")
    await buyer.put("/api/me/limits", {"monthly": "0"})
    await assert_error(await buyer.post("/api/calls", {"seller_id": seller.id, "rate": 60}),
                       403, "monthly_limit_reached")


async def test_self_excluded_buyer_is_refused_calls_tips_and_top_ups(app_client):
    seller = await seller_online(app_client, 60)
    buyer = await actor(app_client)
    await fund(app_client, buyer.id, 500)
    done = await tipped_call(app_client, seller, buyer)
    await buyer.post(f"/api/calls/{done}/end")
    live = await accepted_call(app_client, seller, buyer)

    resp = await buyer.post("/api/me/self-exclusion", {"days": 7})
    assert resp.status == 200, await resp.text()
    until = (await resp.json())["limits"]["self_excluded_until"]
    assert until.endswith("Z")
    # The call under way is ended at once, its hold given back.
    call = (await (await buyer.get(f"/api/calls/{live}")).json())["call"]
    assert (call["state"], call["end_reason"]) == ("ended", "self_excluded")
    await assert_error(await buyer.post("/api/calls", {"seller_id": seller.id, "rate": 60}),
                       403, "self_excluded")
    await assert_error(await tip(buyer, done, 5), 403, "self_excluded")
    await assert_error(await buyer.post("/api/deposits/intents", {"usdt": "10"}), 403,
                       "self_excluded")
    # It can be extended, never shortened.
    resp = await buyer.post("/api/me/self-exclusion", {"days": 1})
    assert (await resp.json())["limits"]["self_excluded_until"] == until
    await assert_error(await buyer.post("/api/me/self-exclusion", {"days": 0}), 422)
    await assert_error(await buyer.post("/api/me/self-exclusion", {"days": 99999}), 422)
    assert (await balance(buyer)) == {"available": "500", "held": "0", "pending": "0"}
    await audit_ok(app_client)


async def test_spending_history_per_day_and_per_seller(app_client):
    s1 = await seller_online(app_client, 60, )
    s2 = await seller_online(app_client, 60)
    buyer = await actor(app_client)
    await fund(app_client, buyer.id, 1000)
    for seller, amounts in ((s1, (10, 20)), (s2, (5,))):
        call_id = await tipped_call(app_client, seller, buyer)
        for i, amount in enumerate(amounts):
            assert (await tip(buyer, call_id, amount, f"{seller.id}-{i}")).status == 201
        await buyer.post(f"/api/calls/{call_id}/end")
    spending = (await (await buyer.get("/api/me/spending?days=7")).json())["spending"]
    assert spending["total"] == "35" and spending["days"] == 7
    assert len(spending["per_day"]) == 1 and spending["per_day"][0]["spent"] == "35"
    assert [(s["seller_id"], s["display_name"], s["spent"], s["tips"], s["calls"])
            for s in spending["per_seller"]] == [
        (s1.id, s1.user["display_name"], "30", "30", "0"),
        (s2.id, s2.user["display_name"], "5", "5", "0")]
    assert spending["limits"]["spent_today"] == "35"
    for bad in ("0", "367", "x"):
        await assert_error(await buyer.get(f"/api/me/spending?days={bad}"), 422)


async def test_supporters_board_is_opt_in_and_shows_display_names_only(app_client):
    seller = await seller_online(app_client, 60)
    fan = await actor(app_client, display_name="Big Fan")
    shy = await actor(app_client, display_name="Shy One")
    for i, (buyer, amount) in enumerate(((fan, 10), (shy, 30))):
        await fund(app_client, buyer.id, 200)
        call_id = await tipped_call(app_client, seller, buyer)
        await tip(buyer, call_id, amount, f"k{i}")
        await buyer.post(f"/api/calls/{call_id}/end")
    board = await (await app_client.get(f"/api/sellers/{seller.id}/supporters")).json()
    assert board == {"supporters": []}
    resp = await fan.put("/api/me/privacy", {"show_on_leaderboard": True})
    assert (await resp.json()) == {"privacy": {"show_on_leaderboard": True}}
    board = await (await app_client.get(f"/api/sellers/{seller.id}/supporters")).json()
    assert board == {"supporters": [{"rank": 1, "display_name": "Big Fan"}]}
    await shy.put("/api/me/privacy", {"show_on_leaderboard": True})
    board = await (await app_client.get(f"/api/sellers/{seller.id}/supporters")).json()
    assert [s["display_name"] for s in board["supporters"]] == ["Shy One", "Big Fan"]
    await assert_error(await fan.put("/api/me/privacy", {"show_on_leaderboard": "yes"}), 422)
    await assert_error(await app_client.get("/api/sellers/999999/supporters"), 404)
    await assert_error(await app_client.get(f"/api/sellers/{fan.id}/supporters"), 404)


async def test_seller_stats_and_chart_show_tips(app_client):
    seller = await seller_online(app_client, 60)
    buyer = await actor(app_client, display_name="Tipper")
    await fund(app_client, buyer.id, 200)
    call_id = await tipped_call(app_client, seller, buyer)
    await tip(buyer, call_id, 40)
    await buyer.post(f"/api/calls/{call_id}/end")
    stats = (await (await seller.get("/api/seller/stats")).json())["stats"]
    assert (stats["earned_total"], stats["tips_total"]) == ("30", "30")
    assert stats["per_day"][-1]["earned"] == "30" and stats["per_month"][-1]["earned"] == "30"
    assert stats["per_week"][-1]["earned"] == "30"
    # Tipper did not opt in to supporter boards: counted, never named, in the seller's stats.
    assert stats["top_supporters"] == [] and stats["supporters_not_shown"] == 1
    assert (stats["calls"], stats["minutes_billed"]) == (1, "0.0")  # live a moment, unbilled
    assert len(stats["busiest_hours"]) == 24
    resp = await seller.get("/api/seller/stats/chart.svg")
    assert resp.status == 200 and resp.content_type == "image/svg+xml"
    assert (await resp.text()).startswith("<svg")
    await assert_error(await buyer.get("/api/seller/stats"), 403, "wrong_role")
    await assert_error(await buyer.get("/api/seller/stats/chart.svg"), 403)


async def test_seller_stats_name_only_buyers_who_opted_in_and_never_their_amounts(app_client):
    """The buyer is told: off by default; when on, the display name (never the amounts) can
    appear among a seller's top supporters. The seller's own stats follow the same rule as the
    public board."""
    seller = await seller_online(app_client, 60)
    fan = await actor(app_client, display_name="Open Fan")
    shy = await actor(app_client, display_name="Private Pat")
    for i, (buyer, amount) in enumerate(((fan, 10), (shy, 30))):
        await fund(app_client, buyer.id, 200)
        call_id = await tipped_call(app_client, seller, buyer)
        await tip(buyer, call_id, amount, f"p{i}")
        await buyer.post(f"/api/calls/{call_id}/end")
    await fan.put("/api/me/privacy", {"show_on_leaderboard": True})

    resp = await seller.get("/api/seller/stats")
    raw = await resp.text()
    stats = (await resp.json())["stats"]
    assert stats["top_supporters"] == [{"rank": 1, "display_name": "Open Fan"}]
    assert stats["supporters_not_shown"] == 1
    # Nowhere in the answer: the private buyer's name or id, or what anyone paid.
    assert "Private Pat" not in raw
    assert "buyer_id" not in raw and '"spent"' not in raw
    assert all(set(s) == {"rank", "display_name"} for s in stats["top_supporters"])
    board = (await (await app_client.get(f"/api/sellers/{seller.id}/supporters")).json())
    assert board["supporters"] == stats["top_supporters"]

    # Turned off again: gone from both at once.
    await fan.put("/api/me/privacy", {"show_on_leaderboard": False})
    stats = (await (await seller.get("/api/seller/stats")).json())["stats"]
    assert stats["top_supporters"] == [] and stats["supporters_not_shown"] == 2
    board = (await (await app_client.get(f"/api/sellers/{seller.id}/supporters")).json())
    assert board["supporters"] == []


async def admin_actor(client) -> Actor:
    pw = client.app[PASSWORDS]
    await client.app[DB].tx(accounts.insert_user_tx, "ops@example.com",
                            pw.hash("correct horse battery"), "admin", "ops")
    session = await login(client, "ops@example.com")
    return Actor(client, session["user"], session["token"])


async def test_operator_starts_promotions_and_sees_them(app_client):
    admin = await admin_actor(app_client)
    buyer = await actor(app_client)
    good = {"name": "Spring", "percent": "5", "starts_at": "2025-03-01T00:00:00Z",
            "ends_at": "2099-03-08T00:00:00Z"}
    resp = await admin.post("/api/admin/promotions", good)
    assert resp.status == 201, await resp.text()
    promo = (await resp.json())["promotion"]
    assert (promo["name"], promo["percent"], promo["active"], promo["cost"]) == (
        "Spring", "5", True, "0")
    listed = await (await admin.get("/api/admin/promotions")).json()
    assert [p["id"] for p in listed["promotions"]] == [promo["id"]]
    assert listed["cost"]["total"] == "0" and listed["tiers"] == []
    for change in ({"percent": "0"}, {"percent": "101"}, {"percent": "x"},
                   {"ends_at": "2025-02-01T00:00:00Z"}, {"starts_at": "soon"}, {"name": " "},
                   {"from_usdt": "-1"}):
        await assert_error(await admin.post("/api/admin/promotions", {**good, **change}), 422)
    await assert_error(await buyer.post("/api/admin/promotions", good), 403)
    await assert_error(await buyer.get("/api/admin/promotions"), 403)
    log = await app_client.app[DB].fetchall("SELECT action FROM audit_log")
    assert [r[0] for r in log] == ["promotion.create"]


async def test_operator_ends_a_promotion_early_and_later_top_ups_get_no_bonus(app_client):
    from tests.conftest import fund_tokens

    admin = await admin_actor(app_client)
    buyer = await actor(app_client)
    running = {"name": "Week", "percent": "10", "starts_at": "2025-03-01T00:00:00Z",
               "ends_at": "2099-03-08T00:00:00Z"}
    future = {**running, "name": "Later", "starts_at": "2098-01-01T00:00:00Z"}
    promo = (await (await admin.post("/api/admin/promotions", running)).json())["promotion"]
    later = (await (await admin.post("/api/admin/promotions", future)).json())["promotion"]
    db = app_client.app[DB]
    buyer_id = int(buyer.id)
    await fund_tokens(app_client.app, buyer_id, "100")
    assert await db.tx(bonuses.grant_deposit_bonus_tx, buyer_id, 1_000_000, "test:1",
                       now_ms()) == 100_000  # 10% of 1 USDT while it runs

    resp = await admin.post(f"/api/admin/promotions/{promo['id']}/end", {})
    assert resp.status == 200, await resp.text()
    ended = (await resp.json())["promotion"]
    assert not ended["active"] and ended["starts_at"] == promo["starts_at"]
    assert ended["ends_at"] < promo["ends_at"]
    withdrawn = (await (await admin.post(f"/api/admin/promotions/{later['id']}/end", {})
                        ).json())["promotion"]
    assert not withdrawn["active"] and withdrawn["ends_at"] < later["starts_at"]
    assert await db.tx(bonuses.grant_deposit_bonus_tx, buyer_id, 1_000_000, "test:2",
                       now_ms()) == 0
    await assert_error(await admin.post(f"/api/admin/promotions/{promo['id']}/end", {}),
                       409, "promotion_over")
    await assert_error(await admin.post("/api/admin/promotions/999/end", {}), 404,
                       "promotion_not_found")
    await assert_error(await buyer.post(f"/api/admin/promotions/{promo['id']}/end", {}), 403)
    log = await db.fetchall("SELECT action, detail FROM audit_log WHERE action = 'promotion.end'")
    assert len(log) == 2 and "2099-03-08" in log[0][1]


async def test_consents_are_stored_at_sign_up(app_client):
    buyer = await actor(app_client)
    consent = await app_client.app[DB].read(consents.consent_of, int(buyer.id))
    assert consent["adult_confirmed_at"].endswith("Z") and consent["terms_confirmed_at"]


async def test_a_tip_during_an_earnings_hold_waits_in_pending_like_minutes(aiohttp_client,
                                                                           tmp_path):
    client = await aiohttp_client(create_app(fast_calls_config(
        tmp_path, operator={"earnings_hold_hours": 1})))
    seller = await seller_online(client, 60)
    buyer = await actor(client)
    await fund(client, buyer.id, 200)
    call_id = await tipped_call(client, seller, buyer)
    assert (await tip(buyer, call_id, 50)).status == 201
    assert (await balance(seller)) == {"available": "0", "held": "0", "pending": "37.5"}
    stats = (await (await seller.get("/api/seller/stats")).json())["stats"]
    assert stats["earned_total"] == "37.5"
    await buyer.post(f"/api/calls/{call_id}/end")
    await audit_ok(client)
