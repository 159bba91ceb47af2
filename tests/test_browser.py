"""The browser client in real headless Chromium (Debian's chromium-headless-shell, driven by
Playwright) against the real app on a loopback port. Each test saves screenshots of the pages
it visits into artifacts/screenshots/ and fails on any console error."""

from __future__ import annotations

import asyncio
import re
import time
from decimal import Decimal
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from meterchat.app import create_app
from tests.browser_pool import chromium
from tests.conftest import eventually, make_config, new_email

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"
PASSWORD = "correct horse battery"
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


def unexpected(errors: list[str], *allowed: int | tuple[int, str]) -> list[str]:
    """Console errors minus the browser's own "Failed to load resource" lines for answers the
    test provoked on purpose: a status anywhere (a wrong password's 401), or a status from
    one path only (a TXID pasted before its block: 404 from the claim, then a retry)."""
    out = []
    for e in errors:
        m = re.search(r"Failed to load resource: .*status of (\d+).*'url': '[^']*?//[^/]+(/[^'?]*)", e)
        if m:
            status, path = int(m.group(1)), m.group(2)
            if status in allowed or (status, path) in allowed:
                continue
        out.append(e)
    return out


class Browsers:
    """A test's browser contexts in the shared Chromium (tests/browser_pool.py), each as
    fresh as a new profile, and the console errors every page produced."""

    def __init__(self, browser: Browser, base_url: str) -> None:
        self.browser = browser
        self.base_url = base_url
        self.contexts: list[BrowserContext] = []
        self.errors: list[str] = []

    async def page(self, name: str, *, phone: bool = False,
                   timezone_id: str | None = None, bypass_csp: bool = False,
                   locale: str = "en-US") -> Page:
        ctx = await self.browser.new_context(
            base_url=self.base_url,
            viewport=PHONE if phone else DESKTOP,
            is_mobile=phone,
            has_touch=phone,
            device_scale_factor=2 if phone else 1,
            permissions=["camera", "microphone", "clipboard-read", "clipboard-write"],
            timezone_id=timezone_id,
            # The browser's language (Accept-Language, navigator.languages): the pages' too.
            locale=locale,
            # Only for tests that inject a checker (axe-core) as an inline script.
            bypass_csp=bypass_csp,
        )
        ctx.set_default_timeout(15_000)
        self.contexts.append(ctx)
        page = await ctx.new_page()

        def on_console(msg, who=name) -> None:
            if msg.type == "error":
                self.errors.append(f"{who} console: {msg.text} @ {msg.location}")

        page.on("console", on_console)
        page.on("pageerror", lambda exc, who=name: self.errors.append(f"{who} page error: {exc}"))
        return page

    async def close(self) -> None:
        for ctx in self.contexts:
            await ctx.close()


@pytest.fixture
async def app_url(aiohttp_server, tmp_path):
    config = make_config(tmp_path)
    server = await aiohttp_server(create_app(config))
    return str(server.make_url("/")).rstrip("/")


@pytest.fixture
async def browsers(app_url):
    async with chromium() as browser:
        b = Browsers(browser, app_url)
        try:
            yield b
        finally:
            await b.close()


async def shot(page: Page, name: str, *, full_page: bool = True) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    if full_page:
        # From the top: a sticky header would otherwise be drawn where the page was scrolled.
        await page.evaluate("window.scrollTo(0, 0)")
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)


async def open_app(page: Page, path: str = "/") -> None:
    await page.goto(path)
    await page.wait_for_selector("html[data-ready='1']")


async def sign_up(page: Page, role: str, name: str) -> str:
    email = new_email(role)
    await open_app(page, "/#/signup")
    await page.get_by_label("I want to earn" if role == "seller" else "I want to talk").check()
    await page.get_by_label("Display name").fill(name)
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_label("I am 18 or older").check()
    await page.get_by_label("I accept the terms of service").check()
    await page.get_by_role("button", name="Create account").click()
    await expect(page.get_by_role("button", name="Log out")).to_be_visible()
    return email


async def wait_until(page: Page, js: str, arg=None, *, timeout_s: float = 30,
                     every_s: float = 0.2):
    """Evaluate an async page function until its answer is truthy. (Playwright's
    wait_for_function takes the Promise an async function returns as truthy at once.)"""
    deadline = time.monotonic() + timeout_s
    while True:
        answer = await page.evaluate(js, arg)
        if answer:
            return answer
        assert time.monotonic() < deadline, f"still false after {timeout_s} s: {js}"
        await asyncio.sleep(every_s)


async def assert_fits_width(page: Page) -> None:
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"page is {overflow}px wider than the screen"


