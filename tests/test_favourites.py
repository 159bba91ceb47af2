"""Favourites (API.md "The call room"): a buyer's list, the `favourites=true` filter, and the
`seller.online` notice on real sockets when a favourite comes online (once per seller per
buyer per favourites.notice_interval_minutes), with the opt-in mail through the outbox."""

from __future__ import annotations

import pytest

from meterchat.app import create_app
from meterchat.appkeys import DB
from meterchat.mail import outbox
from meterchat.sellers.rules import notice_due
from tests.calls_helpers import ws_client
from tests.conftest import actor, admin_actor, assert_error, make_config

MINUTE_MS = 60_000


# -- the rule, with the clock passed in

def test_first_notice_is_always_due():
    assert notice_due(None, 0, 60 * MINUTE_MS)


def test_no_second_notice_within_the_interval_and_one_after_it():
    told = 1_000_000
    assert not notice_due(told, told, 60 * MINUTE_MS)
    assert not notice_due(told, told + 60 * MINUTE_MS - 1, 60 * MINUTE_MS)
    assert notice_due(told, told + 60 * MINUTE_MS, 60 * MINUTE_MS)


def test_a_clock_that_went_back_counts_as_within_the_interval():
    assert not notice_due(2_000_000, 1_000_000, 60 * MINUTE_MS)


def test_interval_zero_tells_every_time():
    assert notice_due(5, 5, 0)


# -- the API

@pytest.fixture
async def app_client(aiohttp_client, tmp_path):
    return await aiohttp_client(create_app(make_config(tmp_path)))


async def seller_offline(client, name: str = "Sam"):
    seller = await actor(client, "seller", display_name=name)
    resp = await seller.put("/api/seller/profile", {"rate": 60})
    assert resp.status == 200
    return seller


async def go(seller, online: bool) -> None:
    resp = await seller.put("/api/seller/status", {"online": online})
    assert resp.status == 200, await resp.text()


async def settle(ws) -> None:
    """Everything queued for this socket before now has arrived (the queue is in order)."""
    await ws.send({"type": "ping"})
    await ws.next("pong")


async def test_add_and_remove_are_idempotent_and_the_filter_lists_them(app_client):
    buyer = await actor(app_client)
    liked, other = await seller_offline(app_client, "Liked"), await seller_offline(app_client)
    for _ in range(2):
        resp = await buyer.put(f"/api/favourites/{liked.id}")
        assert resp.status == 204
    listed = (await (await buyer.get("/api/favourites")).json())["sellers"]
    assert [s["id"] for s in listed] == [liked.id] and listed[0]["favourite"] is True
    only = (await (await buyer.get("/api/sellers?favourites=true")).json())["sellers"]
    assert [s["id"] for s in only] == [liked.id]
    every = (await (await buyer.get("/api/sellers")).json())["sellers"]
    assert {s["id"]: s["favourite"] for s in every} == {liked.id: True, other.id: False}
    for _ in range(2):
        resp = await buyer.client.delete(f"/api/favourites/{liked.id}", headers=buyer.headers)
        assert resp.status == 204
    assert (await (await buyer.get("/api/favourites")).json())["sellers"] == []


async def test_bad_favourites_are_refused(app_client):
    buyer = await actor(app_client)
    seller = await seller_offline(app_client)
    await assert_error(await buyer.put("/api/favourites/999999"), 404, "seller_not_found")
    await assert_error(await buyer.put(f"/api/favourites/{buyer.id}"), 404, "seller_not_found")
    await assert_error(await buyer.put("/api/favourites/abc"), 404)
    await assert_error(await seller.put(f"/api/favourites/{seller.id}"), 403)
    admin = await admin_actor(app_client)
    await assert_error(await admin.get("/api/favourites"), 403)
    await assert_error(await buyer.get("/api/sellers?favourites=maybe"), 422, "invalid_value")
    app_client.session.cookie_jar.clear()
    await assert_error(await app_client.get("/api/sellers?favourites=true"), 401)


async def test_mail_opt_in_is_off_by_default_and_kept(app_client):
    buyer = await actor(app_client)
    assert (await (await buyer.get("/api/favourites/mail")).json()) == {"mail": False}
    resp = await buyer.put("/api/favourites/mail", {"mail": True})
    assert (await resp.json()) == {"mail": True}
    assert (await (await buyer.get("/api/favourites/mail")).json()) == {"mail": True}
    await assert_error(await buyer.put("/api/favourites/mail", {"mail": "yes"}), 422)


# -- the notice on real sockets

