"""The terms page in real headless Chromium: linked from the sign-up's terms box, the default
terms without an operator file, the operator's terms.md when there is one, shown as text
(markup in the file stays inert). Helpers come from tests/test_browser.py."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from meterchat.app import create_app
from meterchat.web.terms import operator_terms_path
from tests.browser_pool import chromium
from tests.conftest import make_config
from tests.test_browser import Browsers, assert_fits_width, open_app, shot, unexpected

pytestmark = pytest.mark.browser


async def test_sign_up_links_to_the_default_terms_and_then_the_operators(
        aiohttp_server, tmp_path):
    config = make_config(tmp_path)
    server = await aiohttp_server(create_app(config))
    async with chromium() as browser:
        b = Browsers(browser, str(server.make_url("/")).rstrip("/"))
        try:
            page = await b.page("guest", phone=True)
            await open_app(page, "/#/signup")
            await page.get_by_label("Display name").fill("Tess Terms")
            async with page.context.expect_page() as opened:
                await page.get_by_role("link", name="terms of service").click()
            terms = await opened.value
            await terms.wait_for_selector("html[data-ready='1']")
            assert terms.url.endswith("/#/terms")
            await expect(terms.get_by_role("heading", level=1)).to_have_text("Terms of service")
            for heading in ("18 or older only", "What a minute costs", "Refunds and disputes",
                            "Prohibited content and conduct", "Privacy"):
                await expect(terms.get_by_role("heading", name=heading)).to_be_visible()
            await expect(terms.get_by_test_id("terms")).to_contain_text("100 tokens are 1 USDT")
            await expect(terms.get_by_test_id("terms")).to_have_attribute("data-source",
                                                                        "default")
            await assert_fits_width(terms)
            await shot(terms, "terms-default-phone")
            # The sign-up form kept what was typed.
            await expect(page.get_by_label("Display name")).to_have_value("Tess Terms")

            operator_terms_path(config).write_text(
                "# House rules\n\nBe kind.\n<img src=x onerror=\"window.pwned=1\">\n\n"
                "## Money\n\n- one\n- two\n", encoding="utf-8")
            await terms.reload()
            await terms.wait_for_selector("html[data-ready='1']")
            box = terms.get_by_test_id("terms")
            await expect(box).to_have_attribute("data-source", "operator")
            await expect(terms.get_by_role("heading", level=1)).to_have_text("House rules")
            await expect(terms.get_by_role("heading", name="Money")).to_be_visible()
            await expect(box.locator("li")).to_have_count(2)
            await expect(box).to_contain_text('Be kind. <img src=x onerror="window.pwned=1">')
            assert await box.locator("img").count() == 0
            assert await terms.evaluate("() => window.pwned === undefined")
            await shot(terms, "terms-operator-phone")
        finally:
            await b.close()
    assert unexpected(b.errors) == [], "\n".join(b.errors)