async def test_served_page_is_self_contained_with_security_headers(aiohttp_client, tmp_path):
    client = await aiohttp_client(create_app(make_config(tmp_path)))
    resp = await client.get("/")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    html = await resp.text()
    # No CDN: every script and stylesheet comes from this origin.
    assert not re.search(r"(src|href)=\"https?://", html)
    js = await client.get("/static/js/app.js")
    assert js.status == 200 and "javascript" in js.content_type
    assert (await client.get("/static/../server/config.py")).status in (403, 404)
    cfg = await (await client.get("/api/client-config")).json()
    assert cfg["network"] == "devnet" and cfg["explorer_tx_url"] == ""
    assert cfg["withdrawal_fees_musdt"] == 1_500_000
    # Pages ask only for what this server serves (the operator's tools may come later).
    assert set(cfg["features"]) == {"disputes", "admin_disputes", "bans", "reconcile"}
    assert all(isinstance(v, bool) for v in cfg["features"].values())
    assert (await client.get("/api/admin/disputes")).status == (
        401 if cfg["features"]["admin_disputes"] else 404)


async def test_sign_up_log_out_and_log_in_again_without_console_errors(browsers: Browsers):
    page = await browsers.page("buyer")
    await open_app(page)
    await expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    await shot(page, "login")
    await page.get_by_role("link", name="Create an account").click()
    await expect(page.get_by_role("heading", name="Create your account")).to_be_visible()
    await shot(page, "signup")

    email = await sign_up(page, "buyer", "Ben Buyer")
    await expect(page.get_by_role("heading", name="Sellers")).to_be_visible()
    await expect(page.get_by_test_id("header-balance")).to_have_text(re.compile(r"^0\s*tokens"))
    await shot(page, "sellers-empty")

    await page.get_by_role("link", name="Wallet").click()
    await expect(page.get_by_role("heading", name="Wallet")).to_be_visible()
    await expect(page.get_by_test_id("balance-available")).to_contain_text("0")
    await expect(page.get_by_role("heading", name="Top up with USDT (TRC20)")).to_be_visible()
    await shot(page, "wallet-buyer")

    await page.get_by_role("button", name="Log out").click()
    await expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill("wrong password here")
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("alert")).to_contain_text("wrong email or password")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("heading", name="Sellers")).to_be_visible()
    # A reload keeps the session (cookie) and the page.
    await page.reload()
    await expect(page.get_by_role("heading", name="Sellers")).to_be_visible()
    # 401 on the wrong-password attempt is expected; anything else is a bug.
    assert unexpected(browsers.errors, 401) == []


async def test_signup_errors_are_shown_in_words(browsers: Browsers):
    page = await browsers.page("newcomer")
    await open_app(page, "/#/signup")
    await page.get_by_label("Display name").fill("Shorty")
    await page.get_by_label("Email").fill(new_email())
    await page.get_by_label("Password").fill("short")
    await page.get_by_role("button", name="Create account").click()
    await expect(page.get_by_role("alert")).to_contain_text("at least 10 characters")
    await shot(page, "signup-error")
    assert unexpected(browsers.errors, 422) == []


async def test_seller_dashboard_on_a_phone_fits_the_screen(browsers: Browsers):
    page = await browsers.page("seller-phone", phone=True)
    await sign_up(page, "seller", "Sofia Seller")
    await expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    await expect(page.get_by_role("heading", name="Your profile")).to_be_visible()
    await expect(page.get_by_label("Rate (tokens per minute)")).to_be_visible()
    # The earnings chart is an SVG drawn by the server, loaded from this origin.
    chart = page.get_by_role("img", name="Earnings per day over the last 30 days")
    await expect(chart).to_be_visible()
    # Polled from here with a function, not a string: wait_for_function's string predicate
    # is evaluated in the page, which the page's Content-Security-Policy may refuse.
    async def chart_loaded() -> bool:
        return bool(await page.evaluate(
            "() => { const i = document.querySelector('img.chart');"
            " return !!i && i.naturalWidth > 0; }"))

    await eventually(chart_loaded, timeout_s=30)
    await expect(page.get_by_test_id("minutes-billed")).to_have_text("0.0")
    await assert_fits_width(page)
    await shot(page, "phone-dashboard")
    await page.get_by_role("link", name="Wallet").click()
    await expect(page.get_by_role("heading", name="Ledger")).to_be_visible()
    await assert_fits_width(page)
    await shot(page, "phone-wallet-seller")
    await page.get_by_role("button", name="Log out").click()
    await expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    await assert_fits_width(page)
    await shot(page, "phone-login")
    assert unexpected(browsers.errors) == [], "\n".join(browsers.errors)


