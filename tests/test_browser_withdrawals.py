"""The seller's withdrawal form with an "auto" network fee, in real headless Chromium against
the real app and its devnet: the fee and the net are shown (read from the chain for the
address typed) before the Withdraw button is pressed, and the withdrawal is charged exactly
that fee. Helpers come from tests/test_browser.py and tests/test_browser_economy.py."""

from __future__ import annotations

from decimal import Decimal

import pytest
from playwright.async_api import expect
from tronpy.keys import PrivateKey

from meterchat.app import create_app
from meterchat.appkeys import DB
from tests.browser_pool import chromium
from tests.conftest import chain_config, fund_tokens
from tests.test_browser import Browsers, unexpected
from tests.test_browser_economy import log_in, new_user

pytestmark = pytest.mark.browser


async def test_seller_sees_the_auto_fee_before_confirming_and_is_charged_it(
        aiohttp_server, tmp_path):
    app = create_app(chain_config(tmp_path, withdrawals={
        "network_fee_usdt": "auto", "trx_usdt_price": Decimal("0.25")}))
    server = await aiohttp_server(app)
    base_url = str(server.make_url("/")).rstrip("/")
    seller_id, email = await new_user(app, "seller", "Sam Seller")
    await fund_tokens(app, seller_id, "750")
    dest = PrivateKey.random().public_key.to_base58check_address()
    async with chromium() as browser:
        b = Browsers(browser, base_url)
        try:
            page = await b.page("seller")
            await log_in(page, email)
            await page.goto("/#/dashboard")
            await page.get_by_label("Tokens", exact=True).fill("400")
            preview = page.get_by_test_id("withdraw-preview")
            await expect(preview).to_contain_text("Enter your address")
            await page.get_by_label("TRON address (TRC20)").fill(dest)
            # A fresh address: 130,285 energy x 100 sun + 345 bytes x 1,000 sun = 13.3735 TRX
            # at 0.25 = 3.343375, and the platform's 0.5.
            await expect(preview).to_contain_text(
                "You receive 0.156625 USDT after fees of 3.843375 USDT")
            await expect(preview).to_contain_text(
                "130,285 energy × 100 sun + 345 bytes × 1,000 sun = 13.3735 TRX")
            await page.get_by_role("button", name="Withdraw", exact=True).click()
            row = page.locator("[data-testid=withdrawals] tbody tr").first
            await expect(row).to_contain_text("400")
            assert unexpected(b.errors) == []
        finally:
            await b.close()
    row = await app[DB].fetchone("SELECT fee_musdt, net_musdt FROM withdrawals")
    assert (row["fee_musdt"], row["net_musdt"]) == (3_843_375, 156_625)


async def test_operator_sees_the_trx_costs_and_the_runway(aiohttp_server, tmp_path):
    from meterchat.accounts import users as accounts
    from meterchat.appkeys import PASSWORDS
    from tests.conftest import Actor, login
    from tests.test_browser import PASSWORD
    from tests.test_operator_costs import withdraw_and_confirm

    app = create_app(chain_config(tmp_path, withdrawals={"sender_interval_s": 0.1}))
    server = await aiohttp_server(app)
    base_url = str(server.make_url("/")).rstrip("/")
    seller_id, seller_email = await new_user(app, "seller", "Sam Seller")
    await fund_tokens(app, seller_id, "750")
    admin_email = "ops-costs@example.com"
    await app[DB].tx(accounts.insert_user_tx, admin_email, app[PASSWORDS].hash(PASSWORD),
                     "admin", "Olga Operator")
    from aiohttp import ClientSession

    async with ClientSession(base_url) as http:
        session = await login(http, seller_email, PASSWORD)
        seller = Actor(http, session["user"], session["token"])
        dest = PrivateKey.random().public_key.to_base58check_address()
        await withdraw_and_confirm(http, seller, dest, "400")  # a fresh address: 13.0285 TRX
    async with chromium() as browser:
        b = Browsers(browser, base_url)
        try:
            page = await b.page("operator")
            await log_in(page, admin_email)
            await expect(page.get_by_role("heading", name="Operator")).to_be_visible()
            await expect(page.get_by_test_id("trx-spent")).to_have_text("13.0285 TRX")
            await expect(page.get_by_test_id("trx-runway")).to_contain_text("days")
            table = page.get_by_test_id("costs-table")
            await expect(table).to_contain_text("1 withdrawal")
            await expect(table).to_contain_text("5.2114")  # TRX per USDT: 13.0285 / 2.5
            assert unexpected(b.errors) == []
        finally:
            await b.close()
