"""The buyer's economy screens in real headless Chromium against the real app on a loopback
port: spending limits, a break (self-exclusion) and privacy in the wallet, and tips in a live
call seen by both sides. Helpers come from tests/test_browser.py."""

from __future__ import annotations

from decimal import Decimal

import pytest
from aiohttp import ClientSession
from playwright.async_api import Page, Route, expect

from meterchat.accounts import users as accounts
from meterchat.app import create_app
from meterchat.appkeys import DB, PASSWORDS
from tests.browser_pool import chromium
from tests.conftest import eventually, fund_tokens, make_config, new_email
from tests.test_browser import (
    PASSWORD,
    Browsers,
    assert_fits_width,
    buyer_calls,
    open_app,
    seller_accepts,
    seller_sets_rate_and_goes_online,
    shot,
    sign_up,
    unexpected,
)

pytestmark = pytest.mark.browser

RATE = 60  # tokens/min: the call costs little beside the tips


@pytest.fixture
async def served(aiohttp_server, tmp_path):
    """The app (for funding and users made as the operator's CLI makes them), its address,
    and the browsers."""
    app = create_app(make_config(tmp_path, billing={"tick_interval_s": 0.2}))
    server = await aiohttp_server(app)
    base_url = str(server.make_url("/")).rstrip("/")
    async with chromium() as browser:
        b = Browsers(browser, base_url)
        try:
            yield app, base_url, b
        finally:
            await b.close()


async def new_user(app, role: str, name: str) -> tuple[str, str]:
    email = new_email(role)
    user = await app[DB].tx(accounts.insert_user_tx, email, app[PASSWORDS].hash(PASSWORD), role,
                            name)
    return str(user.id), email