async def test_a_page_still_loading_does_not_cover_the_one_clicked_since(browsers: Browsers):
    page = await browsers.page("impatient-seller")
    await sign_up(page, "seller", "Quick Quinn")
    await expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    # The dashboard's first request is held (a slow server): the seller clicks on meanwhile.
    release = asyncio.Event()

    async def held(route) -> None:
        await release.wait()
        await route.continue_()

    await page.route("**/api/seller/profile", held)
    await page.get_by_role("link", name="Calls").click()
    await expect(page.get_by_role("heading", name="Calls", exact=True)).to_be_visible()
    await page.get_by_role("link", name="Dashboard").click()
    await page.get_by_role("link", name="Account").click()
    await expect(page.get_by_role("heading", name="Account")).to_be_visible()
    # Once answered, the dashboard's render runs on to its next requests: it has painted by then.
    async with page.expect_request("**/api/seller/stats"):
        release.set()
    await expect(page.get_by_role("heading", name="Account")).to_be_visible()
    await expect(page.get_by_role("heading", name="Dashboard")).to_have_count(0)
    assert unexpected(browsers.errors) == []


async def test_keyboard_alone_can_sign_up(browsers: Browsers):
    page = await browsers.page("keyboard")
    await open_app(page, "/#/signup")
    # The display name has focus first; Tab walks the form in reading order.
    await page.keyboard.type("Kim Keys")
    await page.keyboard.press("Tab")
    await page.keyboard.type(new_email("kbd"))
    await page.keyboard.press("Tab")
    await page.keyboard.type(PASSWORD)
    await page.keyboard.press("Tab")  # past the link to the terms, read before the boxes
    for _ in ("adult", "terms"):  # the 18+ and terms boxes, ticked with Space
        await page.keyboard.press("Tab")
        await page.keyboard.press("Space")
    await page.keyboard.press("Tab")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Sellers")).to_be_visible()
    assert unexpected(browsers.errors) == [], "\n".join(browsers.errors)


async def test_camera_refusal_gets_a_clear_message(browsers: Browsers, app_url):
    page = await browsers.page("no-camera")
    await sign_up(page, "buyer", "Nora Nocam")
    await page.context.clear_permissions()
    message = await page.evaluate(
        """async () => {
            const { getLocalMedia } = await import('/static/js/rtc.js');
            const orig = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
            navigator.mediaDevices.getUserMedia = () =>
                Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));
            try { await getLocalMedia(); return 'no error'; }
            catch (e) { return e.message; }
            finally { navigator.mediaDevices.getUserMedia = orig; }
        }"""
    )
    assert "refused" in message and "settings" in message
    missing = await page.evaluate(
        """async () => {
            const { getLocalMedia } = await import('/static/js/rtc.js');
            navigator.mediaDevices.getUserMedia = () =>
                Promise.reject(new DOMException('Requested device not found', 'NotFoundError'));
            try { await getLocalMedia(); return 'no error'; } catch (e) { return e.message; }
        }"""
    )
    assert "No camera or microphone" in missing
    assert unexpected(browsers.errors) == [], "\n".join(browsers.errors)


async def test_money_is_shown_from_decimal_strings_without_floats(browsers: Browsers):
    page = await browsers.page("money")
    await open_app(page)
    out = await page.evaluate(
        """async () => {
            const m = await import('/static/js/money.js');
            return [m.tokens('1012.3456'), m.tokensToUsdt('1012.3456'), m.tokensToUsdt('0.0001'),
                    m.tokens('1000'), m.usdt('10.000317'), m.tokensToUsdt('-12.5'),
                    m.musdtToUsdt(2500000), String(m.tokensToMusdt('400'))];
        }"""
    )
    assert out == ["1,012.3456", "10.123456", "0.000001", "1,000", "10.000317", "-0.125",
                   "2.5", "4000000"]


async def test_every_end_reason_is_explained_in_words(browsers: Browsers):
    page = await browsers.page("reasons")
    await open_app(page)
    said = await page.evaluate(
        """async () => {
            const { endReason } = await import('/static/js/pages/call.js');
            const out = {};
            for (const r of ['declined', 'missed', 'cancelled', 'buyer_hangup', 'seller_hangup',
                             'spend_cap', 'insufficient_funds', 'connection_lost', 'failed',
                             'seller_offline', 'banned', 'server_shutdown', 'too_many_pauses']) {
                out[r] = [endReason({ end_reason: r }, 'buyer'), endReason({ end_reason: r }, 'seller')];
            }
            out.refunded = endReason({ end_reason: 'connection_lost', refunded: '12.5' }, 'buyer');
            return out;
        }""")
    assert said["declined"][0] == "The seller declined the call. You were not charged."
    assert "did not answer in time" in said["missed"][0]
    assert "spending cap" in said["spend_cap"][0]
    assert "balance ran out" in said["insufficient_funds"][0]
    assert "connection was lost" in said["connection_lost"][0]
    assert said.pop("refunded").endswith("12.50 tokens were refunded to you.")
    for reason, (to_buyer, to_seller) in said.items():
        # A sentence for each side, never the raw code (the fallback says "ended (code)").
        for text in (to_buyer, to_seller):
            assert "(" not in text and "_" not in text and text.endswith("."), (reason, text)


