"""The top-up a buyer cannot pay twice, and the live call on a phone, in real headless
Chromium against the real app on devnet, at 390x844 and 1280x800: a credited intent turns
into a receipt (amount, TXID, time) with no address or QR code left; an expired intent says
so and offers a new top-up; the amount and address copy buttons put them on the clipboard
and say so; in a call, video, meter and End are inside the screen with the tip form open,
the header folds away, the meter starts at its real zero and under a minute shows seconds.
axe-core finds no serious violation on the receipt, the expired card or the live call.
Screenshots go to artifacts/screenshots/."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.async_api import Page, expect

from meterchat.app import create_app
from tests.browser_pool import chromium
from tests.conftest import fund_tokens, make_config
from tests.test_browser import (
    Browsers,
    assert_fits_width,
    devnet_faucet,
    seller_accepts,
    seller_sets_rate_and_goes_online,
    shot,
    sign_up,
)
from tests.test_browser_a11y import axe_violations
from tests.test_browser_callroom import end_inside_viewport
from tests.test_browser_economy import log_in, new_user

pytestmark = pytest.mark.browser

SIZES = ["phone", "desktop"]


@pytest.fixture
async def wallet_app(aiohttp_server, tmp_path):
    app = create_app(make_config(
        tmp_path, billing={"tick_interval_s": 0.2},
        devnet={"block_time_s": 0.2, "solidify_depth": 2},
        deposits={"watcher_interval_s": 0.2, "intent_ttl_minutes": 1}))
    server = await aiohttp_server(app)
    base_url = str(server.make_url("/")).rstrip("/")
    async with chromium() as browser:
        b = Browsers(browser, base_url)
        try:
            yield app, b
        finally:
            await b.close()


async def ask_for_top_up(page: Page, usdt: str) -> tuple[str, str]:
    await page.get_by_role("link", name="Wallet").click()
    await page.get_by_label("Amount in USDT").fill(usdt)
    await page.get_by_role("button", name="Get payment details").click()
    exact = (await page.get_by_test_id("exact-amount").inner_text()).strip()
    address = (await page.get_by_test_id("deposit-address").inner_text()).strip()
    return exact, address


async def clipboard(page: Page) -> str:
    return await page.evaluate("() => navigator.clipboard.readText()")


@pytest.mark.parametrize("size", SIZES)
async def test_a_credited_top_up_becomes_a_receipt_with_no_address_to_pay_again(
        wallet_app, size):
    app, b = wallet_app
    page = await b.page(f"buyer-{size}", phone=size == "phone", bypass_csp=True)
    await sign_up(page, "buyer", "Rita Receipt")
    exact, address = await ask_for_top_up(page, "12")
    await expect(page.get_by_role("img", name="QR code of the deposit address")).to_be_visible()

    # The copy buttons put the exact text on the clipboard and say so (button and toast).
    await page.get_by_role("button", name="Copy amount").click()
    assert await clipboard(page) == exact
    await expect(page.locator("#toasts")).to_contain_text("Amount copied to the clipboard")
    await expect(page.get_by_role("button", name="Copied")).to_be_visible()
    await page.get_by_role("button", name="Copy address").click()
    assert await clipboard(page) == address
    await expect(page.locator("#toasts")).to_contain_text("Address copied to the clipboard")
    await shot(page, f"wallet-topup-copied-{size}")

    # Paid from a wallet, never claimed: the watcher credits it and the card turns over.
    txid = await devnet_faucet(app)(address, exact)
    await expect(page.get_by_role("heading", name="Top-up received")).to_be_visible(
        timeout=60_000)
    receipt = page.get_by_test_id("topup-receipt")
    await expect(page.get_by_test_id("receipt-amount")).to_contain_text(f"{exact} USDT")
    await expect(page.get_by_test_id("receipt-txid")).to_have_text(txid)  # devnet: no explorer
    await expect(page.get_by_test_id("receipt-time")).not_to_be_empty()
    await expect(receipt).to_be_visible()
    await expect(page.get_by_test_id("deposit-address")).to_have_count(0)
    await expect(page.get_by_test_id("exact-amount")).to_have_count(0)
    await expect(page.get_by_role("img", name="QR code of the deposit address")).to_have_count(0)
    await expect(page.get_by_role("button", name="New top-up")).to_be_visible()
    await shot(page, f"wallet-topup-receipt-{size}")
    assert await axe_violations(page, f"receipt at {size}") == []
    # The ledger says what the line is, in tokens with the USDT beside.
    ledger = page.locator("section", has=page.get_by_role("heading", name="Ledger"))
    await expect(ledger.locator("tr[data-kind=deposit]")).to_contain_text("Top-up")
    await expect(ledger.locator("tr[data-kind=deposit]")).to_contain_text(f"({exact} USDT)")
    assert b.errors == [], b.errors


@pytest.mark.parametrize("size", SIZES)
async def test_an_expired_top_up_says_so_and_offers_a_new_one(wallet_app, size):
    _, b = wallet_app
    page = await b.page(f"buyer-{size}", phone=size == "phone", bypass_csp=True)
    await sign_up(page, "buyer", "Eli Expired")
    exact, _ = await ask_for_top_up(page, "5")
    # intent_ttl_minutes = 1: the page's clock two minutes on is past its time.
    later = datetime.now(UTC) + timedelta(minutes=2)
    await page.clock.set_system_time(later)
    await expect(page.get_by_role("heading", name="This top-up has expired")).to_be_visible(
        timeout=15_000)
    await expect(page.get_by_test_id("deposit-status")).to_contain_text(
        f"The amount {exact} USDT was valid until")
    await expect(page.get_by_test_id("deposit-address")).to_have_count(0)
    await expect(page.get_by_role("img", name="QR code of the deposit address")).to_have_count(0)
    await shot(page, f"wallet-topup-expired-{size}")
    assert await axe_violations(page, f"expired top-up at {size}") == []
    # After a reload the saved intent still says so.
    await page.reload()
    await expect(page.get_by_role("heading", name="This top-up has expired")).to_be_visible()
    await page.get_by_role("button", name="New top-up").click()
    await expect(page.get_by_label("Amount in USDT")).to_be_visible()
    assert b.errors == [], b.errors


async def inside_viewport(page: Page, locator, what: str) -> None:
    box = await locator.bounding_box()
    assert box is not None, what
    vw, vh = page.viewport_size["width"], page.viewport_size["height"]
    assert box["x"] >= 0 and box["y"] >= 0, (what, box)
    assert box["x"] + box["width"] <= vw + 0.5 and box["y"] + box["height"] <= vh + 0.5, (
        what, box, vh)


@pytest.mark.parametrize("size", SIZES)
async def test_the_live_call_fits_the_screen_starts_at_zero_and_counts_seconds_left(
        wallet_app, size):
    app, b = wallet_app
    _, seller_email = await new_user(app, "seller", "Sara Screen")
    buyer_id, buyer_email = await new_user(app, "buyer", "Pia Phone")
    # A long balance: the folded header still fits the phone's width.
    await fund_tokens(app, buyer_id, "12345.6789")
    seller = await b.page(f"seller-{size}")
    buyer = await b.page(f"buyer-{size}", phone=size == "phone", bypass_csp=True)
    buyer.on("dialog", lambda d: d.accept())
    await log_in(seller, seller_email)
    await seller_sets_rate_and_goes_online(seller, 60)
    await log_in(buyer, buyer_email)
    await buyer.get_by_role("link", name="Sellers", exact=True).click()
    card = buyer.locator("article.seller", has_text="Sara Screen")
    await card.get_by_role("link", name="Call Sara Screen").click()
    # A cap of 48 tokens at 60 a minute: 0.8 minutes, under one from the start.
    await buyer.get_by_label("Spending cap for this call (tokens, optional)").fill("48")
    await buyer.get_by_label("I agree to pay").check()
    start = buyer.get_by_role("button", name="Start call at 60 tokens/min")
    await expect(start).to_be_enabled()
    await start.click()
    await expect(buyer.get_by_test_id("call-state")).to_have_text("Ringing")
    # Before the first meter message: the real zero and what the balance buys, no dashes.
    await expect(buyer.get_by_test_id("meter-time")).to_have_text("0:00")
    await expect(buyer.get_by_test_id("meter-spent-box")).to_have_text("0 tokens")
    await expect(buyer.get_by_test_id("meter-balance")).to_have_text("12,345.6789")
    await expect(buyer.get_by_test_id("meter-minutes-left")).to_have_text("0:48 left")
    await shot(buyer, f"call-meter-zero-{size}", full_page=False)

    await seller_accepts(seller, "Pia Phone")
    await expect(buyer.get_by_test_id("call-state")).to_have_text("Live", timeout=30_000)
    await expect(buyer.get_by_test_id("meter-minutes-left")).to_have_text(
        re.compile(r"^0:[0-4]\d left$"))
    tip = buyer.get_by_label("Tip (whole tokens)")
    await expect(tip).to_be_visible()
    await tip.fill("5")  # the tip form open and in use
    await buyer.evaluate("window.scrollTo(0, 0)")
    await inside_viewport(buyer, buyer.get_by_test_id("remote-video"), "video")
    await inside_viewport(buyer, buyer.locator(".meter"), "meter")
    await inside_viewport(buyer, buyer.get_by_role("button", name="End call"), "End")
    await assert_fits_width(buyer)
    await end_inside_viewport(buyer)  # scrolled to the top and to the end, nothing over it
    await buyer.evaluate("window.scrollTo(0, 0)")
    if size == "phone":
        await expect(buyer.locator(".topbar .nav")).to_be_hidden()  # the header folded
    await shot(buyer, f"call-live-tip-form-{size}", full_page=False)
    assert await axe_violations(buyer, f"live call at {size}") == []
    await buyer.get_by_role("button", name="End call").click()
    await expect(buyer.get_by_test_id("call-summary")).to_be_visible()
    await expect(buyer.locator(".topbar .nav")).to_be_visible()  # back after the call
