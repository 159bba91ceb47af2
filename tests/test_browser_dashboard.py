"""The seller's dashboard in real headless Chromium, at 1280x800 and 390x844: what the
platform takes and what a minute earns, today / this week / this month counting the same
things (tips included), counts in words ("1 supporter", "2 calls"), tags and languages as the
seller typed them, and supporters named only when they opted in. The calls behind it are made
through the API (tests/test_economy_api.py's helpers); screenshots go to
artifacts/screenshots/."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from meterchat.app import create_app
from tests.browser_pool import chromium
from tests.conftest import actor, fast_calls_config, fund, seller_online
from tests.test_browser import Browsers, assert_fits_width, shot, unexpected
from tests.test_browser_a11y import SIZES
from tests.test_browser_economy import log_in
from tests.test_economy_api import _SOCKETS, tip, tipped_call

pytestmark = pytest.mark.browser


@pytest.fixture
async def sold(aiohttp_client, tmp_path):
    """A seller (tags and languages in their own spelling) whom two buyers tipped in a call
    each: "Open Fan" opted in to supporter boards, "Private Pat" did not."""
    client = await aiohttp_client(create_app(fast_calls_config(tmp_path)))
    seller = await seller_online(client, 60, tags=["Late  Night", "Jazz"],
                                 languages=["English", "Ελληνικά"])
    fan = await actor(client, display_name="Open Fan")
    shy = await actor(client, display_name="Private Pat")
    try:
        for i, (buyer, amount) in enumerate(((fan, 10), (shy, 30))):
            await fund(client, buyer.id, 200)
            call_id = await tipped_call(client, seller, buyer)
            assert (await tip(buyer, call_id, amount, f"d{i}")).status == 201
            await buyer.post(f"/api/calls/{call_id}/end")
        await fan.put("/api/me/privacy", {"show_on_leaderboard": True})
    finally:
        while _SOCKETS:
            await _SOCKETS.popitem()[1].close()
    return client, seller


async def at_both_sizes(page: Page, name: str, check) -> None:
    for size, viewport in SIZES.items():
        await page.set_viewport_size(viewport)
        await check()
        await assert_fits_width(page)
        await shot(page, f"{name}-{size}")


async def test_dashboard_says_the_commission_counts_periods_alike_and_keeps_privacy(
        sold, tmp_path):
    client, seller = sold
    stats = (await (await seller.get("/api/seller/stats")).json())["stats"]
    # 40 tokens of tips at 25 %: 30 earned, the calls themselves unbilled.
    assert stats["earned_total"] == "30" and stats["calls"] == 2
    async with chromium() as browser:
        b = Browsers(browser, str(client.make_url("/")).rstrip("/"))
        try:
            page = await b.page("seller")
            await log_in(page, seller.user["email"])
            await expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
            hint = page.get_by_test_id("rate-hint")

            async def money_words() -> None:
                await expect(hint).to_contain_text(
                    "60 tokens = 0.60 USDT per minute. The platform keeps 25 %: you earn 45"
                    " tokens (0.45 USDT) per minute of live video.")
                # Today, this week and this month count the same things: tips in.
                for testid in ("earned-today", "earned-week", "earned-month"):
                    await expect(page.get_by_test_id(testid)).to_have_text("30")
                await expect(page.get_by_test_id("earnings-rule")).to_contain_text(
                    "call minutes and tips, less refunds")
                await expect(page.get_by_test_id("calls-count")).to_have_text("2 calls")
                # Only the buyer who opted in is named; the other is counted, in words.
                await expect(page.get_by_test_id("top-supporters")).to_have_text("Open Fan")
                await expect(page.get_by_test_id("supporters-not-shown")).to_have_text(
                    "And 1 supporter who keeps their name private.")
                assert "Private Pat" not in await page.locator("main").inner_text()
                # Tags and languages as the seller typed them.
                await expect(page.get_by_label("Tags")).to_have_value("Late Night, Jazz")
                await expect(page.get_by_label("Languages")).to_have_value(
                    "English, Ελληνικά")

            await at_both_sizes(page, "dashboard-money", money_words)

            # The hint follows the rate as it is typed: 7 tokens earn 5.25 after 25 %.
            await page.get_by_label("Rate (tokens per minute)").fill("7")
            await expect(hint).to_contain_text("you earn 5.25 tokens (0.0525 USDT) per minute")

            # The sellers list: counts in words, tags and languages as typed.
            await page.get_by_role("link", name="Sellers", exact=True).click()
            # The fixture's sockets are closed: past the presence grace the seller is offline,
            # and how soon that comes depends on the machine's load. The card is the same.
            await page.get_by_label("Online now only").uncheck()
            card = page.locator("article.seller", has_text=seller.user["display_name"])

            async def card_words() -> None:
                await expect(card).to_contain_text("Speaks English, Ελληνικά")
                await expect(card.locator(".tag")).to_have_text(["Late Night", "Jazz"])
                await expect(card).to_contain_text("0 calls")  # none billed yet
                await expect(page.get_by_text("1 seller", exact=True)).to_be_visible()

            await at_both_sizes(page, "sellers-as-typed", card_words)
            said = await page.evaluate("""async () => {
                const { plural } = await import('/static/js/ui.js');
                return [plural(0, "call"), plural(1, "call"), plural(2, "call"),
                        plural(1200, "minute"), plural(1, "day")];
            }""")
            assert said == ["0 calls", "1 call", "2 calls", "1,200 minutes", "1 day"]
        finally:
            await b.close()
    assert unexpected(b.errors) == [], "\n".join(b.errors)
