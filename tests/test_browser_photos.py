"""Seller photos, favourites and call history in real headless Chromium against the real app
on a loopback port. Helpers come from tests/test_browser.py and tests/test_browser_economy.py."""

from __future__ import annotations

import re

import pytest
from aiohttp import ClientSession
from playwright.async_api import expect

from meterchat.appkeys import DB
from tests.conftest import fund_tokens
from tests.test_browser import PASSWORD, assert_fits_width, shot, unexpected
from tests.test_browser_economy import api_get, log_in, new_user, seller_online_via_api, served
from tests.test_sellers_photos import jpeg_with_gps

pytestmark = pytest.mark.browser
__all__ = ["served"]  # the fixture, used by name


async def test_approved_photo_shows_on_the_sellers_list(served):
    app, base_url, b = served
    _, seller_email = await new_user(app, "seller", "Pia Photo")
    _, admin_email = await new_user(app, "admin", "Olga Operator")
    _, buyer_email = await new_user(app, "buyer", "Bea Buyer")
    await seller_online_via_api(base_url, seller_email, 60)

    seller = await b.page("seller")
    await log_in(seller, seller_email)
    await seller.goto("/#/dashboard")
    photo_box = seller.get_by_test_id("photo")
    await expect(photo_box).to_contain_text("buyers see your initials")
    await photo_box.locator("input[type=file]").set_input_files(
        {"name": "me.jpg", "mimeType": "image/jpeg", "buffer": jpeg_with_gps((600, 800))})
    await photo_box.get_by_role("button", name="Upload", exact=True).click()
    await expect(photo_box.locator("[data-photo-status=pending]")).to_contain_text(
        "Waiting for review")
    await shot(seller, "dashboard-photo-pending")

    # Before approval the list shows initials.
    visitor = await b.page("buyer")
    await log_in(visitor, buyer_email)
    await visitor.goto("/#/sellers")
    card = visitor.locator(".card.seller", has_text="Pia Photo")
    await expect(card.locator(".avatar")).to_have_text("PP")

    operator = await b.page("operator")
    await log_in(operator, admin_email)
    await operator.goto("/#/admin")
    queued = operator.get_by_test_id("photo-queue").locator("[data-photo-id]")
    await expect(queued).to_have_count(1)
    await expect(queued.locator("img")).to_have_js_property("complete", True)
    assert await queued.locator("img").evaluate("img => img.naturalWidth") > 0
    await shot(operator, "operator-photo-queue")
    await queued.get_by_role("button", name="Approve").click()
    await expect(operator.get_by_text("No photos waiting for review.")).to_be_visible()

    await visitor.reload()
    photo = visitor.locator(".card.seller", has_text="Pia Photo").locator("img.avatar")
    await expect(photo).to_have_attribute("src", re.compile(r"^/api/photos/[0-9a-f]{64}\.jpg$"))
    await expect(photo).to_have_js_property("complete", True)
    assert await photo.evaluate("img => img.naturalWidth") == 320
    await shot(visitor, "sellers-with-photo")
    assert unexpected(b.errors) == []


async def test_a_favourites_notice_reaches_the_buyers_page(served):
    app, base_url, b = served
    _, seller_email = await new_user(app, "seller", "Fay Favourite")
    _, buyer_email = await new_user(app, "buyer", "Bo Buyer")
    async with ClientSession(base_url) as http:  # a profile, still offline
        async with http.post("/api/auth/login",
                             json={"email": seller_email, "password": PASSWORD}) as resp:
            auth = {"Authorization": "Bearer " + (await resp.json())["token"]}
        async with http.put("/api/seller/profile", json={"rate": 60}, headers=auth) as resp:
            assert resp.status == 200

    buyer = await b.page("buyer")
    await log_in(buyer, buyer_email)
    await buyer.goto("/#/sellers")
    await buyer.get_by_label("Online now only").uncheck()
    card = buyer.locator(".card.seller", has_text="Fay Favourite")
    await expect(card).to_contain_text("Offline")
    await card.get_by_role("button", name="Add Fay Favourite to favourites").click()
    star = card.get_by_role("button", name="Remove Fay Favourite from favourites")
    await expect(star).to_have_attribute("aria-pressed", "true")
    await buyer.get_by_label("Favourites only").check()
    await expect(buyer.locator(".card.seller")).to_have_count(1)

    await seller_online_via_api(base_url, seller_email, 60)
    await expect(buyer.locator(".toast", has_text="Fay Favourite is online now")).to_be_visible()
    await expect(card).to_contain_text("Online")
    await shot(buyer, "favourite-online")
    assert unexpected(b.errors) == []


async def _finished_call(app, buyer_id: str, seller_id: str, live_ms: int) -> int:
    """A call that went live and was billed, made the way the call manager makes one."""
    from meterchat.calls import store as calls
    from meterchat.core.db import now_ms
    from meterchat.money import billing

    db = app[DB]
    call_id = (await db.tx(calls.create_call_tx, int(buyer_id), int(seller_id), 600, None, 1,
                           250_000, now_ms())).id
    await db.tx(calls.accept_call_tx, call_id, now_ms())
    await db.tx(billing.run_pass, [(call_id, billing.completed_tenths(live_ms))], now_ms())
    await db.tx(billing.finish_call, call_id, "ended", "buyer_hangup", live_ms, now_ms(), 0)
    return call_id


async def test_history_page_and_receipt_show_what_the_call_cost(served):
    app, base_url, b = served
    seller_id, seller_email = await new_user(app, "seller", "Hana History")
    buyer_id, buyer_email = await new_user(app, "buyer", "Ben Buyer")
    await seller_online_via_api(base_url, seller_email, 600)
    await fund_tokens(app, buyer_id, "1000")
    call_id = await _finished_call(app, buyer_id, seller_id, 30_000)
    [listed] = (await api_get(base_url, buyer_email, "/api/calls"))["calls"]

    buyer = await b.page("buyer", phone=True)
    await log_in(buyer, buyer_email)
    await buyer.get_by_role("link", name="Calls").click()
    row = buyer.get_by_test_id("call-history").locator(f"tr[data-call-id='{call_id}']")
    await expect(row).to_contain_text("Hana History")
    await expect(row).to_contain_text("0:30")
    await expect(row.get_by_test_id("call-total")).to_have_text(listed["amounts"]["total"])
    await assert_fits_width(buyer)
    await shot(buyer, "call-history")
    await row.get_by_role("link").click()
    await expect(buyer.get_by_role("heading", name="Call with Hana History")).to_be_visible()
    await expect(buyer.get_by_test_id("receipt-total")).to_have_text(
        f"{listed['amounts']['total']} tokens")
    await expect(buyer.get_by_test_id("receipt")).to_contain_text("Held for call")
    await shot(buyer, "call-receipt")

    # The wallet: the call as one line with its total, linking to the receipt; the balance
    # after it is what the buyer holds.
    await buyer.get_by_role("link", name="Wallet").click()
    line = buyer.locator(f"tr[data-call-id='{call_id}']")
    await expect(line).to_contain_text("Call charge")
    await expect(line).to_contain_text(f"-{listed['amounts']['total']}")
    me = await api_get(base_url, buyer_email, "/api/me")
    await expect(line.locator("td").last).to_have_text(me["balance"]["available"])
    await line.get_by_role("link", name="Call charge").click()
    await expect(buyer.get_by_test_id("receipt")).to_be_visible()
    assert unexpected(b.errors) == []
