"""Deposits to a personal address in real headless Chromium against the real app on devnet:
the buyer's wallet shows their own address with its QR code and "send any amount of at least
3 USDT (TRC20)", and copies it; a transfer to it is credited without a claim; the operator page lists the
confirmed sweep with the TRX it burned. Screenshots go to artifacts/screenshots/."""

from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import expect

from meterchat.accounts import users as accounts
from meterchat.app import create_app
from meterchat.appkeys import DB, PASSWORDS
from tests.browser_pool import chromium
from tests.conftest import make_config, new_email
from tests.test_browser import PASSWORD, Browsers, devnet_faucet, open_app, shot, sign_up

pytestmark = pytest.mark.browser


async def test_buyer_sees_their_own_address_is_credited_and_the_operator_sees_the_sweep(
        aiohttp_server, tmp_path):
    app = create_app(make_config(
        tmp_path, devnet={"block_time_s": 0.2, "solidify_depth": 2},
        deposits={"mode": "address_per_user", "watcher_interval_s": 0.2},
        sweeps={"min_usdt": 5, "interval_s": 0.3}))
    server = await aiohttp_server(app)
    base_url = str(server.make_url("/")).rstrip("/")
    admin_email = new_email("admin")
    await app[DB].tx(accounts.insert_user_tx, admin_email, app[PASSWORDS].hash(PASSWORD),
                     "admin", "Olga Operator")
    async with chromium() as browser:
        b = Browsers(browser, base_url)
        try:
            page = await b.page("buyer", phone=True)
            await sign_up(page, "buyer", "Bea Buyer")
            await page.get_by_role("link", name="Wallet").click()
            await expect(page.get_by_test_id("deposit-instructions")).to_contain_text(
                "Send any amount of at least 3 USDT (TRC20)")
            address = (await page.get_by_test_id("deposit-address").inner_text()).strip()
            assert address.startswith("T") and len(address) == 34
            await expect(page.get_by_role("img", name="QR code of your deposit address")
                         ).to_be_visible()
            # Its copy button puts the address on the clipboard and says so.
            await page.get_by_role("button", name="Copy address").click()
            assert await page.evaluate("() => navigator.clipboard.readText()") == address
            await expect(page.locator("#toasts")).to_contain_text(
                "Address copied to the clipboard")
            await shot(page, "wallet-personal-address")
            await page.reload()
            await expect(page.get_by_test_id("deposit-address")).to_have_text(address)
            await devnet_faucet(app)(address, "7.5")
            await expect(page.get_by_test_id("header-balance")).to_contain_text(
                "750", timeout=60_000)
            await shot(page, "wallet-personal-credited")

            op = await b.page("operator")
            await open_app(op, "/#/login")
            await op.get_by_label("Email").fill(admin_email)
            await op.get_by_label("Password").fill(PASSWORD)
            await op.get_by_role("button", name="Log in").click()
            await expect(op.get_by_role("heading", name="Sweeps to the hot wallet")).to_be_visible()
            row = op.locator("tr", has_text=address)
            for _ in range(60):  # the sweeper tops the address up, then sweeps it
                if await row.count() and "confirmed" in (await row.inner_text()):
                    break
                await asyncio.sleep(0.5)
                await op.get_by_role("button", name="Refresh").last.click()
            await expect(row).to_contain_text("confirmed")
            await expect(row).to_contain_text("7.5")
            await expect(op.get_by_test_id("sweep-totals")).to_contain_text(
                "7.50 USDT moved to the hot wallet, 7.5285 TRX burned")
            await shot(op, "operator-sweeps")
            assert b.errors == [], b.errors
        finally:
            await b.close()
