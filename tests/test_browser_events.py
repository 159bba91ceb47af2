"""The operator page's Events section in real headless Chromium against the real app and a
real webhook receiver on loopback: a dead delivery is shown with its error, and the resend
button sends the same event again until it is delivered."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from meterchat.app import create_app
from meterchat.appkeys import DB
from meterchat.core.db import now_ms
from meterchat.events import outbox
from tests.browser_pool import chromium
from tests.conftest import eventually, make_config
from tests.events_helpers import FAST_EVENTS, SECRET, SECRET_ENV, Receiver, webhook
from tests.test_browser import Browsers, assert_fits_width, shot, unexpected
from tests.test_browser_economy import log_in, new_user

pytestmark = pytest.mark.browser


async def test_operator_sees_a_dead_event_and_resends_it(aiohttp_server, tmp_path,
                                                         monkeypatch):
    monkeypatch.setenv(SECRET_ENV, SECRET)
    receiver = await Receiver(answer=lambda got, event_id: 503).start()
    cfg = make_config(tmp_path, events={**FAST_EVENTS, "max_age_hours": 0.0001}).replace(
        webhooks=[webhook(receiver.url)])
    app = create_app(cfg)
    server = await aiohttp_server(app)
    base_url = str(server.make_url("/")).rstrip("/")
    _, admin_email = await new_user(app, "admin", "Olga Operator")
    e = await app[DB].tx(outbox.emit_tx, "deposit.unmatched",
                         {"txid": "ab" * 32, "amount_usdt": "7"}, now_ms())

    async def dead():
        row = await app[DB].fetchone("SELECT status FROM event_deliveries")
        return row is not None and row["status"] == "dead"

    await eventually(dead)
    async with chromium() as browser:
        b = Browsers(browser, base_url)
        try:
            page = await b.page("operator")
            await log_in(page, admin_email)
            await page.goto("/#/admin")
            section = page.get_by_role("region", name="Events", exact=True)
            await expect(section.get_by_role("heading", name="Events")).to_be_visible()
            await section.get_by_label("Events shown").select_option("dead")
            row = section.locator(f"tr[data-event-id='{e.id}']")
            await expect(row).to_contain_text("deposit.unmatched")
            await expect(row).to_contain_text("amount_usdt: 7")
            await expect(row.get_by_test_id("event-delivery")).to_contain_text("dead")
            await expect(row.get_by_test_id("event-delivery")).to_contain_text("HTTP 503")
            await expect(section).to_contain_text("1 dead")
            await assert_fits_width(page)
            await shot(page, "operator-events-dead")

            receiver.answer = lambda got, event_id: 200
            page.once("dialog", lambda d: d.accept())
            await row.get_by_role("button", name="Resend").click()

            async def delivered():
                return receiver.delivered_ids() == [e.id]

            await eventually(delivered)
            await section.get_by_label("Events shown").select_option("")
            await expect(row.get_by_test_id("event-delivery")).to_contain_text("delivered")
            await expect(section).to_contain_text("0 dead")
            await shot(page, "operator-events-resent")
        finally:
            await b.close()
            await receiver.stop()
    assert unexpected(b.errors) == [], "\n".join(b.errors)
