"""The operator finds people and things, in real headless Chromium against the real app on a
loopback port: a user searched by part of their display name (markup in it shown as text),
opened, their balance and calls read, banned from their page; the reports queue with a
report made by a buyer, one dismissed and one acted on with a ban. What the page did is read
back from the API."""

from __future__ import annotations

import time

import pyotp
import pytest
from playwright.async_api import Page, expect

from meterchat.accounts import two_factor
from meterchat.app import create_app
from meterchat.appkeys import DB
from meterchat.core.db import now_ms
from meterchat.money import billing
from tests.browser_pool import chromium
from tests.conftest import Actor, actor, admin_actor, fund, seller_online
from tests.test_accounts_2fa import next_code
from tests.test_browser import PASSWORD, Browsers, assert_fits_width, open_app, shot, unexpected
from tests.test_browser_economy import log_in, new_user
from tests.test_operator import config_for

pytestmark = pytest.mark.browser

# A display name a user chose to break the operator's page: it must show as these characters.
MARKUP_NAME = 'Mallory <img src=x onerror="window.pwned=1"><b>Buyer</b>'


async def ended_call(client, buyer: Actor, seller: Actor, tenths: int = 10) -> str:
    """A call of `tenths` billed segments at 600 tokens a minute, ended by the buyer."""
    resp = await buyer.post("/api/calls", {"seller_id": seller.id, "rate": 600})
    assert resp.status == 201, await resp.text()
    call_id = (await resp.json())["call"]["id"]
    assert (await seller.post(f"/api/calls/{call_id}/accept")).status == 200
    await client.app[DB].tx(billing.run_pass, [(int(call_id), tenths)], now_ms())
    assert (await buyer.post(f"/api/calls/{call_id}/end")).status == 200
    return call_id


async def operator_page(b: Browsers, client, phone: bool = False) -> Page:
    _, admin_email = await new_user(client.app, "admin", "Olga Operator")
    page = await b.page("operator", phone=phone)
    page.on("dialog", lambda d: d.accept())  # every action asks "are you sure?"
    await log_in(page, admin_email)
    await page.goto("/#/admin")
    await expect(page.get_by_role("heading", name="Find a user")).to_be_visible()
    return page


async def test_operator_finds_a_user_by_part_of_their_name_and_bans_them_there(
        aiohttp_client, tmp_path):
    client = await aiohttp_client(create_app(config_for(tmp_path)))
    base_url = str(client.make_url("/")).rstrip("/")
    seller = await seller_online(client, 600)
    buyer = await actor(client, display_name=MARKUP_NAME)
    await actor(client, display_name="Someone Else")
    await fund(client, buyer.id, 1000)
    call_id = await ended_call(client, buyer, seller)

    async with chromium() as browser:
        b = Browsers(browser, base_url)
        try:
            page = await operator_page(b, client)
            await page.get_by_label("Search users").fill("LLORY <img")
            await page.get_by_label("Search users").press("Enter")
            hits = page.locator("[data-testid=user-hits] tbody tr")
            await expect(hits).to_have_count(1)
            # The name is text: its markup made no element and ran nothing.
            await expect(hits.first).to_contain_text(MARKUP_NAME)
            await expect(hits.first).to_contain_text("400")  # 1000 funded, 600 charged
            await hits.first.get_by_role("button", name="Open").click()

            user = page.get_by_test_id("user-page")
            await expect(user.locator("h3.user-title")).to_have_text(MARKUP_NAME)
            await expect(user.get_by_test_id("user-balance")).to_contain_text("400 tokens")
            calls = user.locator("[data-testid=user-calls] tbody tr")
            await expect(calls).to_have_count(1)
            await expect(calls.first).to_contain_text("buyer")
            await expect(calls.first).to_contain_text("600")
            assert await page.locator("img[src='x']").count() == 0
            assert await page.locator("b", has_text="Buyer").count() == 0
            assert await page.evaluate("window.pwned") is None
            await calls.first.get_by_role("button", name=f"Record #{call_id}").click()
            record = page.get_by_test_id("call-record")
            await expect(record.get_by_role("heading", name=f"Call #{call_id}")).to_be_visible()
            await expect(record).to_contain_text("10 segments billed")
            await assert_fits_width(page)
            await shot(page, "operator-user-page")

            # The calls list: nothing live now; the recent one opens the same record.
            calls_section = page.get_by_test_id("calls-section")
            await expect(calls_section).to_contain_text("No call is under way.")
            await calls_section.get_by_label("Calls").select_option("recent")
            listed = calls_section.locator("[data-testid=calls-list] tbody tr")
            await expect(listed).to_have_count(1)
            await expect(listed.first).to_contain_text(MARKUP_NAME)
            await expect(listed.first).to_contain_text(seller.user["display_name"])
            await calls_section.get_by_role("button", name="Close").click()
            await listed.first.get_by_role("button", name=f"Record #{call_id}").click()
            await expect(record).to_contain_text("call_minute")

            # No reason, no ban: the page says why.
            await user.get_by_role("button", name="Ban").click()
            await expect(page.get_by_text("Write why: the reason is kept in the audit log."
                                          ).first).to_be_visible()
            await user.get_by_label("Ban reason").fill("chargeback fraud")
            await user.get_by_role("button", name="Ban").click()
            await expect(user.get_by_text("banned", exact=True)).to_be_visible()
            await expect(user.get_by_role("button", name="Unban")).to_be_visible()
            await expect(user.locator("[data-testid=user-audit_log] tbody tr").first
                         ).to_contain_text("chargeback fraud")
            # The search result says so too.
            await expect(hits.first).to_contain_text("banned")
            await shot(page, "operator-user-banned")
        finally:
            await b.close()
    assert unexpected(b.errors) == [], "\n".join(b.errors)

    admin = await admin_actor(client)
    page_json = await (await admin.get(f"/api/admin/users/{buyer.id}")).json()
    assert page_json["user"]["banned"] is True
    assert page_json["user"]["ban_reason"] == "chargeback fraud"
    assert page_json["audit_log"][0]["action"] == "user.ban"


