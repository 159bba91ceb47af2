"""The call room in real headless Chromium against the real app on a loopback port: chat
between two browsers (markup arrives as literal text, the history comes back after a
reload, a message is reported), mute and camera off seen by the other side, the live call
on a phone (End always in view), and the summary of a call that never connected. Helpers
come from tests/test_browser.py and tests/test_browser_economy.py."""

from __future__ import annotations

import pytest
from aiohttp import ClientSession
from playwright.async_api import Page, expect

from meterchat.appkeys import DB
from tests.conftest import fund_tokens
from tests.test_browser import (
    PASSWORD,
    assert_fits_width,
    buyer_calls,
    open_app,
    seller_accepts,
    seller_sets_rate_and_goes_online,
    shot,
    unexpected,
)
from tests.test_browser_economy import log_in, new_user, served  # noqa: F401 - a fixture

pytestmark = pytest.mark.browser

RATE = 60
MARKUP = "<b>hi</b><img src=x onerror=alert(1)>"


def chat_lines(page: Page):
    return page.get_by_test_id("chat-lines").locator("li")


async def send_chat(page: Page, text: str) -> None:
    await page.get_by_label("Chat message").fill(text)
    await page.get_by_role("button", name="Send", exact=True).click()


async def end_inside_viewport(page: Page) -> None:
    """The End button is wholly on the screen, wherever the page is scrolled."""
    for where in ("0", "document.documentElement.scrollHeight"):
        await page.evaluate(f"window.scrollTo(0, {where})")
        end = page.get_by_role("button", name="End call")
        await expect(end).to_be_visible()
        box = await end.bounding_box()
        assert box is not None
        vw, vh = page.viewport_size["width"], page.viewport_size["height"]
        assert box["x"] >= 0 and box["y"] >= 0, box
        assert box["x"] + box["width"] <= vw and box["y"] + box["height"] <= vh, (box, where)
        # Nothing covers it: the point at its centre is the button itself.
        on_top = await page.evaluate(
            "([x, y]) => document.elementFromPoint(x, y)?.textContent",
            [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2])
        assert on_top == "End call", on_top


async def test_chat_controls_and_the_phone_layout_of_a_live_call(served):  # noqa: F811
    app, base_url, b = served
    _, seller_email = await new_user(app, "seller", "Sara Seller")
    buyer_id, buyer_email = await new_user(app, "buyer", "Ben Buyer")
    await fund_tokens(app, buyer_id, "1000")
    seller = await b.page("seller")
    buyer = await b.page("buyer-phone", phone=True)
    alerts: list[str] = []
    reasons = iter(["spam link"])

    async def on_dialog(dialog) -> None:
        if dialog.type == "alert":
            alerts.append(dialog.message)  # markup run as HTML would alert(1)
        if dialog.type == "prompt":
            await dialog.accept(next(reasons))
        else:
            await dialog.accept()

    for page in (buyer, seller):
        page.on("dialog", on_dialog)
    await log_in(seller, seller_email)
    await seller_sets_rate_and_goes_online(seller, RATE)
    await log_in(buyer, buyer_email)
    await buyer_calls(buyer, "Sara Seller", RATE, shots=False)
    await seller_accepts(seller, "Ben Buyer")
    for page in (buyer, seller):
        await expect(page.get_by_test_id("call-state")).to_have_text("Live", timeout=30_000)
    call_id = buyer.url.rsplit("/", 1)[1]

    # On the phone, End is on the screen without scrolling, and nothing is wider than it.
    await end_inside_viewport(buyer)
    await assert_fits_width(buyer)

    # Markup typed by the buyer arrives as the same characters, never as HTML.
    await send_chat(buyer, MARKUP)
    await expect(chat_lines(seller)).to_have_count(1)
    line = chat_lines(seller).first
    await expect(line.locator(".chat-text")).to_have_text(MARKUP)
    await expect(line.locator(".chat-who")).to_have_text("Ben Buyer")
    assert await seller.get_by_test_id("chat").locator("img, b").count() == 0
    await expect(chat_lines(buyer).first.locator(".chat-text")).to_have_text(MARKUP)
    await send_chat(seller, "Hello Ben, I hear you fine.")
    await expect(chat_lines(buyer)).to_have_count(2)
    await expect(chat_lines(buyer).nth(1)).to_contain_text("Hello Ben, I hear you fine.")
    await expect(buyer.get_by_label("Chat message")).to_have_value("")

    # Camera off and mute: the tracks are disabled and the other side is told.
    await buyer.get_by_role("button", name="Camera off").click()
    await expect(seller.get_by_test_id("remote-camera-off")).to_be_visible()
    await expect(seller.get_by_test_id("remote-camera-off")).to_have_text(
        "Ben Buyer's camera is off")
    await buyer.get_by_role("button", name="Mute").click()
    await expect(seller.get_by_test_id("remote-muted")).to_be_visible()
    tracks = await buyer.evaluate("""() => {
        const s = document.querySelector('video.local').srcObject;
        return s.getTracks().map((t) => [t.kind, t.enabled]);
    }""")
    assert sorted(tracks) == [["audio", False], ["video", False]], tracks
    await expect(buyer.get_by_role("button", name="Camera on")).to_have_attribute(
        "aria-pressed", "true")
    await shot(buyer, "call-phone-chat-camera-off", full_page=False)
    await shot(seller, "call-seller-sees-camera-off", full_page=False)
    await buyer.get_by_role("button", name="Camera on").click()
    await expect(seller.get_by_test_id("remote-camera-off")).to_be_hidden()
    await expect(seller.get_by_test_id("remote-muted")).to_be_visible()

    # The seller reloads: the history comes back, and the buyer's state (still muted) too.
    await seller.reload()
    await expect(seller.get_by_test_id("call-state")).to_have_text("Live", timeout=30_000)
    await expect(chat_lines(seller)).to_have_count(2)
    await expect(chat_lines(seller).first.locator(".chat-text")).to_have_text(MARKUP)
    await expect(seller.get_by_test_id("remote-muted")).to_be_visible()

    # The seller reports the buyer's message; its own has no report link.
    await expect(chat_lines(seller).nth(1).get_by_role("button", name="Report")).to_have_count(0)
    await chat_lines(seller).first.get_by_role("button", name="Report").click()
    await expect(chat_lines(seller).first).to_contain_text("Reported")

    await end_inside_viewport(buyer)
    await buyer.get_by_role("button", name="End call").click()
    for page in (buyer, seller):
        await expect(page.get_by_test_id("call-summary")).to_be_visible()
        await expect(chat_lines(page)).to_have_count(2)
        await expect(chat_lines(page).first.locator(".chat-text")).to_have_text(MARKUP)
    await shot(buyer, "call-phone-summary-chat")

    # The operator reads the report with the message, and the call's chat, as text.
    _, admin_email = await new_user(app, "admin", "Olga Operator")
    ops = await b.page("operator")
    ops.on("dialog", on_dialog)
    await log_in(ops, admin_email)
    await ops.goto("/#/admin")
    row = ops.get_by_test_id("reports-queue").locator("tbody tr", has_text="spam link")
    await expect(row).to_contain_text("buyer")  # the reported user's role
    await expect(row.locator(".chat-text").first).to_have_text(MARKUP)
    await row.get_by_role("button", name="Call record").click()
    record = row.get_by_test_id("record-chat").locator("li")
    await expect(record).to_have_count(2)
    await expect(record.first).to_contain_text("Buyer")
    await expect(record.first.locator(".chat-text")).to_have_text(MARKUP)
    await expect(record.nth(1).locator(".chat-text")).to_have_text("Hello Ben, I hear you fine.")
    assert await ops.locator("main img, main b").count() == 0
    await shot(ops, "operator-report-with-chat")
    assert alerts == []

    async with ClientSession(base_url) as http:
        async with http.post("/api/auth/login",
                             json={"email": seller_email, "password": PASSWORD}) as resp:
            auth = {"Authorization": "Bearer " + (await resp.json())["token"]}
        async with http.get(f"/api/calls/{call_id}/messages", headers=auth) as resp:
            said = (await resp.json())["messages"]
    assert [m["text"] for m in said] == [MARKUP, "Hello Ben, I hear you fine."]
    reported = await app[DB].read(lambda c: c.execute(
        "SELECT reason, call_message_id FROM user_reports").fetchall())
    assert [tuple(r) for r in reported] == [("spam link", int(said[0]["id"]))]
    assert unexpected(b.errors) == [], "\n".join(b.errors)