async def log_in(page: Page, email: str) -> None:
    await open_app(page, "/#/login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("button", name="Log out")).to_be_visible()


async def api_get(base_url: str, email: str, path: str) -> dict:
    """What the server says, asked outside the browser with the user's own bearer token."""
    async with ClientSession(base_url) as http:
        async with http.post("/api/auth/login",
                             json={"email": email, "password": PASSWORD}) as resp:
            assert resp.status == 200, await resp.text()
            auth = {"Authorization": "Bearer " + (await resp.json())["token"]}
        async with http.get(path, headers=auth) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()


async def seller_online_via_api(base_url: str, email: str, rate: int) -> None:
    async with ClientSession(base_url) as http:
        async with http.post("/api/auth/login",
                             json={"email": email, "password": PASSWORD}) as resp:
            auth = {"Authorization": "Bearer " + (await resp.json())["token"]}
        for path, body in (("/api/seller/profile", {"rate": rate}),
                           ("/api/seller/status", {"online": True})):
            async with http.put(path, json=body, headers=auth) as resp:
                assert resp.status == 200, await resp.text()


async def test_buyer_sets_limits_takes_a_break_and_is_refused_a_call(served):
    app, base_url, b = served
    seller_id, seller_email = await new_user(app, "seller", "Sam Seller")
    await seller_online_via_api(base_url, seller_email, RATE)
    page = await b.page("buyer-phone", phone=True)
    buyer_email = await sign_up(page, "buyer", "Lena Limits")
    me = await api_get(base_url, buyer_email, "/api/me")
    await fund_tokens(app, me["user"]["id"], "1000")

    await page.get_by_role("link", name="Wallet").click()
    limits = page.locator("section", has=page.get_by_role("heading", name="Spending limits"))
    await expect(page.get_by_test_id("limit-daily")).to_have_text("No limit")
    await expect(page.get_by_test_id("spending-total")).to_have_text("0 tokens")
    await limits.get_by_label("Daily limit (tokens)").fill("100")
    await limits.get_by_role("button", name="Save limits").click()
    await expect(page.get_by_test_id("limit-daily")).to_have_text("100 tokens")
    await expect(limits).to_contain_text("The new limits apply now.")
    await expect(page.get_by_test_id("limit-pending")).to_be_hidden()

    # Raising waits a day: the limit in force stays, the raise is shown with its date. The
    # keyboard alone does it (type, then Enter submits).
    daily = limits.get_by_label("Daily limit (tokens)")
    await daily.focus()
    await daily.press("Control+a")
    await page.keyboard.type("200")
    await page.keyboard.press("Enter")
    await expect(page.get_by_test_id("limit-pending")).to_contain_text(
        "Your daily limit rises to 200 tokens on")
    await expect(page.get_by_test_id("limit-daily")).to_have_text("100 tokens")
    await expect(page.get_by_test_id("limit-monthly")).to_have_text("No limit")
    said = (await api_get(base_url, buyer_email, "/api/me/limits"))["limits"]
    assert said["daily"] == "100" and said["daily_pending"]["limit"] == "200", said
    assert said["monthly"] is None and said["monthly_pending"] is None, said

    board = page.get_by_label("Show me on sellers' supporter boards")
    await expect(board).not_to_be_checked()
    await board.focus()
    await page.keyboard.press("Space")
    await expect(page.get_by_text("Sellers you support can now show your name.")).to_be_visible()
    said = (await api_get(base_url, buyer_email, "/api/me/limits"))["limits"]
    assert said["show_on_leaderboard"] is True

    asked: list[str] = []

    async def accept(dialog) -> None:
        asked.append(dialog.message)
        await dialog.accept()

    page.on("dialog", accept)
    await page.get_by_label("Days").fill("1")
    await page.get_by_role("button", name="Take a break").click()
    status = page.get_by_test_id("break-status")
    await expect(status).to_contain_text("You are taking a break until")
    await expect(status).to_contain_text("transfers that arrive are still credited")
    assert asked and asked[0].startswith("Take a break for 1 day?"), asked
    await expect(page.get_by_role("button", name="Extend the break")).to_be_visible()
    await assert_fits_width(page)
    await shot(page, "phone-wallet-buyer-controls")

    await open_app(page, f"/#/call?seller={seller_id}")
    await page.get_by_label("I agree to pay").check()
    start = page.get_by_role("button", name=f"Start call at {RATE} tokens/min")
    await expect(start).to_be_enabled()
    await start.click()
    await expect(page.get_by_role("alert")).to_contain_text("you have excluded yourself until")
    await expect(page.get_by_role("alert")).to_contain_text("no calls, tips or top-ups")
    await assert_fits_width(page)
    await shot(page, "phone-call-refused-break")
    assert unexpected(b.errors, (403, "/api/calls")) == [], "\n".join(b.errors)


def tip_lines(page: Page):
    return page.get_by_test_id("tip-lines").locator("li")


async def test_buyer_tips_in_a_live_call_once_even_when_the_answer_is_lost(served):
    app, base_url, b = served
    _, seller_email = await new_user(app, "seller", "Tia Tipped")
    buyer_id, buyer_email = await new_user(app, "buyer", "Tom Tipper")
    await fund_tokens(app, buyer_id, "1000")
    seller = await b.page("seller")
    buyer = await b.page("buyer")
    await log_in(seller, seller_email)
    await seller_sets_rate_and_goes_online(seller, RATE)
    await log_in(buyer, buyer_email)
    await buyer_calls(buyer, "Tia Tipped", RATE, shots=False)
    await seller_accepts(seller, "Tom Tipper")
    for page in (buyer, seller):
        await expect(page.get_by_test_id("call-state")).to_have_text("Live", timeout=30_000)
    call_id = buyer.url.rsplit("/", 1)[1]
    await expect(seller.get_by_label("Tip (whole tokens)")).to_have_count(0)

    # The first tip reaches the server but its answer is lost on the way back, as on a
    # dropped connection; the buyer presses Tip again.
    keys: list[str] = []

    async def lose_first_answer(route: Route) -> None:
        keys.append(route.request.headers["idempotency-key"])
        if len(keys) == 1:
            await route.fetch()
            await route.abort()
        else:
            await route.continue_()

    await buyer.route("**/api/calls/*/tip", lose_first_answer)
    asked: list[str] = []

    async def accept(dialog) -> None:
        asked.append(dialog.message)
        await dialog.accept()

    buyer.on("dialog", accept)
    tip_box = buyer.get_by_label("Tip (whole tokens)")
    tip_button = buyer.get_by_role("button", name="Tip", exact=True)
    await tip_box.fill("50")
    await tip_button.click()
    await expect(buyer.get_by_role("alert")).to_contain_text("Press Tip again to retry")
    assert asked == ["Tip 50 tokens to Tia Tipped?"], asked
    # The tip was paid: the WebSocket tells both sides even though the answer was lost.
    await expect(tip_lines(seller)).to_have_count(1)
    await expect(tip_lines(seller).first).to_contain_text(
        "Tom Tipper tipped 50 tokens (you receive 37.50)")
    await expect(tip_lines(buyer)).to_have_count(1)
    await tip_button.click()
    await expect(buyer.get_by_text("had already arrived; it was paid once")).to_be_visible()
    assert len(keys) == 2 and keys[0] == keys[1], keys

    # A new tip is a new key.
    await tip_box.fill("5")
    await tip_button.click()
    await expect(buyer.get_by_text("Tia Tipped got your tip of 5 tokens")).to_be_visible()
    assert len(keys) == 3 and keys[2] != keys[0], keys
    await expect(tip_lines(seller)).to_have_count(2)
    await expect(tip_lines(seller).nth(1)).to_contain_text("tipped 5 tokens (you receive 3.75)")
    await expect(tip_lines(buyer)).to_have_count(2)
    await expect(tip_lines(buyer).nth(0)).to_contain_text("You tipped 50 tokens")
    await shot(buyer, "call-tipped-buyer", full_page=False)
    await shot(seller, "call-tipped-seller", full_page=False)

    # The server's meter has counted live time (it runs a media report behind the picture):
    # a call ended sooner had none, and its summary would offer no tip.
    async def had_live_time() -> bool:
        call = (await api_get(base_url, buyer_email, f"/api/calls/{call_id}"))["call"]
        return call["live_seconds"] >= 1

    await eventually(had_live_time, timeout_s=30)
    await buyer.get_by_role("button", name="End call").click()
    for page in (buyer, seller):
        await expect(page.get_by_test_id("call-summary")).to_be_visible()
        await expect(tip_lines(page)).to_have_count(2)
    # An ended call can still be tipped from its summary, within the day.
    await buyer.get_by_label("Tip (whole tokens)").fill("10")
    await buyer.get_by_role("button", name="Tip", exact=True).click()
    await expect(tip_lines(buyer)).to_have_count(3)
    await expect(tip_lines(buyer).nth(2)).to_contain_text("You tipped 10 tokens")
    tips = (await api_get(base_url, buyer_email, f"/api/calls/{call_id}/tips"))["tips"]
    assert [t["tokens"] for t in tips] == ["50", "5", "10"], tips
    assert len(keys) == 4 and keys[3] not in keys[:3], keys
    call = (await api_get(base_url, seller_email, f"/api/calls/{call_id}"))["call"]
    balance = (await api_get(base_url, seller_email, "/api/me"))["balance"]
    # 25 % commission: the seller keeps 37.5 of 50, 3.75 of 5 and 7.5 of 10, besides the
    # call's earnings.
    held_by_seller = Decimal(balance["available"]) + Decimal(balance.get("pending") or 0)
    assert held_by_seller == Decimal(call["seller_earned"]) + Decimal("48.75")
    buyer_balance = (await api_get(base_url, buyer_email, "/api/me"))["balance"]
    assert Decimal(buyer_balance["available"]) == (
        Decimal(1000) - Decimal(call["charged"]) + Decimal(call["refunded"]) - 65)
    # The aborted request is the one lost answer the test made on purpose.
    lost = [e for e in b.errors if "net::ERR_FAILED" in e and "/tip" in e]
    assert len(lost) <= 1, lost
    others = [e for e in b.errors if e not in lost]
    assert unexpected(others) == [], "\n".join(b.errors)
