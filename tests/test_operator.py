"""The operator's side over real HTTP, WebSockets and SQLite: disputes and their refunds, held
earnings, bans, the reports queue, the audit log, health and the call metrics."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from meterchat.app import create_app
from meterchat.appkeys import DB
from meterchat.chain_ctx import DEVNET
from meterchat.core.db import now_ms
from meterchat.events import outbox
from meterchat.money import billing, ledger
from meterchat.operator import earnings
from tests.calls_helpers import clocked_app, start_live_call, ws_client
from tests.conftest import (
    actor,
    admin_actor,
    assert_error,
    audit_ok,
    eventually,
    fast_calls_config,
    fund,
    seller_online,
)

DEST = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
# Sellers here have no socket open most of the time: keep presence from taking them offline.
CALM = {"presence_grace_s": 60}
ASLEEP = {"sender_interval_s": 3600}


def config_for(tmp_path, **sections):
    sections.setdefault("server", {}).update(CALM)
    sections.setdefault("withdrawals", {}).update(ASLEEP)
    return fast_calls_config(tmp_path, **sections)


@pytest.fixture
async def app_client(aiohttp_client, tmp_path):
    return await aiohttp_client(create_app(config_for(tmp_path)))


@pytest.fixture
async def clocked(aiohttp_client, tmp_path):
    """The app with live time on a controlled clock (tests/calls_helpers.py)."""
    return await clocked_app(aiohttp_client, config_for(tmp_path))


async def balances(client, user_id) -> dict[str, int]:
    return await client.app[DB].read(ledger.user_balances, int(user_id))


async def account(client, name: str) -> int:
    return await client.app[DB].read(ledger.balance, name)


async def billed_call(client, tenths: int = 10, rate: int = 600, funds: int = 1000,
                      seller=None):
    """An ended call with `tenths` segments billed, without waiting for them: the billing
    pass is run with those segments due, then the buyer hangs up. At rate 600 and 25 %
    commission a full minute charges 600 tokens: 450 to the seller, 150 to the platform."""
    seller = seller or await seller_online(client, rate)
    buyer = await actor(client)
    await fund(client, buyer.id, funds)
    resp = await buyer.post("/api/calls", {"seller_id": seller.id, "rate": rate})
    assert resp.status == 201, await resp.text()
    call_id = (await resp.json())["call"]["id"]
    assert (await seller.post(f"/api/calls/{call_id}/accept")).status == 200
    await client.app[DB].tx(billing.run_pass, [(int(call_id), tenths)], now_ms())
    resp = await buyer.post(f"/api/calls/{call_id}/end")
    call = (await resp.json())["call"]
    assert call["state"] == "ended" and call["billed_tenths"] == tenths, call
    return buyer, seller, call_id


def samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


# ---- disputes -----------------------------------------------------------------------

async def test_disputed_live_call_refunded_by_operator_leaves_every_balance_right(clocked):
    """The bar: a real live call (with /metrics during it), disputed by its buyer, refunded
    in part by the operator from the seller and the commission in proportion."""
    app_client = clocked.client
    admin = await admin_actor(app_client)
    call = await start_live_call(app_client, 600, funds=1000)
    try:
        # While the call is live: /metrics shows it, and it cannot be disputed yet.
        m = samples(await (await app_client.get("/metrics")).text())
        assert m[("meterchat_live_calls", ())] == 1
        assert m[("meterchat_calls", (("state", "live"),))] == 1
        assert m[("meterchat_ws_connections", ())] == 2
        await assert_error(await call.buyer.post(f"/api/calls/{call.call_id}/dispute",
                                                 {"reason": "too early"}), 409, "call_not_ended")
        await call.run(6)
        meter = await call.bc.next("meter", call.call_id)
        assert meter["billed_tenths"] == 1
        m = samples(await (await app_client.get("/metrics")).text())
        assert m[("meterchat_segments_billed_total", ())] >= 1
        assert m[("meterchat_billing_pass_seconds_count", ())] >= 1
        assert ("meterchat_billing_tick_lag_seconds", ()) in m
        ended = await call.end()
    finally:
        await call.close()
    assert (ended["live_seconds"], ended["billed_tenths"]) == (6, 1)
    charged = billing.segment_price_musdt(600) * ended["billed_tenths"]
    assert ended["charged"] == str(charged // 10_000)
    buyer, seller = call.buyer, call.seller
    before = {u: await balances(app_client, u.id) for u in (buyer, seller)}
    commission_before = await account(app_client, ledger.REVENUE_COMMISSION)

    path = f"/api/calls/{call.call_id}/dispute"
    await assert_error(await buyer.post(path, {}), 422)
    await assert_error(await seller.post(path, {"reason": "x"}), 403, "wrong_role")
    await assert_error(await (await actor(app_client)).post(path, {"reason": "x"}), 404,
                       "call_not_found")
    resp = await buyer.post(path, {"reason": "the video froze after a few seconds"})
    assert resp.status == 201, await resp.text()
    dispute = (await resp.json())["dispute"]
    assert dispute["status"] == "open" and dispute["call_id"] == call.call_id
    await assert_error(await buyer.post(path, {"reason": "again"}), 409, "dispute_open")

    await assert_error(await buyer.get("/api/admin/disputes"), 403, "wrong_role")
    listed = (await (await admin.get("/api/admin/disputes?status=open")).json())["disputes"]
    assert [d["id"] for d in listed] == [dispute["id"]]
    record = await (await admin.get(f"/api/admin/disputes/{dispute['id']}")).json()
    rec = record["record"]
    assert [e["state"] for e in rec["events"]][:3] == ["ringing", "connecting", "live"]
    assert rec["events"][-1] == {**rec["events"][-1], "state": "ended",
                                 "detail": "buyer_hangup"}
    assert [s["tenth"] for s in rec["segments"]] == list(range(1, ended["billed_tenths"] + 1))
    parties = {m["party"]: m for m in rec["media"]}
    assert set(parties) == {"buyer", "seller"}
    assert all(p["reports"] > 3 and p["good_reports"] > 3 and p["frames_decoded"] > 0
               for p in parties.values())
    assert {t["kind"] for t in rec["ledger"]} >= {"call_hold", "call_settle"}

    resolve = f"/api/admin/disputes/{dispute['id']}/resolve"
    await assert_error(await admin.post(resolve, {"refund_tokens": "1000"}), 422,
                       "refund_too_large")
    await assert_error(await admin.post(resolve, {"refund_tokens": "-1"}), 422)
    resp = await admin.post(resolve, {"refund_tokens": "30", "note": "half: media froze"})
    assert resp.status == 200, await resp.text()
    done = (await resp.json())["dispute"]
    # 30 tokens back, split as the charge was: 75 % from the seller, 25 % from commission.
    assert (done["status"], done["refund"], done["from_seller"], done["from_commission"],
            done["platform_covered"]) == ("resolved", "30", "22.5", "7.5", "0")
    after = {u: await balances(app_client, u.id) for u in (buyer, seller)}
    assert after[buyer]["available"] == before[buyer]["available"] + 300_000
    assert after[seller]["available"] == before[seller]["available"] - 225_000
    assert await account(app_client, ledger.REVENUE_COMMISSION) == commission_before - 75_000
    # Replaying the resolution moves nothing; another amount is refused.
    resp = await admin.post(resolve, {"refund_tokens": "30", "note": "half: media froze"})
    assert resp.status == 200 and resp.headers["Idempotent-Replayed"] == "true"
    await assert_error(await admin.post(resolve, {"refund_tokens": "10"}), 409,
                       "dispute_resolved")
    assert {u: await balances(app_client, u.id) for u in (buyer, seller)} == after
    shown = (await (await buyer.get(f"/api/calls/{call.call_id}")).json())["call"]
    assert shown["refunded"] == "30"
    report = await audit_ok(app_client)
    assert report["users_total_musdt"] == (report["deposits_in_musdt"]
                                           - report["withdrawals_out_musdt"]
                                           - report["revenue_musdt"]
                                           - report["clearing_musdt"])
    log = (await (await admin.get("/api/admin/audit-log")).json())["entries"]
    assert log[0]["action"] == "dispute.resolve" and log[0]["actor_id"] == admin.id
    assert log[0]["reason"] == "half: media froze" and log[0]["at"]
    # A second dispute may follow, for at most what is left of the charge.
    resp = await buyer.post(path, {"reason": "the rest too"})
    assert resp.status == 201
    second = (await resp.json())["dispute"]["id"]
    left = str(charged // 10_000 - 30)
    await assert_error(await admin.post(f"/api/admin/disputes/{second}/resolve",
                                        {"refund_tokens": str(int(left) + 1)}), 422,
                       "refund_too_large")
    resp = await admin.post(f"/api/admin/disputes/{second}/resolve", {"refund_tokens": left})
    assert resp.status == 200
    await assert_error(await buyer.post(path, {"reason": "more"}), 409, "nothing_to_dispute")
    await audit_ok(app_client)


async def test_refund_past_what_the_seller_still_holds_is_covered_by_the_platform(app_client):
    admin = await admin_actor(app_client)
    buyer, seller, call_id = await billed_call(app_client)
    assert await balances(app_client, seller.id) == {"available": 4_500_000, "held": 0,
                                                      "pending": 0}
    # The seller withdraws 400 of the 450 tokens earned.
    resp = await seller.post("/api/withdrawals", {"tokens": "400", "address": DEST},
                             headers={"Idempotency-Key": uuid.uuid4().hex})
    assert resp.status == 201, await resp.text()
    resp = await buyer.post(f"/api/calls/{call_id}/dispute", {"reason": "not as described"})
    dispute_id = (await resp.json())["dispute"]["id"]
    [opened] = [e for e in await app_client.app[DB].read(outbox.newest)
                if e.type == "dispute.opened"]
    assert opened.data == {"dispute_id": dispute_id, "call_id": str(call_id),
                           "buyer_id": buyer.id, "seller_id": seller.id,
                           "reason": "not as described", "charged_tokens": "600"}
    resolve = f"/api/admin/disputes/{dispute_id}/resolve"
    before = await app_client.app[DB].read(ledger.audit)
    # All 600 back would need 450 from the seller (who holds 50): the 400 short plus the
    # 150 commission is more than revenue:commission holds (150), so nothing moves.
    await assert_error(await admin.post(resolve, {"refund_tokens": "600"}), 409,
                       "platform_cannot_cover")
    assert (await app_client.app[DB].read(ledger.audit)).transactions == before.transactions
    resp = await admin.post(resolve, {"refund_tokens": "100"})
    assert resp.status == 200, await resp.text()
    done = (await resp.json())["dispute"]
    # 75 from the seller's side: the 50 they hold, 25 covered by the platform.
    assert (done["from_seller"], done["from_commission"], done["platform_covered"]) == (
        "75", "25", "25")
    assert (await balances(app_client, seller.id))["available"] == 0
    assert (await balances(app_client, buyer.id))["available"] == 5_000_000
    assert await account(app_client, ledger.REVENUE_COMMISSION) == 1_500_000 - 500_000
    await audit_ok(app_client)


async def test_disputes_close_after_the_window(aiohttp_client, tmp_path):
    client = await aiohttp_client(create_app(config_for(
        tmp_path, operator={"dispute_window_days": 0})))
    buyer, _, call_id = await billed_call(client)
    await asyncio.sleep(0.01)
    await assert_error(await buyer.post(f"/api/calls/{call_id}/dispute", {"reason": "late"}),
                       409, "dispute_window_closed")


# ---- held earnings -----------------------------------------------------------------

async def test_held_earnings_land_in_pending_and_are_released_after_the_hold(
        aiohttp_client, tmp_path):
    client = await aiohttp_client(create_app(config_for(
        tmp_path, operator={"earnings_hold_hours": 1, "release_interval_s": 0.1})))
    admin = await admin_actor(client)
    buyer, seller, call_id = await billed_call(client)
    assert await balances(client, seller.id) == {"available": 0, "held": 0,
                                                 "pending": 4_500_000}
    # Pending earnings cannot be withdrawn.
    resp = await seller.post("/api/withdrawals", {"tokens": "400", "address": DEST},
                             headers={"Idempotency-Key": uuid.uuid4().hex})
    await assert_error(resp, 402, "insufficient_funds")
    # A refund takes the seller's part from pending first.
    resp = await buyer.post(f"/api/calls/{call_id}/dispute", {"reason": "no video"})
    did = (await resp.json())["dispute"]["id"]
    resp = await admin.post(f"/api/admin/disputes/{did}/resolve", {"refund_tokens": "60"})
    assert resp.status == 200
    assert await balances(client, seller.id) == {"available": 0, "held": 0,
                                                 "pending": 4_050_000}
    db = client.app[DB]
    hold_ms = earnings.HOUR_MS
    assert await db.tx(earnings.release_due_tx, hold_ms, now_ms()) == []
    released = await db.tx(earnings.release_due_tx, hold_ms, now_ms() + hold_ms + 1)
    assert released == [earnings.Released(int(seller.id), 4_050_000)]
    assert await balances(client, seller.id) == {"available": 4_050_000, "held": 0,
                                                 "pending": 0}
    assert await db.tx(earnings.release_due_tx, hold_ms, now_ms() + hold_ms + 1) == []
    await audit_ok(client)


async def test_release_job_moves_pending_earnings_once_the_hold_is_over(
        aiohttp_client, tmp_path):
    # 0.0003 h is about 1 s.
    client = await aiohttp_client(create_app(config_for(
        tmp_path, operator={"earnings_hold_hours": 0.0003, "release_interval_s": 0.1})))
    _, seller, _ = await billed_call(client, tenths=5)
    assert (await balances(client, seller.id))["pending"] == 2_250_000

    async def released():
        b = await balances(client, seller.id)
        return b["pending"] == 0 and b["available"] == 2_250_000

    await eventually(released, timeout_s=10)
    await audit_ok(client)


def test_due_is_pending_minus_young_credits():
    assert earnings.due_musdt(100, 30) == 70
    assert earnings.due_musdt(100, 150) == 0  # a refund took from pending meanwhile
    assert earnings.due_musdt(0, 0) == 0


# ---- moderation --------------------------------------------------------------------

async def test_banned_buyers_live_call_ends_and_their_token_stops_working(clocked):
    app_client = clocked.client
    admin = await admin_actor(app_client)
    call = await start_live_call(app_client, 600, funds=1000)
    try:
        await call.run(3.5)
        buyer = call.buyer
        await assert_error(await buyer.post(f"/api/admin/users/{buyer.id}/ban",
                                            {"reason": "x"}), 403, "wrong_role")
        await assert_error(await admin.post(f"/api/admin/users/{buyer.id}/ban", {}), 422)
        resp = await admin.post(f"/api/admin/users/{buyer.id}/ban",
                                {"reason": "abusive in calls"})
        assert resp.status == 200, await resp.text()
        user = (await resp.json())["user"]
        assert user["banned"] and user["withdrawals_blocked"]
        ended = (await call.sc.next("call.ended", call.call_id, within=5))["call"]
        assert ended["end_reason"] == "banned"
        await assert_error(await buyer.get("/api/me"), 401)
        await assert_error(await buyer.post("/api/calls", {"seller_id": call.seller.id,
                                                           "rate": 600}), 401)
        await eventually(_closed(call.bc), timeout_s=5)
    finally:
        await call.close()
    # Billed up to the moment of the ban: 3.5 s, the last partial segment rounded to nearest.
    live_ms = (await app_client.app[DB].fetchone(
        "SELECT live_ms FROM calls WHERE id = ?", (int(call.call_id),)))[0]
    assert live_ms == 3_500
    assert ended["billed_tenths"] == billing.nearest_tenths(live_ms) == 1
    assert ended["charged"] == str(60 * ended["billed_tenths"])
    await audit_ok(app_client)
    log = (await (await admin.get(f"/api/admin/audit-log?target=user:{buyer.id}")).json())
    assert [(e["action"], e["reason"], e["actor_id"]) for e in log["entries"]] == [
        ("user.ban", "abusive in calls", admin.id)]
    # Unbanned, the user logs in again (old tokens stay revoked).
    resp = await admin.post(f"/api/admin/users/{buyer.id}/unban", {"reason": "appeal"})
    assert (await resp.json())["user"]["banned"] is False
    await assert_error(await buyer.get("/api/me"), 401)
    resp = await app_client.post("/api/auth/login", json={
        "email": buyer.user["email"], "password": "correct horse battery"})
    assert resp.status == 200


def _closed(client):
    async def check() -> bool:
        return client.ws.closed

    return check


async def test_ban_blocks_withdrawals_until_unban_and_closes_reports(app_client):
    admin = await admin_actor(app_client)
    buyer, seller, _ = await billed_call(app_client)
    other = await actor(app_client)
    for who, why in ((buyer, "rude"), (other, "spam")):
        assert (await who.post(f"/api/users/{seller.id}/report", {"reason": why})).status == 204
    assert (await buyer.post(f"/api/users/{other.id}/report", {"reason": "odd"})).status == 204
    resp = await seller.post("/api/withdrawals", {"tokens": "400", "address": DEST},
                             headers={"Idempotency-Key": uuid.uuid4().hex})
    wid = (await resp.json())["withdrawal"]["id"]
    queue = (await (await admin.get("/api/admin/reports?status=open")).json())["reports"]
    assert sorted(r["reason"] for r in queue) == ["odd", "rude", "spam"]
    assert {r["reports_about_user"] for r in queue if r["reported_id"] == seller.id} == {2}

    await assert_error(await admin.post(f"/api/admin/users/{admin.id}/ban",
                                        {"reason": "self"}), 409, "cannot_ban_admin")
    await assert_error(await admin.post("/api/admin/users/999999/ban", {"reason": "x"}), 404)
    resp = await admin.post(f"/api/admin/users/{seller.id}/ban", {"reason": "fraud"})
    assert resp.status == 200
    listing = await (await app_client.get("/api/sellers?online=true")).json()
    assert seller.id not in [s["id"] for s in listing["sellers"]]
    w = next(x for x in (await (await admin.get("/api/admin/withdrawals")).json())[
        "withdrawals"] if x["id"] == wid)
    assert (w["status"], w["review_reason"]) == ("review", "account_banned")
    held = [e for e in await app_client.app[DB].read(outbox.newest)
            if e.type == "withdrawal.review"]
    assert [(e.data["withdrawal_id"], e.data["reason"]) for e in held] == [
        (wid, "account_banned")]
    await assert_error(await admin.post(f"/api/admin/withdrawals/{wid}/approve"), 409,
                       "withdrawals_blocked")
    queue = (await (await admin.get("/api/admin/reports?status=open")).json())["reports"]
    assert [r["reason"] for r in queue] == ["odd"]
    closed = (await (await admin.get("/api/admin/reports?status=closed")).json())["reports"]
    assert {r["outcome"] for r in closed} == {"banned"}
    resp = await admin.post(f"/api/admin/reports/{queue[0]['id']}/dismiss",
                            {"reason": "nothing wrong"})
    assert (await resp.json())["report"]["outcome"] == "dismissed"
    assert (await (await admin.get("/api/admin/reports?status=open")).json())["reports"] == []

    resp = await admin.post(f"/api/admin/users/{seller.id}/unban", {"reason": "reviewed"})
    assert (await resp.json())["user"]["withdrawals_blocked"] is False
    resp = await admin.post(f"/api/admin/withdrawals/{wid}/approve")
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["withdrawal"]["status"] == "queued"
    actions = [e["action"] for e in (await (await admin.get("/api/admin/audit-log")).json())[
        "entries"]]
    assert actions[:4] == ["withdrawal.approve", "user.unban", "report.dismiss", "user.ban"]
    await audit_ok(app_client)


# ---- health ------------------------------------------------------------------------

async def test_health_reports_database_and_chain(aiohttp_client, tmp_path):
    # Each request reads the node here (the shared reading is tested in test_deposits.py).
    app_client = await aiohttp_client(create_app(config_for(
        tmp_path, operator={"health_chain_cache_s": 0})))
    body = await (await app_client.get("/api/health")).json()
    assert body["ok"] is True and body["database"] == "ok"
    assert isinstance(body["chain"]["solidified_block"], int)
    await app_client.app[DEVNET].stop()
    resp = await app_client.get("/api/health")
    assert resp.status == 200
    assert await resp.json() == {"ok": True, "database": "ok", "chain": "unreachable"}
    await app_client.app[DB].close()
    resp = await app_client.get("/api/health")
    assert resp.status == 503
    assert (await resp.json())["ok"] is False


async def test_seller_socket_count_shows_in_metrics(app_client):
    seller = await seller_online(app_client)
    c = await ws_client(app_client, seller)
    try:
        m = samples(await (await app_client.get("/metrics")).text())
        assert m[("meterchat_ws_connections", ())] == 1
    finally:
        await c.close()


async def test_ids_in_other_scripts_digits_are_not_found_not_a_server_error(aiohttp_client,
                                                                              tmp_path):
    # "²" and "٣" are digits to str.isdigit() but not to int(): a 404, never a 500.
    client = await aiohttp_client(create_app(config_for(tmp_path)))
    admin = await admin_actor(client)
    for raw in ("%C2%B2", "%D9%A3"):
        await assert_error(await admin.get(f"/api/admin/users/{raw}"), 404)
        await assert_error(await admin.post(f"/api/admin/users/{raw}/unban", {}), 404)
        await assert_error(await admin.post(f"/api/admin/withdrawals/{raw}/approve"), 404)
    await assert_error(await admin.get("/api/admin/audit-log?before=%C2%B2"), 422)