# ---- The whole story: two people, one call, real money movements on devnet. ---------------

STORY_RATE = 6000  # tokens/min: a few seconds of live video earn enough for a withdrawal
# 7,000 tokens: enough to start (one minute); under a minute left after 10 s live, and
# 70 s in all, far more than the story needs.
STORY_TOPUP_USDT = "70"


def story_config(tmp_path: Path):
    return make_config(
        tmp_path,
        billing={"tick_interval_s": 0.2},
        devnet={"block_time_s": 0.2, "solidify_depth": 2},
        deposits={"watcher_interval_s": 0.2},
        withdrawals={"sender_interval_s": 0.2},
    )


async def seller_sets_rate_and_goes_online(page: Page, rate: int) -> None:
    await expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    await page.get_by_label("Rate (tokens per minute)").fill(str(rate))
    await page.get_by_label("About you").fill("Friendly English conversation practice.")
    await page.get_by_label("Tags").fill("english, conversation")
    await page.get_by_label("Languages").fill("English, German")
    await page.get_by_role("button", name="Save profile").click()
    await expect(page.get_by_text("Profile saved")).to_be_visible()
    toggle = page.get_by_role("switch")
    await toggle.click()
    await expect(toggle).to_have_attribute("aria-checked", "true")
    await shot(page, "dashboard-online")


async def buyer_tops_up(page: Page, faucet, usdt: str) -> None:
    await page.get_by_role("link", name="Wallet").click()
    await page.get_by_label("Amount in USDT").fill(usdt)
    await page.get_by_role("button", name="Get payment details").click()
    exact = (await page.get_by_test_id("exact-amount").inner_text()).strip()
    address = (await page.get_by_test_id("deposit-address").inner_text()).strip()
    assert exact.startswith(usdt) and exact != usdt  # the unique suffix
    await expect(page.get_by_role("img", name="QR code of the deposit address")).to_be_visible()
    await shot(page, "wallet-topup")
    txid = await faucet(address, exact)
    await page.get_by_label("Transaction ID (TXID)").fill(txid)
    await page.get_by_role("button", name="Check transfer").click()
    await expect(page.get_by_test_id("deposit-status")).to_contain_text("Credited", timeout=60_000)
    # The exact amount, suffix included, is credited: its whole tokens show in the header.
    whole = int(Decimal(exact) * 100)
    await expect(page.get_by_test_id("header-balance")).to_contain_text(f"{whole:,}")
    await shot(page, "wallet-credited")


async def buyer_calls(page: Page, seller_name: str, rate: int, *, shots: bool = True) -> None:
    # exact: the page of a call that just ended also has a "Back to sellers" link.
    await page.get_by_role("link", name="Sellers", exact=True).click()
    card = page.locator("article.seller", has_text=seller_name)
    await expect(card).to_contain_text(f"{rate}")
    await page.get_by_label("Tag").fill("cooking")
    await expect(card).to_be_hidden()
    await page.get_by_label("Tag").fill("english")
    await expect(card).to_be_visible()
    if shots:
        await shot(page, "sellers")
    await card.get_by_role("link", name=f"Call {seller_name}").click()
    await expect(page.get_by_test_id("call-rate")).to_contain_text(str(rate))
    start = page.get_by_role("button", name=f"Start call at {rate} tokens/min")
    await expect(page.locator(".preview video")).to_be_visible()
    await expect(start).to_be_disabled()  # the rate is acknowledged first
    await page.get_by_label("I agree to pay").check()
    await expect(start).to_be_enabled()
    await page.wait_for_function(
        "() => { const v = document.querySelector('.preview video'); return v.readyState >= 2; }")
    if shots:
        await shot(page, "call-precall")
    await start.click()
    await expect(page.get_by_test_id("call-state")).to_have_text("Ringing")