async def test_notice_is_sent_once_and_not_again_within_the_interval(app_client):
    buyer = await actor(app_client)
    seller = await seller_offline(app_client, "Nora")
    await buyer.put(f"/api/favourites/{seller.id}")
    ws = await ws_client(app_client, buyer)
    try:
        await settle(ws)
        await go(seller, True)
        notice = await ws.next("seller.online")
        assert notice["seller"]["id"] == seller.id
        assert notice["seller"]["display_name"] == "Nora" and notice["seller"]["online"]
        # Online again (still online), then offline and online within the interval: nothing.
        await go(seller, True)
        await go(seller, False)
        await go(seller, True)
        await settle(ws)
        assert ws.seen("seller.online") == []
    finally:
        await ws.close()


async def test_no_notice_to_a_buyer_who_removed_the_favourite(app_client):
    keeps, removes = await actor(app_client), await actor(app_client)
    seller = await seller_offline(app_client)
    for b in (keeps, removes):
        await b.put(f"/api/favourites/{seller.id}")
    await removes.client.delete(f"/api/favourites/{seller.id}", headers=removes.headers)
    ws_keeps, ws_removes = await ws_client(app_client, keeps), await ws_client(app_client, removes)
    try:
        for ws in (ws_keeps, ws_removes):
            await settle(ws)
        await go(seller, True)
        await ws_keeps.next("seller.online")
        await settle(ws_removes)
        assert ws_removes.seen("seller.online") == []
    finally:
        await ws_keeps.close()
        await ws_removes.close()


async def test_no_notice_across_a_block(app_client):
    buyer = await actor(app_client)
    seller = await seller_offline(app_client)
    await buyer.put(f"/api/favourites/{seller.id}")
    await seller.post(f"/api/users/{buyer.id}/block", {})
    ws = await ws_client(app_client, buyer)
    try:
        await go(seller, True)
        await settle(ws)
        assert ws.seen("seller.online") == []
    finally:
        await ws.close()


async def test_interval_zero_notices_every_time(aiohttp_client, tmp_path):
    client = await aiohttp_client(create_app(make_config(
        tmp_path, favourites={"notice_interval_minutes": 0})))
    buyer = await actor(client)
    seller = await seller_offline(client)
    await buyer.put(f"/api/favourites/{seller.id}")
    ws = await ws_client(client, buyer)
    try:
        for _ in range(2):
            await go(seller, True)
            await ws.next("seller.online")
            await go(seller, False)
    finally:
        await ws.close()


async def _mails_to(client, email: str) -> list:
    return [m for m in await client.app[DB].read(outbox.listing)
            if m.to_address == email and m.kind == "favourite_online"]


async def test_opted_in_buyer_without_a_socket_gets_one_mail_per_interval(app_client):
    opted, silent = await actor(app_client), await actor(app_client)
    seller = await seller_offline(app_client, "Mila")
    for b in (opted, silent):
        await b.put(f"/api/favourites/{seller.id}")
    await opted.put("/api/favourites/mail", {"mail": True})
    await go(seller, True)
    mails = await _mails_to(app_client, opted.user["email"])
    assert len(mails) == 1
    assert "Mila" in mails[0].subject
    assert await _mails_to(app_client, silent.user["email"]) == []  # off by default
    await go(seller, False)
    await go(seller, True)
    assert len(await _mails_to(app_client, opted.user["email"])) == 1  # within the interval


async def test_a_connected_buyer_is_told_on_the_socket_not_by_mail(app_client):
    buyer = await actor(app_client)
    seller = await seller_offline(app_client)
    await buyer.put(f"/api/favourites/{seller.id}")
    await buyer.put("/api/favourites/mail", {"mail": True})
    ws = await ws_client(app_client, buyer)
    try:
        await settle(ws)
        await go(seller, True)
        await ws.next("seller.online")
        assert await _mails_to(app_client, buyer.user["email"]) == []
    finally:
        await ws.close()


def test_favourite_mail_escapes_the_sellers_name_and_links_to_the_favourites():
    from meterchat.mail import messages

    msg = messages.favourite_online("https://chat.example.com/", "<b>Eve</b>", 60)
    assert msg.kind == "favourite_online" and msg.subject == "<b>Eve</b> is online now"
    assert "<b>Eve</b>" not in msg.html and "&lt;b&gt;Eve&lt;/b&gt;" in msg.html
    assert "https://chat.example.com/#/sellers?favourites=true" in msg.text
    assert "once every 60 minutes" in msg.text
