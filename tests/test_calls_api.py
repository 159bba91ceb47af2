"""Sellers, calls and the WebSocket over real HTTP: the rules of starting, accepting,
declining, cancelling and ending calls, signalling between the parties only, bad socket
messages, blocks, reports and ICE credentials."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac

import aiohttp
import pytest

from meterchat.app import create_app
from meterchat.appkeys import DB
from meterchat.calls.manager import HUB
from meterchat.core.clock import FakeClock
from meterchat.tools.peer import Client
from tests.calls_helpers import clocked_app
from tests.conftest import (
    actor,
    assert_error,
    audit_ok,
    fast_calls_config,
    fund,
    seller_online,
)


@pytest.fixture
async def app_client(aiohttp_client, tmp_path):
    return await aiohttp_client(create_app(fast_calls_config(tmp_path)))


@pytest.fixture
async def clocked(aiohttp_client, tmp_path):
    """The app on a controlled clock (tests/calls_helpers.py): timeouts to the step."""
    return await clocked_app(aiohttp_client, fast_calls_config(tmp_path))


async def ws_client(app_client, actor_) -> Client:
    c = Client(str(app_client.make_url("")))
    await c.__aenter__()
    c.token = actor_.token
    c.user = actor_.user
    await c.open_ws()
    return c


async def test_seller_profile_listing_and_filters(app_client):
    s1 = await seller_online(app_client, 600, bio="Guitar lessons", tags=["Music", "guitar"],
                             languages=["en", "de"])
    s2 = await seller_online(app_client, 50, tags=["chess"])
    s3 = await actor(app_client, "seller")
    await s3.put("/api/seller/profile", {"rate": 10})
    body = await (await app_client.get("/api/sellers?online=true")).json()
    ids = [s["id"] for s in body["sellers"]]
    assert s1.id in ids and s2.id in ids and s3.id not in ids
    mine = next(s for s in body["sellers"] if s["id"] == s1.id)
    assert mine == {"id": s1.id, "display_name": s1.user["display_name"], "rate": 600,
                    "online": True, "busy": False, "rating": None, "calls": 0,
                    "bio": "Guitar lessons", "tags": ["Music", "guitar"],
                    "languages": ["en", "de"], "photo_url": None, "photo_card_url": None,
                    "favourite": False}
    body = await (await app_client.get("/api/sellers?max_rate=100")).json()
    assert {s["id"] for s in body["sellers"]} == {s2.id, s3.id}
    body = await (await app_client.get("/api/sellers?tag=MUSIC")).json()
    assert [s["id"] for s in body["sellers"]] == [s1.id]
    body = await (await app_client.get("/api/sellers?language=de")).json()
    assert [s["id"] for s in body["sellers"]] == [s1.id]
    await assert_error(await app_client.get("/api/sellers?online=maybe"), 422)
    await assert_error(await app_client.get("/api/sellers?max_rate=x"), 422)


async def test_tags_and_languages_are_shown_as_typed_and_found_in_any_case(app_client):
    seller = await seller_online(app_client, 60, tags=["Late  Night", "late night", "Jazz"],
                                 languages=["English", "Ελληνικά"])
    mine = (await (await seller.get("/api/seller/profile")).json())["seller"]
    assert (mine["tags"], mine["languages"]) == (["Late Night", "Jazz"], ["English", "Ελληνικά"])
    for query in ("tag=late%20night", "tag=JAZZ", "language=english", "language=ΕΛΛΗΝΙΚΆ",
                  "language=ελληνικά"):
        body = await (await app_client.get(f"/api/sellers?{query}")).json()
        assert [s["id"] for s in body["sellers"]] == [seller.id], query
        assert body["sellers"][0]["tags"] == ["Late Night", "Jazz"]


async def test_the_sellers_own_profile_says_the_commission_and_what_a_minute_earns(app_client):
    from meterchat.appkeys import DB

    seller = await seller_online(app_client, 60)
    mine = (await (await seller.get("/api/seller/profile")).json())["seller"]
    # The default 25 %: 60 tokens a minute earn the seller 45.
    assert (mine["commission_percent"], mine["earns_per_minute"]) == ("25", "45")
    # A commission of the seller's own (set by the operator), and a rate whose split is
    # fractional: 7 tokens at 12.5 % earn 6.125 (the platform's part rounds down).
    await app_client.app[DB].tx(lambda c: c.execute(
        "UPDATE sellers SET commission_ppm = 125000 WHERE user_id = ?", (int(seller.id),)))
    resp = await seller.put("/api/seller/profile", {"rate": 7})
    mine = (await resp.json())["seller"]
    assert (mine["commission_percent"], mine["earns_per_minute"]) == ("12.5", "6.125")
    # The public card says neither.
    card = (await (await app_client.get(f"/api/sellers/{seller.id}")).json())["seller"]
    assert "commission_percent" not in card and "earns_per_minute" not in card
    cfg = await (await app_client.get("/api/client-config")).json()
    assert cfg["commission_percent"] == "25"


async def test_rate_must_be_within_operator_limits(app_client):
    seller = await actor(app_client, "seller")
    for rate in (0, 10_001):
        await assert_error(await seller.put("/api/seller/profile", {"rate": rate}), 422,
                           "rate_out_of_range")
    await assert_error(await seller.put("/api/seller/profile", {"rate": "5"}), 422,
                       "invalid_type")
    await assert_error(await seller.put("/api/seller/status", {"online": True}), 409,
                       "profile_missing")
    buyer = await actor(app_client)
    await assert_error(await buyer.put("/api/seller/profile", {"rate": 5}), 403, "wrong_role")


async def test_starting_a_call_checks_rate_funds_presence_blocks(app_client):
    seller = await seller_online(app_client, 600)
    buyer = await actor(app_client)
    start = {"seller_id": seller.id, "rate": 600}
    await assert_error(await buyer.post("/api/calls", {**start, "rate": 500}), 409,
                       "rate_changed")
    await assert_error(await buyer.post("/api/calls", start), 402, "insufficient_funds")
    await fund(app_client, buyer.id, 599)
    await assert_error(await buyer.post("/api/calls", start), 402, "insufficient_funds")
    await fund(app_client, buyer.id, 1)
    await assert_error(await buyer.post("/api/calls", {**start, "spend_cap": "59"}), 422,
                       "spend_cap_too_low")
    await assert_error(await buyer.post("/api/calls", {**start, "spend_cap": "1.00001"}), 422)
    await assert_error(await buyer.post("/api/calls", {**start, "seller_id": "999"}), 404,
                       "seller_not_found")
    await assert_error(await buyer.post("/api/calls", {"seller_id": seller.id}), 422,
                       "missing_field")
    await assert_error(await seller.post("/api/calls", start), 403, "wrong_role")
    # Blocked by the seller: refused, and hidden from the buyer's listing.
    assert (await seller.post(f"/api/users/{buyer.id}/block", {"reason": "rude"})).status == 204
    await assert_error(await buyer.post("/api/calls", start), 403, "blocked")
    listing = await (await buyer.get("/api/sellers")).json()
    assert seller.id not in [s["id"] for s in listing["sellers"]]
    assert (await seller.client.delete(f"/api/users/{buyer.id}/block",
                                       headers=seller.headers)).status == 204
    # Offline seller.
    await seller.put("/api/seller/status", {"online": False})
    await assert_error(await buyer.post("/api/calls", start), 409, "seller_offline")
    await seller.put("/api/seller/status", {"online": True})
    resp = await buyer.post("/api/calls", start)
    assert resp.status == 201, await resp.text()
    call = (await resp.json())["call"]
    assert call["state"] == "ringing" and call["rate"] == 600
    # The first minute is held.
    assert (await buyer.me())["balance"] == {"available": "0", "held": "600", "pending": "0"}
    # A busy seller.
    other = await actor(app_client)
    await fund(app_client, other.id, 1000)
    await assert_error(await other.post("/api/calls", start), 409, "seller_busy")
    listing = await (await app_client.get("/api/sellers")).json()
    assert next(s for s in listing["sellers"] if s["id"] == seller.id)["busy"] is True
    # Cancel: the hold comes back whole.
    resp = await buyer.post(f"/api/calls/{call['id']}/end")
    assert (await resp.json())["call"]["state"] == "cancelled"
    assert (await buyer.me())["balance"]["available"] == "600"
    await audit_ok(app_client)


async def test_decline_missed_and_strangers(clocked):
    app_client = clocked.client
    seller = await seller_online(app_client, 100)
    buyer = await actor(app_client)
    stranger = await actor(app_client)
    await fund(app_client, buyer.id, 500)
    sc = await ws_client(app_client, seller)
    try:
        call = (await (await buyer.post("/api/calls", {"seller_id": seller.id, "rate": 100}))
                .json())["call"]
        incoming = await sc.next("call.incoming")
        assert incoming["call"]["id"] == call["id"]
        # The seller's dialog can say who is calling.
        assert incoming["buyer"] == {"id": buyer.id, "display_name": buyer.user["display_name"]}
        await assert_error(await stranger.get(f"/api/calls/{call['id']}"), 404)
        await assert_error(await stranger.post(f"/api/calls/{call['id']}/accept"), 404)
        await assert_error(await buyer.post(f"/api/calls/{call['id']}/accept"), 403,
                           "not_seller")
        resp = await seller.post(f"/api/calls/{call['id']}/decline")
        assert (await resp.json())["call"]["state"] == "declined"
        await assert_error(await seller.post(f"/api/calls/{call['id']}/accept"), 409,
                           "invalid_state")
        assert (await buyer.me())["balance"]["available"] == "500"
        # Ring timeout (5 s in tests): missed, at 5 s and not before.
        call = (await (await buyer.post("/api/calls", {"seller_id": seller.id, "rate": 100}))
                .json())["call"]
        await clocked.advance(4.5)
        got = (await (await buyer.get(f"/api/calls/{call['id']}")).json())["call"]
        assert got["state"] == "ringing"
        await clocked.advance(0.5)
        ended = await sc.next("call.ended", call["id"])
        assert ended["call"]["state"] == "missed"
        assert (await buyer.me())["balance"]["available"] == "500"
    finally:
        await sc.close()
    await audit_ok(app_client)


async def test_an_accepted_call_that_never_connects_fails_at_the_connect_timeout(clocked):
    app_client = clocked.client
    seller = await seller_online(app_client, 100)
    buyer = await actor(app_client)
    await fund(app_client, buyer.id, 500)
    sc = await ws_client(app_client, seller)
    try:
        call = (await (await buyer.post("/api/calls", {"seller_id": seller.id, "rate": 100}))
                .json())["call"]
        assert (await seller.post(f"/api/calls/{call['id']}/accept")).status == 200
        # No media ever flows: connecting for connect_timeout_s (20 s in tests), then failed.
        await clocked.advance(19.5)
        got = (await (await buyer.get(f"/api/calls/{call['id']}")).json())["call"]
        assert got["state"] == "connecting"
        await clocked.advance(0.5)
        ended = (await sc.next("call.ended", call["id"]))["call"]
    finally:
        await sc.close()
    assert (ended["state"], ended["end_reason"], ended["live_seconds"]) == ("ended", "failed", 0)
    assert (ended["charged"], ended["billed_tenths"]) == ("0", 0)
    assert (await buyer.me())["balance"] == {"available": "500", "held": "0", "pending": "0"}
    await audit_ok(app_client)


async def test_signal_reaches_only_the_other_party(app_client):
    seller = await seller_online(app_client, 100)
    buyer = await actor(app_client)
    stranger = await actor(app_client)
    await fund(app_client, buyer.id, 500)
    sc, bc, xc = [await ws_client(app_client, a) for a in (seller, buyer, stranger)]
    try:
        call = (await (await buyer.post("/api/calls", {"seller_id": seller.id, "rate": 100}))
                .json())["call"]
        cid = call["id"]
        # Not yet accepted: no signalling.
        await bc.send({"type": "signal", "call_id": cid, "data": {"sdp": "x"}})
        assert (await bc.next("error"))["code"] == "invalid_state"
        await seller.post(f"/api/calls/{cid}/accept")
        await xc.send({"type": "signal", "call_id": cid, "data": {"sdp": "evil"}})
        assert (await xc.next("error"))["code"] == "not_your_call"
        await bc.send({"type": "signal", "call_id": cid, "data": {"sdp": "offer"}})
        got = await sc.next("signal", cid)
        assert got == {"type": "signal", "call_id": cid, "data": {"sdp": "offer"},
                       "from": buyer.id}
        await sc.send({"type": "signal", "call_id": cid, "data": {"sdp": "answer"}})
        assert (await bc.next("signal", cid))["data"] == {"sdp": "answer"}
        await asyncio.sleep(0.3)
        for c in (sc, bc, xc):
            assert all(m["data"].get("sdp") != "evil" for m in c.seen("signal"))
        # A call that is over relays nothing.
        await buyer.post(f"/api/calls/{cid}/end")
        await bc.send({"type": "signal", "call_id": cid, "data": {"sdp": "late"}})
        assert (await bc.next("error"))["code"] == "not_your_call"
    finally:
        for c in (sc, bc, xc):
            await c.close()


async def test_bad_socket_messages_get_errors_and_the_socket_stays_open(aiohttp_client,
                                                                         tmp_path):
    cfg = fast_calls_config(tmp_path, server={"ws_messages_per_10s": 12,
                                              "ws_max_message_bytes": 2048})
    app_client = await aiohttp_client(create_app(cfg))
    buyer = await actor(app_client)
    c = await ws_client(app_client, buyer)
    try:
        await c.ws.send_str("{not json")
        assert (await c.next("error"))["code"] == "invalid_json"
        await c.ws.send_str("[1]")
        assert (await c.next("error"))["code"] == "invalid_message"
        await c.send({"type": "dance"})
        assert (await c.next("error"))["code"] == "unknown_type"
        await c.send({"type": "media", "call_id": "abc", "state": "connected"})
        assert (await c.next("error"))["code"] == "invalid_message"
        await c.ws.send_bytes(b"\x00")
        assert (await c.next("error"))["code"] == "invalid_message"
        await c.send({"type": "signal", "call_id": "1", "data": "x" * 3000})
        assert (await c.next("error"))["code"] == "message_too_large"
        await c.send({"type": "ping"})
        assert (await c.next("pong"))["type"] == "pong"
        for _ in range(8):
            await c.send({"type": "ping"})
        assert (await c.next("error"))["code"] == "rate_limited"
        assert not c.ws.closed
    finally:
        await c.close()


async def test_socket_needs_auth_and_the_connection_cap_refuses_politely(aiohttp_client,
                                                                          tmp_path):
    cfg = fast_calls_config(tmp_path, server={"max_ws_connections": 2})
    app_client = await aiohttp_client(create_app(cfg))
    buyer = await actor(app_client)
    async with aiohttp.ClientSession() as http:
        url = str(app_client.make_url("/ws"))
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await http.ws_connect(url)
        assert err.value.status == 401
        a = await http.ws_connect(url, params={"token": buyer.token})
        b = await http.ws_connect(url, headers={"Authorization": f"Bearer {buyer.token}"})
        async with http.get(url, params={"token": buyer.token},
                            headers={"Connection": "Upgrade", "Upgrade": "websocket",
                                     "Sec-WebSocket-Version": "13",
                                     "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}) as r:
            await assert_error(r, 503, "too_many_connections")
            assert r.headers["Retry-After"] == "5"
        await a.close()
        await asyncio.sleep(0.05)
        c = await http.ws_connect(url, params={"token": buyer.token})
        await c.send_json({"type": "ping"})
        assert (await c.receive_json())["type"] == "pong"
        await b.close()
        await c.close()


async def test_cookie_socket_from_another_site_is_refused(app_client):
    buyer = await actor(app_client)
    async with aiohttp.ClientSession(cookies={"mc_session": buyer.token}) as http:
        url = str(app_client.make_url("/ws"))
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await http.ws_connect(url, origin="https://evil.example")
        assert err.value.status == 403
        ws = await http.ws_connect(url, origin=f"http://{app_client.host}:{app_client.port}")
        await ws.close()


async def test_seller_whose_sockets_are_gone_goes_offline_after_the_grace(clocked):
    """Presence runs on the app's clock (the grace here: 2 s): a connected seller stays
    online however long; once their last socket is gone, online until the grace ends."""
    app_client = clocked.client
    hub = app_client.app[HUB]
    seller = await seller_online(app_client, 100)

    async def online() -> bool:
        got = await (await app_client.get(f"/api/sellers/{seller.id}")).json()
        return bool(got["seller"]["online"])

    c = await ws_client(app_client, seller)
    await clocked.advance(10)  # connected: stays online far past the grace
    assert await online() is True
    await c.close()
    for _ in range(200):  # the server sees the close (real time, not the clock's)
        if not hub.is_connected(int(seller.id)):
            break
        await asyncio.sleep(0.01)
    assert not hub.is_connected(int(seller.id))
    await clocked.advance(1.5)
    assert await online() is True  # within the grace
    await clocked.advance(0.5)
    assert await online() is False
    # Reported once: a new socket and a new grace make the next report.
    assert hub.gone_users(clocked.clock.monotonic() + 100) == []


async def test_reports_are_recorded(app_client):
    buyer = await actor(app_client)
    seller = await actor(app_client, "seller")
    assert (await seller.post(f"/api/users/{buyer.id}/report", {"reason": "spam"})).status \
        == 204
    await assert_error(await seller.post(f"/api/users/{seller.id}/report", {}), 422)
    await assert_error(await seller.post("/api/users/99999/report", {}), 404)
    rows = await app_client.app[DB].fetchall(
        "SELECT reporter_id, reported_id, reason FROM user_reports")
    assert [tuple(r) for r in rows] == [(int(seller.id), int(buyer.id), "spam")]


async def test_ice_servers_with_coturn_rest_credentials(aiohttp_client, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_TURN_SECRET", "s3cret")
    cfg = fast_calls_config(tmp_path, ice={
        "stun_urls": ["stun:turn.example.com:3478"],
        "turn_urls": ["turn:turn.example.com:3478?transport=udp"],
        "turn_secret_env": "TEST_TURN_SECRET", "turn_ttl_s": 600})
    now_s = 1_750_000_000
    app_client = await aiohttp_client(create_app(cfg, FakeClock(wall_ms=now_s * 1000 + 999)))
    buyer = await actor(app_client)
    async with aiohttp.ClientSession() as anonymous:
        await assert_error(await anonymous.get(app_client.make_url("/api/ice")), 401)
    body = await (await buyer.get("/api/ice")).json()
    stun, turn = body["ice_servers"]
    assert stun == {"urls": ["stun:turn.example.com:3478"]}
    # Valid for turn_ttl_s from now (whole seconds).
    assert turn["username"] == f"{now_s + 600}:{buyer.id}"
    expected = base64.b64encode(
        hmac.new(b"s3cret", turn["username"].encode(), hashlib.sha1).digest()).decode()
    assert turn["credential"] == expected