async def test_operator_dismisses_one_report_and_bans_on_another(aiohttp_client, tmp_path):
    client = await aiohttp_client(create_app(config_for(tmp_path)))
    base_url = str(client.make_url("/")).rstrip("/")
    rude = await seller_online(client, 600)
    scammer = await actor(client, "seller", display_name="Scam <script>Sally</script>")
    buyer = await actor(client, display_name="Bea Buyer")
    await fund(client, buyer.id, 1000)
    call_id = await ended_call(client, buyer, rude, tenths=3)
    assert (await buyer.post(f"/api/users/{rude.id}/report",
                             {"reason": "was rude, then hung up"})).status == 204
    assert (await buyer.post(f"/api/users/{scammer.id}/report",
                             {"reason": "asked me to pay <b>off-site</b>"})).status == 204

    async with chromium() as browser:
        b = Browsers(browser, base_url)
        try:
            page = await operator_page(b, client, phone=True)
            queue = page.locator("[data-testid=reports-queue] tbody tr")
            await expect(queue).to_have_count(2)
            about_rude = queue.filter(has_text="was rude, then hung up")
            about_scam = queue.filter(has_text="asked me to pay <b>off-site</b>")
            await expect(about_rude).to_contain_text("Bea Buyer")
            await expect(about_rude).to_contain_text(rude.user["display_name"])
            # The report after a call between the two names that call.
            await expect(about_rude.get_by_role("button", name=f"Call record #{call_id}")
                         ).to_be_visible()
            await expect(about_scam).to_contain_text("Scam <script>Sally</script>")
            await expect(about_scam).to_contain_text("—")  # no call between them
            await assert_fits_width(page)
            await shot(page, "operator-reports-queue")

            await about_rude.get_by_role("button", name="Dismiss").click()
            await expect(queue).to_have_count(1)
            await about_scam.get_by_label("Ban reason").fill("off-site payments")
            await about_scam.get_by_role("button", name="Ban").click()
            await expect(page.get_by_text("No open reports.")).to_be_visible()
        finally:
            await b.close()
    assert unexpected(b.errors) == [], "\n".join(b.errors)

    admin = await admin_actor(client)
    closed = (await (await admin.get("/api/admin/reports?status=closed")).json())["reports"]
    assert {r["reported_id"]: r["outcome"] for r in closed} == {rude.id: "dismissed",
                                                               scammer.id: "banned"}
    scam = (await (await admin.get(f"/api/admin/users/{scammer.id}")).json())["user"]
    assert scam["banned"] is True and scam["ban_reason"] == "off-site payments"
    assert (await (await admin.get(f"/api/admin/users/{rude.id}")).json())["user"][
        "banned"] is False


async def test_an_operator_with_two_factor_gives_a_code_to_ban_from_a_users_page(
        aiohttp_client, tmp_path):
    # Every operator write asks for a code (none is kept fresh).
    client = await aiohttp_client(create_app(config_for(
        tmp_path, security={"require_2fa_for_admins": True, "admin_otp_fresh_minutes": 0})))
    base_url = str(client.make_url("/")).rstrip("/")
    admin_id, admin_email = await new_user(client.app, "admin", "Olga Operator")
    secret = await client.app[DB].tx(two_factor.setup_tx, int(admin_id))
    earlier = pyotp.TOTP(secret).at(time.time() - 30)  # leaves the present code for login
    assert await client.app[DB].tx(two_factor.enable_tx, int(admin_id), earlier, time.time(),
                                   now_ms())
    target = await actor(client, display_name="Troll Tom")

    async with chromium() as browser:
        b = Browsers(browser, base_url)
        try:
            page = await b.page("operator")
            asked: list[str] = []

            async def answer(dialog) -> None:
                asked.append(dialog.type)
                await (dialog.accept(next_code(secret)) if dialog.type == "prompt"
                       else dialog.accept())

            page.on("dialog", answer)
            await open_app(page, "/#/login")
            await page.get_by_label("Email").fill(admin_email)
            await page.get_by_label("Password").fill(PASSWORD)
            await page.get_by_role("button", name="Log in").click()
            await page.get_by_label("Code from your authenticator app").fill(
                pyotp.TOTP(secret).now())
            await page.get_by_role("button", name="Log in").click()
            await page.goto("/#/admin")
            await page.get_by_label("Search users").fill("troll")
            await page.get_by_role("button", name="Search").click()
            await page.locator("[data-testid=user-hits] tbody tr").first.get_by_role(
                "button", name="Open").click()
            user = page.get_by_test_id("user-page")
            await user.get_by_label("Ban reason").fill("trolling")
            await user.get_by_role("button", name="Ban").click()
            await expect(user.get_by_role("button", name="Unban")).to_be_visible()
            assert asked == ["confirm", "prompt"]
        finally:
            await b.close()
    # The login without a code (401) and the ban without one (403) were the server asking.
    assert unexpected(b.errors, 401, 403) == [], "\n".join(b.errors)
    admin = await admin_actor(client)
    user_json = (await (await admin.get(f"/api/admin/users/{target.id}")).json())["user"]
    assert user_json["banned"] is True and user_json["ban_reason"] == "trolling"