async def seller_accepts(page: Page, buyer_name: str) -> None:
    dialog = page.get_by_role("dialog", name="Incoming call")
    await expect(dialog).to_be_visible()
    await expect(dialog).to_contain_text(f"{buyer_name} wants to talk")
    await shot(page, "incoming-call", full_page=False)
    await dialog.get_by_role("button", name="Accept").click()


REMOTE_PLAYING = """() => {
    const v = document.querySelector('video.remote');
    return !!v && v.readyState >= 2 && v.videoWidth > 0 && !v.paused && v.currentTime > 0.5;
}"""


async def meter_advances(buyer: Page, seller: Page) -> None:
    for page in (buyer, seller):
        await page.wait_for_function(REMOTE_PLAYING, timeout=30_000)
        await expect(page.get_by_test_id("call-state")).to_have_text("Live", timeout=30_000)
    # The clock runs between meter messages; the first 6-second step is charged to the
    # buyer and shown to the seller. (Later steps show the charge growing.)
    clock = buyer.get_by_test_id("meter-time")
    shown = await clock.inner_text()
    await expect(clock).not_to_have_text(shown)
    await expect(buyer.get_by_test_id("meter-spent")).not_to_have_text("0", timeout=30_000)
    await expect(seller.get_by_test_id("meter-spent")).not_to_have_text("0")
    await expect(buyer.get_by_test_id("meter-balance")).not_to_have_text("—")
    await shot(buyer, "call-live-buyer", full_page=False)
    await shot(seller, "call-live-seller", full_page=False)


async def socket_drop_recovers(page: Page) -> None:
    """The buyer's WebSocket drops mid-call: the page reconnects by itself and the call goes
    on being metered (the server paused it for at most a moment)."""
    before = await page.evaluate("""async () => {
        const { app } = await import('/static/js/app.js');
        const old = app.socket.ws;
        window.droppedSocket = old;
        old.close();
        return old.url;
    }""")
    assert before.endswith("/ws")
    await wait_until(page, """async () => {
        const { app } = await import('/static/js/app.js');
        return app.socket.open && app.socket.ws !== window.droppedSocket;
    }""")
    spent = page.get_by_test_id("meter-spent")
    now = await spent.inner_text()
    await expect(spent).not_to_have_text(now, timeout=30_000)
    await expect(page.get_by_test_id("call-state")).to_have_text("Live")


async def reload_recovers(page: Page, other: Page) -> None:
    """A call page reloaded mid-call (a new peer connection, a new socket): the video comes
    back on both sides and the meter goes on."""
    page.on("dialog", lambda d: d.accept())  # "leave the call?" before unload
    await page.reload()
    for p in (page, other):
        await p.wait_for_function(REMOTE_PLAYING, timeout=30_000)
    await expect(page.get_by_test_id("call-state")).to_have_text("Live", timeout=30_000)
    spent = page.get_by_test_id("meter-spent")
    await expect(spent).not_to_have_text("0", timeout=30_000)
    now = await spent.inner_text()
    await expect(spent).not_to_have_text(now, timeout=30_000)


async def low_balance_is_announced(buyer: Page, seller: Page) -> None:
    """Less than a minute of balance left: both sides are told before the call ends."""
    await expect(buyer.get_by_test_id("meter-warning")).to_contain_text(
        "Less than one minute left", timeout=30_000)
    await expect(seller.get_by_test_id("meter-warning")).to_contain_text(
        "The buyer has less than one minute left")
    await shot(buyer, "call-low-balance-buyer", full_page=False)


async def buyer_hangs_up(buyer: Page, seller: Page) -> None:
    await buyer.get_by_role("button", name="End call").click()
    await expect(buyer.get_by_test_id("call-summary")).to_be_visible()
    await expect(buyer.get_by_test_id("end-reason")).to_contain_text("You ended the call")
    await expect(seller.get_by_test_id("call-summary")).to_be_visible()
    await expect(seller.get_by_test_id("end-reason")).to_contain_text("The buyer ended the call")
    await expect(seller.get_by_text("You earned")).to_be_visible()
    await shot(buyer, "call-summary-buyer")
    await shot(seller, "call-summary-seller")


async def buyer_disputes(buyer: Page) -> None:
    await buyer.get_by_role("button", name="Something went wrong? Open a dispute").click()
    await buyer.get_by_label("Describe the problem").fill("The picture froze for a while.")
    await buyer.get_by_role("button", name="Open dispute").click()
    await expect(buyer.get_by_text("Dispute opened.")).to_be_visible()


