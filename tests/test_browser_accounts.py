"""The account pages in real headless Chromium (issue 15): forgot password -> the mail a real
SMTP server on loopback received -> its link -> a new password -> log in; and turning on
two-factor, then a login that asks for the code."""

from __future__ import annotations

import asyncio
import time

import pyotp
import pytest
from playwright.async_api import expect

from meterchat.app import create_app
from tests.browser_pool import chromium
from tests.conftest import make_config
from tests.mail_helpers import SmtpServer, free_port, text_part
from tests.test_browser import PASSWORD, Browsers, open_app, shot, sign_up, unexpected

pytestmark = pytest.mark.browser

NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture
def smtp():
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
async def browsers(aiohttp_server, tmp_path, smtp):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    mail = {**smtp.mail_config, "public_url": base}
    await aiohttp_server(create_app(make_config(tmp_path, mail=mail)), port=port)
    async with chromium() as browser:
        b = Browsers(browser, base)
        try:
            yield b
        finally:
            await b.close()


async def log_out(page) -> None:
    await page.get_by_role("button", name="Log out", exact=True).click()
    await expect(page.get_by_role("heading", name="Log in")).to_be_visible()


async def test_forgot_password_mail_reset_and_log_in(browsers, smtp):
    page = await browsers.page("forgot")
    email = await sign_up(page, "buyer", "Forgetful Fay")
    await log_out(page)
    await page.get_by_role("link", name="Forgot your password?").click()
    await page.get_by_label("Email").fill(email)
    await page.get_by_role("button", name="Send me a reset link").click()
    await expect(page.get_by_test_id("forgot-done")).to_contain_text("on its way")
    await shot(page, "accounts-forgot")

    mails = await asyncio.to_thread(smtp.inbox.wait_for, email, 2)
    [reset] = [m for m in mails if m["Subject"] == "Reset your password"]
    link = next(w for w in text_part(reset).split() if "/#/reset?token=" in w)
    assert link.startswith(browsers.base_url)
    await open_app(page, link)
    await page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    await page.get_by_label("New password again").fill(NEW_PASSWORD)
    await shot(page, "accounts-reset")
    await page.get_by_role("button", name="Set the new password").click()
    await expect(page.get_by_role("heading", name="Log in")).to_be_visible()

    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(NEW_PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("button", name="Log out")).to_be_visible()

    # The link works once.
    await log_out(page)
    await open_app(page, link)
    await page.get_by_label("New password", exact=True).fill("yet another passphrase")
    await page.get_by_label("New password again").fill("yet another passphrase")
    await page.get_by_role("button", name="Set the new password").click()
    await expect(page.locator(".form-error")).to_contain_text("invalid, expired or was used")
    assert unexpected(browsers.errors, 400) == []


async def test_turn_on_two_factor_then_log_in_with_a_code(browsers):
    page = await browsers.page("twofactor")
    email = await sign_up(page, "seller", "Careful Cam")
    await page.get_by_role("link", name="Account").click()
    await expect(page.get_by_role("heading", name="Account")).to_be_visible()
    await page.get_by_test_id("2fa-setup").click()
    secret = await page.get_by_test_id("2fa-secret").inner_text()
    await shot(page, "accounts-2fa-setup")
    await page.get_by_label("The 6-digit code your app shows").fill(pyotp.TOTP(secret).now())
    await page.get_by_role("button", name="Turn on").click()
    await expect(page.get_by_test_id("recovery-codes").locator("li")).to_have_count(10)
    await shot(page, "accounts-2fa-recovery-codes")
    await page.get_by_role("button", name="I have saved them").click()
    await expect(page.get_by_test_id("twofactor")).to_contain_text("on")

    await log_out(page)
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    code = page.get_by_label("Code from your authenticator app (or a recovery code)")
    await expect(code).to_be_visible()
    await expect(page.locator(".form-error")).to_contain_text("Two-factor authentication is on")
    await code.fill(pyotp.TOTP(secret).at(time.time() + 30))
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("button", name="Log out")).to_be_visible()
    assert unexpected(browsers.errors, 401) == []