async def test_a_call_that_never_connected_offers_no_tip_rating_or_dispute(served):  # noqa: F811
    app, base_url, b = served
    seller_id, seller_email = await new_user(app, "seller", "Nia Noshow")
    buyer_id, buyer_email = await new_user(app, "buyer", "Omar Onlooker")
    await fund_tokens(app, buyer_id, "1000")
    async with ClientSession(base_url) as http:
        tokens = {}
        for email in (seller_email, buyer_email):
            async with http.post("/api/auth/login",
                                 json={"email": email, "password": PASSWORD}) as resp:
                tokens[email] = {"Authorization": "Bearer " + (await resp.json())["token"]}
        s, by = tokens[seller_email], tokens[buyer_email]
        for path, body in (("/api/seller/profile", {"rate": RATE}),
                           ("/api/seller/status", {"online": True})):
            async with http.put(path, json=body, headers=s) as resp:
                assert resp.status == 200, await resp.text()
        async with http.post("/api/calls", json={"seller_id": seller_id, "rate": RATE},
                             headers=by) as resp:
            call_id = (await resp.json())["call"]["id"]
        # Accepted, then hung up before any video: live time 0.
        async with http.post(f"/api/calls/{call_id}/accept", headers=s) as resp:
            assert resp.status == 200, await resp.text()
        async with http.post(f"/api/calls/{call_id}/end", headers=by) as resp:
            ended = (await resp.json())["call"]
    assert ended["state"] == "ended" and ended["live_seconds"] == 0, ended
    page = await b.page("buyer-phone", phone=True)
    await log_in(page, buyer_email)
    await open_app(page, f"/#/call/{call_id}")
    summary = page.get_by_test_id("call-summary")
    await expect(summary).to_be_visible()
    await expect(summary.get_by_role("heading", name="Call not connected")).to_be_visible()
    for gone in (page.get_by_label("Tip (whole tokens)"),
                 page.get_by_role("button", name="Send rating"),
                 page.get_by_role("button", name="Something went wrong? Open a dispute")):
        await expect(gone).to_have_count(0)
    await shot(page, "call-phone-never-connected")
    assert unexpected(b.errors) == [], "\n".join(b.errors)