async def operator_refunds_the_dispute(b: Browsers, app, buyer: Page) -> None:
    """The operator reads the dispute and refunds part of the call; the buyer's ledger shows
    the refund."""
    from meterchat.accounts import users as accounts
    from meterchat.appkeys import DB, PASSWORDS

    email = new_email("admin")
    # Admins are made by the operator's CLI, never by sign-up: the same function it runs.
    await app[DB].tx(accounts.insert_user_tx, email, app[PASSWORDS].hash(PASSWORD), "admin",
                     "Olga Operator")
    page = await b.page("operator")
    page.on("dialog", lambda d: d.accept())
    await open_app(page, "/#/login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    disputes = page.locator("section", has=page.get_by_role("heading", name="Disputes"))
    row = disputes.locator("tr", has_text="The picture froze for a while.")
    # The row shows what the call cost; how many segments ran before the hang-up depends on
    # how busy the machine is, so the figure is the call's own (at least two segments).
    call = await app[DB].fetchone("SELECT charged_musdt FROM calls ORDER BY id DESC LIMIT 1")
    assert call is not None and call["charged_musdt"] >= 1200 * 10_000
    await expect(row).to_contain_text(f"charged {call['charged_musdt'] // 10_000:,}")
    await row.get_by_label("Refund tokens").fill("600")
    await row.get_by_role("button", name="Resolve").click()
    await expect(row).to_contain_text("resolved")
    await expect(row).to_contain_text("600")
    await shot(page, "operator-dispute-resolved")
    await buyer.reload()
    ledger = buyer.locator("section", has=buyer.get_by_role("heading", name="Ledger"))
    await expect(ledger).to_contain_text("Dispute refund")


async def seller_withdraws(page: Page, tokens: str, address: str) -> None:
    await page.get_by_role("link", name="Back to dashboard").click()
    await expect(page.get_by_test_id("earned-today")).not_to_have_text("0")
    await page.get_by_label("Tokens", exact=True).fill(tokens)
    await page.get_by_label("TRON address (TRC20)").fill(address)
    await expect(page.get_by_test_id("withdraw-preview")).to_contain_text("2.5 USDT")
    await page.get_by_role("button", name="Withdraw", exact=True).click()
    row = page.locator("[data-testid=withdrawals] tbody tr").first
    await expect(row).to_contain_text("400")
    await expect(row.locator("[data-txid]")).to_be_visible(timeout=60_000)
    await shot(page, "dashboard-withdrawn")


async def wallets_show_the_call(buyer: Page, seller: Page) -> None:
    """Every movement is in each ledger: the top-up and the call minutes for the buyer, the
    earnings and the withdrawal for the seller."""
    await buyer.get_by_role("link", name="Back to sellers").click()
    # The summary has a Wallet link of its own: the header's is the one meant here.
    await expect(buyer.get_by_test_id("call-summary")).to_have_count(0)
    await buyer.get_by_role("navigation", name="Main").get_by_role("link", name="Wallet").click()
    ledger = buyer.locator("section", has=buyer.get_by_role("heading", name="Ledger"))
    await expect(ledger).to_contain_text("Top-up")
    await expect(ledger).to_contain_text("Call charge")
    await expect(buyer.get_by_test_id("balance-held")).to_contain_text("0")
    await shot(buyer, "wallet-after-call")
    await seller.get_by_role("navigation", name="Main").get_by_role("link", name="Wallet").click()
    ledger = seller.locator("section", has=seller.get_by_role("heading", name="Ledger"))
    await expect(ledger).to_contain_text("Withdrawal")
    await expect(ledger).to_contain_text("Call earnings")
    await shot(seller, "wallet-seller")


def devnet_faucet(app):
    """Send devnet USDT the way a buyer's wallet would, through the node's faucet."""

    async def faucet(address: str, usdt: str) -> str:
        from aiohttp import ClientSession

        from meterchat.chain_ctx import DEVNET

        async with ClientSession() as http, http.post(
            app[DEVNET].url.rstrip("/") + "/devnet/transfer", json={"to": address, "usdt": usdt}
        ) as resp:
            assert resp.status == 200, await resp.text()
            return (await resp.json())["txid"]

    return faucet


def fresh_tron_address() -> str:
    from tronpy.keys import PrivateKey

    return PrivateKey.random().public_key.to_base58check_address()


async def test_buyer_and_seller_run_the_whole_story(aiohttp_server, tmp_path):
    app = create_app(story_config(tmp_path))
    server = await aiohttp_server(app)
    async with chromium() as browser:
        b = Browsers(browser, str(server.make_url("/")).rstrip("/"))
        try:
            seller = await b.page("seller")
            # The buyer is on a phone, the seller at a desk.
            buyer = await b.page("buyer", phone=True)
            await sign_up(seller, "seller", "Sofia Seller")
            await seller_sets_rate_and_goes_online(seller, STORY_RATE)
            await sign_up(buyer, "buyer", "Ben Buyer")
            await buyer_tops_up(buyer, devnet_faucet(app), STORY_TOPUP_USDT)
            await buyer_calls(buyer, "Sofia Seller", STORY_RATE)
            await seller_accepts(seller, "Ben Buyer")
            await meter_advances(buyer, seller)
            await socket_drop_recovers(buyer)
            await reload_recovers(seller, buyer)
            await low_balance_is_announced(buyer, seller)
            await buyer_hangs_up(buyer, seller)
            await buyer_disputes(buyer)
            await seller_withdraws(seller, "400", fresh_tron_address())
            await wallets_show_the_call(buyer, seller)
            await operator_refunds_the_dispute(b, app, buyer)
        finally:
            await b.close()
    # The TXID is pasted as soon as the faucet answers: the claim may find no block yet (404),
    # and the watcher may credit the transfer before the claim's next try (409, already
    # credited: the page shows it credited all the same).
    assert unexpected(b.errors, (404, "/api/deposits/claim"),
                      (409, "/api/deposits/claim")) == [], "\n".join(b.errors)


async def fund_through_api(app, base_url: str, email: str, usdt: str) -> None:
    """Top up a buyer through the deposit API (intent, devnet transfer, claim) from outside
    the browser: for tests whose subject is elsewhere. The claim may credit the transfer, or
    the watcher may be first (then the claim answers 409 already_credited); either way the
    balance is what counts."""
    from aiohttp import ClientSession

    async with ClientSession(base_url) as http:
        async with http.post("/api/auth/login",
                             json={"email": email, "password": PASSWORD}) as resp:
            assert resp.status == 200, await resp.text()
            auth = {"Authorization": "Bearer " + (await resp.json())["token"]}
        async with http.post("/api/deposits/intents", json={"usdt": usdt}, headers=auth) as resp:
            assert resp.status == 201, await resp.text()
            intent = (await resp.json())["intent"]
        txid = await devnet_faucet(app)(intent["address"], intent["amount_usdt"])
        deadline = time.monotonic() + 60
        while True:
            async with http.post("/api/deposits/claim", json={"txid": txid}, headers=auth) as r:
                assert r.status in (200, 202, 404, 409), await r.text()
            async with http.get("/api/me", headers=auth) as resp:
                if (await resp.json())["balance"]["available"] != "0":
                    return
            assert time.monotonic() < deadline, "the top-up was never credited"
            await asyncio.sleep(0.3)


async def test_declined_and_missed_calls_are_explained_to_the_buyer(aiohttp_server, tmp_path):
    app = create_app(make_config(tmp_path, billing={"ring_timeout_s": 3},
                                 devnet={"block_time_s": 0.2, "solidify_depth": 2},
                                 deposits={"watcher_interval_s": 0.2}))
    server = await aiohttp_server(app)
    base_url = str(server.make_url("/")).rstrip("/")
    async with chromium() as browser:
        b = Browsers(browser, base_url)
        try:
            seller = await b.page("seller")
            buyer = await b.page("buyer")
            await sign_up(seller, "seller", "Dana Decliner")
            await seller_sets_rate_and_goes_online(seller, 30)
            buyer_email = await sign_up(buyer, "buyer", "Carl Caller")
            await fund_through_api(app, base_url, buyer_email, "5")

            await buyer_calls(buyer, "Dana Decliner", 30, shots=False)
            dialog = seller.get_by_role("dialog", name="Incoming call")
            await expect(dialog).to_contain_text("Carl Caller wants to talk")
            await dialog.get_by_role("button", name="Decline").click()
            await expect(dialog).to_be_hidden()
            await expect(buyer.get_by_test_id("end-reason")).to_contain_text(
                "The seller declined the call. You were not charged.")
            await shot(buyer, "call-declined")

            await buyer.get_by_role("link", name="Back to sellers").click()
            await expect(buyer.get_by_test_id("end-reason")).to_be_hidden()
            await buyer_calls(buyer, "Dana Decliner", 30, shots=False)
            await expect(dialog).to_be_visible()
            await expect(buyer.get_by_test_id("end-reason")).to_contain_text(
                "did not answer in time", timeout=15_000)
            await expect(dialog).to_be_hidden()  # the ringing stops on the seller's side too
            await shot(buyer, "call-missed")
        finally:
            await b.close()
    assert unexpected(b.errors) == [], "\n".join(b.errors)


async def test_operator_reviews_a_withdrawal_and_assigns_an_unmatched_deposit(
        aiohttp_server, tmp_path):
    from aiohttp import ClientSession

    from meterchat.accounts import users as accounts
    from meterchat.appkeys import DB, PASSWORDS
    from meterchat.chain_ctx import CHAIN_INFO
    from tests.conftest import fund_tokens

    app = create_app(make_config(
        tmp_path, devnet={"block_time_s": 0.2, "solidify_depth": 2},
        deposits={"watcher_interval_s": 0.2},
        withdrawals={"sender_interval_s": 0.2, "manual_review_above_usdt": 5}))
    server = await aiohttp_server(app)
    base_url = str(server.make_url("/")).rstrip("/")
    hashed = app[PASSWORDS].hash(PASSWORD)
    # Admins are made by the operator's CLI, never by sign-up: the same function it runs.
    admin_email, seller_email = new_email("admin"), new_email("seller")
    await app[DB].tx(accounts.insert_user_tx, admin_email, hashed, "admin", "Olga Operator")
    seller = await app[DB].tx(accounts.insert_user_tx, seller_email, hashed, "seller", "Sam Big")
    await fund_tokens(app, seller.id, "2000")
    async with ClientSession(base_url) as http:
        async with http.post("/api/auth/login",
                             json={"email": seller_email, "password": PASSWORD}) as resp:
            auth = {"Authorization": "Bearer " + (await resp.json())["token"]}
        async with http.post("/api/withdrawals", headers={**auth, "Idempotency-Key": "big-1"},
                             json={"tokens": "1000", "address": fresh_tron_address()}) as resp:
            assert resp.status == 201, await resp.text()
            withdrawal = (await resp.json())["withdrawal"]
            assert withdrawal["status"] == "review"  # 10 USDT is above the review line
    # A transfer with no top-up behind it: the watcher records it as unmatched.
    await devnet_faucet(app)(app[CHAIN_INFO].deposit_address, "12.345678")

    async with chromium() as browser:
        b = Browsers(browser, base_url)
        try:
            page = await b.page("operator")
            page.on("dialog", lambda d: d.accept())  # every action asks "are you sure?"
            await open_app(page, "/#/login")
            await page.get_by_label("Email").fill(admin_email)
            await page.get_by_label("Password").fill(PASSWORD)
            await page.get_by_role("button", name="Log in").click()
            await expect(page.get_by_role("heading", name="Operator")).to_be_visible()
            await expect(page.get_by_text("Ledger adds up")).to_be_visible()
            for heading in ("Audit", "Withdrawals", "Unmatched deposits", "Disputes",
                            "Promotions", "Bans"):
                await expect(page.get_by_role("heading", name=heading)).to_be_visible()
            review = page.locator("tr", has_text=seller_email)
            await expect(review).to_contain_text("1,000")
            unmatched = page.locator(
                "section", has=page.get_by_role("heading", name="Unmatched deposits")).locator(
                "tr", has_text="12.345678")
            for _ in range(30):  # the watcher finds it within a few blocks
                if await unmatched.count():
                    break
                await asyncio.sleep(0.5)
                await page.reload()
            await expect(unmatched).to_be_visible()
            await shot(page, "operator")

            await review.get_by_role("button", name="Approve").click()
            await expect(page.get_by_text("No withdrawals with status review.")).to_be_visible()
            await unmatched.get_by_label("User id").fill(str(seller.id))
            await unmatched.get_by_role("button", name="Assign").click()
            await expect(page.get_by_text("No unmatched deposits.")).to_be_visible()
            # The sender signs, sends and sees it confirmed; wait on the server's own record
            # (a list re-rendered from a stale status would end a UI poll too early), and
            # say where it stopped when it does not get there.
            from meterchat.withdrawals import store as wd
            from meterchat.withdrawals.sender import SENDER
            w = None
            for _ in range(240):
                w = await app[DB].read(wd.get, withdrawal["id"])
                if w is not None and w.status in ("confirmed", "failed"):
                    break
                await asyncio.sleep(0.25)
            assert w is not None and w.status == "confirmed", (
                w, app[SENDER].last_error, app[SENDER].failures)
            await page.get_by_label("Withdrawal status").select_option("sent")
            await page.get_by_label("Withdrawal status").select_option("confirmed")
            await expect(page.locator("tr", has_text=seller_email).locator("[data-txid]")
                         ).to_be_visible()
            await shot(page, "operator-after-review")
        finally:
            await b.close()
    assert unexpected(b.errors) == [], "\n".join(b.errors)
    async with ClientSession(base_url) as http, http.get("/api/me", headers=auth) as resp:
        # 2,000 - 1,000 withdrawn + 1,234.5678 assigned.
        assert (await resp.json())["balance"]["available"] == "2234.5678"
