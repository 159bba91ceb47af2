"""Accessibility in real headless Chromium: axe-core (the npm package, fetched into
tests/.vendor/ by `make axe`, which `make test` runs; never served with the pages) checks every
page at 1280x800 and 390x844 and the test fails on any "serious" or "critical" violation,
printing them all. Screenshots of each page at each size go to artifacts/screenshots/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from meterchat.app import create_app
from tests.browser_pool import chromium
from tests.conftest import fund_tokens, make_config
from tests.test_browser import (
    Browsers,
    buyer_calls,
    open_app,
    seller_accepts,
    seller_sets_rate_and_goes_online,
    shot,
    unexpected,
)
from tests.test_browser_economy import log_in, new_user

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
BLOCKING = ("serious", "critical")


def axe_path() -> Path:
    """The checker the Makefile fetched, at the version the Makefile names (one place)."""
    m = re.search(r"^AXE_VERSION := (\S+)$", (ROOT / "Makefile").read_text(), re.M)
    assert m, "the Makefile names no AXE_VERSION"
    return ROOT / "tests" / ".vendor" / f"axe-core-{m.group(1)}" / "axe.min.js"


RUN_AXE = """async () => {
    const r = await axe.run(document, { resultTypes: ["violations"] });
    return r.violations.map((v) => ({
        id: v.id, impact: v.impact, help: v.help,
        nodes: v.nodes.map((n) => n.target.join(" ") + " :: " + (n.failureSummary || "")
            .replace(/\\s+/g, " ")),
    }));
}"""


async def axe_violations(page: Page, where: str) -> list[str]:
    """The serious and critical violations axe finds on the page as it is now, in words."""
    path = axe_path()
    if not path.is_file():
        pytest.fail(f"axe-core is missing at {path.relative_to(ROOT)}: run `make axe` "
                    "(make test does) to fetch it with npm", pytrace=False)
    if not await page.evaluate("() => typeof window.axe === 'object'"):
        await page.add_script_tag(path=str(path))
    found = await page.evaluate(RUN_AXE)
    return [f"{where}: [{v['impact']}] {v['id']}: {v['help']}\n    " + "\n    ".join(v["nodes"])
            for v in found if v["impact"] in BLOCKING]


class Audit:
    """Every page checked at both sizes; the violations kept until the end of the walk."""

    def __init__(self) -> None:
        self.violations: list[str] = []
        self.checked: list[str] = []

    async def check(self, page: Page, name: str, *, full_page: bool = True) -> None:
        for size, viewport in SIZES.items():
            await page.set_viewport_size(viewport)
            await page.evaluate("() => new Promise((ok) => requestAnimationFrame(() => ok()))")
            self.violations += await axe_violations(page, f"{name} at {size}")
            await shot(page, f"a11y-{name}-{size}", full_page=full_page)
            self.checked.append(f"{name}/{size}")
        await page.set_viewport_size(SIZES["desktop"])


async def test_every_page_has_no_serious_accessibility_violation(aiohttp_server, tmp_path):
    app = create_app(make_config(tmp_path, billing={"tick_interval_s": 0.2}))
    server = await aiohttp_server(app)
    base_url = str(server.make_url("/")).rstrip("/")
    _, seller_email = await new_user(app, "seller", "Ada Access")
    buyer_id, buyer_email = await new_user(app, "buyer", "Bo Buyer")
    _, admin_email = await new_user(app, "admin", "Olga Operator")
    await fund_tokens(app, buyer_id, "1000")
    audit = Audit()
    async with chromium() as browser:
        b = Browsers(browser, base_url)
        try:
            guest = await b.page("guest", bypass_csp=True)
            await open_app(guest, "/#/login")
            await expect(guest.get_by_role("heading", name="Log in")).to_be_visible()
            await audit.check(guest, "login")
            await open_app(guest, "/#/signup")
            await expect(guest.get_by_role("heading", name="Create your account")).to_be_visible()
            await audit.check(guest, "signup")
            await open_app(guest, "/#/terms")
            await expect(guest.get_by_role("heading", name="Terms of service")).to_be_visible()
            await audit.check(guest, "terms")

            seller = await b.page("seller", bypass_csp=True)
            await log_in(seller, seller_email)
            await seller_sets_rate_and_goes_online(seller, 60)
            await audit.check(seller, "dashboard")
            await seller.get_by_role("link", name="Wallet").click()
            await expect(seller.get_by_role("heading", name="Wallet")).to_be_visible()
            await audit.check(seller, "wallet-seller")

            buyer = await b.page("buyer", bypass_csp=True)
            await log_in(buyer, buyer_email)
            await expect(buyer.get_by_role("heading", name="Sellers")).to_be_visible()
            await expect(buyer.locator("article.seller")).to_have_count(1)
            await audit.check(buyer, "sellers")
            await buyer.get_by_role("link", name="Wallet").click()
            await expect(buyer.get_by_role("heading", name="Wallet")).to_be_visible()
            await audit.check(buyer, "wallet-buyer")
            await buyer.get_by_role("link", name="Account").click()
            await expect(buyer.get_by_role("heading", name="Account")).to_be_visible()
            await audit.check(buyer, "account")

            await buyer_calls(buyer, "Ada Access", 60, shots=False)
            await seller_accepts(seller, "Bo Buyer")
            for page in (buyer, seller):
                await expect(page.get_by_test_id("call-state")).to_have_text(
                    "Live", timeout=30_000)
            await audit.check(buyer, "call-live-buyer", full_page=False)
            await audit.check(seller, "call-live-seller", full_page=False)
            await buyer.get_by_role("button", name="End call").click()
            for page in (buyer, seller):
                await expect(page.get_by_test_id("call-summary")).to_be_visible()
            await audit.check(buyer, "call-summary-buyer")
            await audit.check(seller, "call-summary-seller")

            operator = await b.page("operator", bypass_csp=True)
            await log_in(operator, admin_email)
            await open_app(operator, "/#/admin")
            await expect(operator.get_by_role("heading", name="Operator")).to_be_visible()
            await expect(operator.get_by_role("heading", name="Promotions")).to_be_visible()
            await audit.check(operator, "operator")
        finally:
            await b.close()
    assert len(audit.checked) == 2 * 13, audit.checked
    assert audit.violations == [], (
        f"{len(audit.violations)} serious or critical accessibility violations:\n"
        + "\n".join(audit.violations))
    assert unexpected(b.errors) == [], "\n".join(b.errors)


# A radio group is one stop of the Tab key: its radios share one key.
KEY = """(el) => el.type === "radio" ? "RADIO:" + el.name
    : el.tagName + "#" + (el.id || el.textContent.trim().slice(0, 30))"""

FOCUSED = """() => {
    const el = document.activeElement;
    if (!el || el === document.body) return null;
    const s = getComputedStyle(el);
    return { key: (KEY)(el), tag: el.tagName.toLowerCase(),
             ring: s.outlineStyle !== "none" && parseFloat(s.outlineWidth) >= 2 };
}""".replace("KEY", KEY)

CONTROLS = """() => [...document.querySelectorAll(
    "main a[href], main button, main input, main select, main textarea, header a, header button")]
    .filter((el) => !el.disabled && el.offsetParent !== null).map(KEY)""".replace("KEY", KEY)


async def tab_through(page: Page) -> tuple[list[dict], list[str]]:
    """Tab round a freshly loaded page once (from wherever it put the focus, through the end,
    round to it again): what took the focus, and every visible control the page has."""
    await page.reload()
    await page.wait_for_selector("html[data-ready='1']")
    seen: list[dict] = []
    for _ in range(80):
        await page.keyboard.press("Tab")
        now = await page.evaluate(FOCUSED)
        if now is None:  # past the end (the browser's own controls); the next Tab wraps
            continue
        if seen and now["key"] == seen[0]["key"]:
            break
        seen.append(now)
    return seen, await page.evaluate(CONTROLS)


async def test_the_keyboard_reaches_every_control_and_the_focus_shows(aiohttp_server, tmp_path):
    app = create_app(make_config(tmp_path))
    server = await aiohttp_server(app)
    base_url = str(server.make_url("/")).rstrip("/")
    _, seller_email = await new_user(app, "seller", "Kim Keys")
    async with chromium() as browser:
        b = Browsers(browser, base_url)
        try:
            page = await b.page("guest")
            await open_app(page, "/#/signup")
            await expect(page.get_by_role("heading", name="Create your account")).to_be_visible()
            for where in ("signup", "dashboard"):
                if where == "dashboard":
                    await log_in(page, seller_email)
                    await expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
                seen, controls = await tab_through(page)
                reached = {s["key"] for s in seen}
                assert set(controls) <= reached, (where, set(controls) - reached, seen)
                # Only real controls take the focus (no clickable divs), each with its ring.
                assert {s["tag"] for s in seen} <= {
                    "a", "button", "input", "select", "textarea", "summary", "main", "div"}, seen
                assert [s for s in seen if not s["ring"] and s["tag"] != "main"] == [], seen
                await page.keyboard.press("Shift+Tab")
                await shot(page, f"a11y-focus-{where}", full_page=False)
        finally:
            await b.close()
    assert unexpected(b.errors) == [], "\n".join(b.errors)
