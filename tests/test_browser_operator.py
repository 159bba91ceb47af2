"""The operator's promotions in real headless Chromium against the real app on a loopback
port: start one through the form, see it run, end it early, and read the result back from
the API. Helpers come from tests/test_browser.py and tests/test_browser_economy.py."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Page, expect

from meterchat.app import create_app
from tests.browser_pool import chromium
from tests.conftest import make_config
from tests.test_browser import Browsers, assert_fits_width, shot, unexpected
from tests.test_browser_economy import api_get, log_in, new_user

pytestmark = pytest.mark.browser

# Half an hour off UTC: a period sent as wall-clock time, or shown in UTC, shows in the minutes.
ZONE = "Asia/Kolkata"


def local_input(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M")


async def fill_promotion(page: Page, name: str, percent: str, starts: dt.datetime,
                         ends: dt.datetime, from_usdt: str = "") -> None:
    form = page.get_by_role("form", name="Start a promotion")
    await form.get_by_label("Name").fill(name)
    await form.get_by_label("Bonus percent").fill(percent)
    await form.get_by_label("Minimum top-up (USDT, optional)").fill(from_usdt)
    await form.get_by_label("Starts (your time)").fill(local_input(starts))
    await form.get_by_label("Ends (your time)").fill(local_input(ends))
    # Enter in a text field submits, as a keyboard user would.
    await form.get_by_label("Name").press("Enter")


async def test_operator_starts_and_ends_a_promotion_on_a_phone(aiohttp_server, tmp_path):
    app = create_app(make_config(tmp_path, economy={"bonus_tiers": ["50:5", "100:10"]}))
    server = await aiohttp_server(app)
    base_url = str(server.make_url("/")).rstrip("/")
    _, admin_email = await new_user(app, "admin", "Olga Operator")
    now = dt.datetime.now(ZoneInfo(ZONE)).replace(second=0, microsecond=0)
    starts, ends = now - dt.timedelta(hours=1), now + dt.timedelta(days=2)

    async with chromium() as browser:
        b = Browsers(browser, base_url)
        try:
            page = await b.page("operator", phone=True, timezone_id=ZONE)
            await log_in(page, admin_email)
            await page.goto("/#/admin")
            await expect(page.get_by_role("heading", name="Promotions")).to_be_visible()
            await expect(page.get_by_test_id("bonus-tiers")).to_contain_text(
                "+5% from 50.00 USDT, +10% from 100.00 USDT")
            await expect(page.get_by_text("No promotions yet.")).to_be_visible()

            # The end before the start: the server refuses, the page says so in words.
            await fill_promotion(page, "Backwards", "10", ends, starts)
            await expect(page.get_by_role("alert")).to_have_text(
                "The end must be after the start.")
            await expect(page.get_by_text("No promotions yet.")).to_be_visible()

            await fill_promotion(page, "Weekend boost", "12.5", starts, ends, from_usdt="20")
            row = page.locator("[data-testid=promotions] tbody tr", has_text="Weekend boost")
            await expect(row).to_contain_text("active")
            await expect(row).to_contain_text("+12.5%")
            await expect(row).to_contain_text("20.00")
            # Shown in the operator's own time, not UTC (the minutes differ by 30).
            await expect(row.locator("time").first).to_contain_text(f":{starts.minute:02d}")
            await expect(page.get_by_role("alert")).to_have_count(0)
            await expect(page.get_by_role("form", name="Start a promotion")
                         .get_by_label("Name")).to_have_value("")
            await assert_fits_width(page)
            await shot(page, "operator-promotion-active")

            questions: list[str] = []

            async def answer(dialog, accept: bool) -> None:
                questions.append(dialog.message)
                await (dialog.accept() if accept else dialog.dismiss())

            page.once("dialog", lambda d: answer(d, False))
            await row.get_by_role("button", name="End now").click()
            await expect(row).to_contain_text("active")  # "no" leaves it running
            await expect(row.get_by_role("button", name="End now")).to_be_enabled()
            page.once("dialog", lambda d: answer(d, True))
            await row.get_by_role("button", name="End now").click()
            await expect(row).to_contain_text("over")
            await expect(row.get_by_role("button", name="End now")).to_have_count(0)
            assert len(questions) == 2 and "Weekend boost" in questions[1], questions

            # One that has not started is withdrawn by the same button.
            await fill_promotion(page, "Next week", "5", now + dt.timedelta(days=7),
                                 now + dt.timedelta(days=8))
            upcoming = page.locator("[data-testid=promotions] tbody tr", has_text="Next week")
            await expect(upcoming).to_contain_text("upcoming")
            page.once("dialog", lambda d: answer(d, True))
            await upcoming.get_by_role("button", name="End now").click()
            await expect(upcoming).to_contain_text("over")
            await assert_fits_width(page)
            await shot(page, "operator-promotions-over")
        finally:
            await b.close()
    assert unexpected(b.errors, (422, "/api/admin/promotions")) == [], "\n".join(b.errors)

    view = await api_get(base_url, admin_email, "/api/admin/promotions")
    by_name = {p["name"]: p for p in view["promotions"]}
    assert set(by_name) == {"Weekend boost", "Next week"}  # the refused one was not saved
    weekend = by_name["Weekend boost"]
    assert weekend["active"] is False
    assert Decimal(weekend["percent"]) == Decimal("12.5")
    assert Decimal(weekend["from_usdt"]) == Decimal(20)
    at = dt.datetime.fromisoformat
    # The local wall-clock start arrived as the same instant in UTC.
    assert at(weekend["starts_at"]) == starts
    assert starts < at(weekend["ends_at"]) < ends
    assert at(by_name["Next week"]["ends_at"]) < now + dt.timedelta(days=7)
