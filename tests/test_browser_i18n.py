"""The pages in a second language, in real headless Chromium: a browser whose language is
Spanish (Accept-Language and navigator.languages, playwright's locale) gets every page in
Spanish, and the header's switcher changes the language in place, without a reload.

How a page is judged (`untranslated`): every visible text node, placeholder and aria-label of
the page outside elements marked `data-i18n-skip` (what users typed: names, bios, chat; the
operator's terms document) must be a Spanish catalogue text, with its {placeholders} filled by
anything. A text that is an English catalogue text (different from its Spanish one) is an
untranslated string; a text in neither catalogue is a string missing from the catalogue. Only
figures pass without a catalogue entry: digits and their marks (= + − %), dates the page formatted
(month names in the language), currency and chain names (USDT, TRX, TRON), UTC."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from meterchat.app import create_app
from tests.browser_pool import chromium
from tests.conftest import fund_tokens, make_config
from tests.test_browser import PASSWORD, Browsers, devnet_faucet, open_app, shot, unexpected
from tests.test_browser_economy import new_user

pytestmark = pytest.mark.browser

I18N = Path(__file__).resolve().parent.parent / "static" / "i18n"

VISIBLE_TEXTS = """() => {
    const out = [];
    const skipped = (el) => el.closest("[data-i18n-skip], script, style, noscript, svg");
    const shown = (el) => el.checkVisibility({ visibilityProperty: true, opacityProperty: false });
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
        const el = n.parentElement;
        const text = n.textContent.replace(/\\s+/g, " ").trim();
        if (!text || !el || skipped(el) || !shown(el)) continue;
        // An <option> is visible only through its <select>.
        if (el.tagName === "OPTION" && !shown(el.closest("select"))) continue;
        out.push({ text, where: el.tagName.toLowerCase() + (el.className ? "." + el.className : "") });
    }
    for (const el of document.querySelectorAll("[placeholder], [aria-label], [title]")) {
        if (skipped(el) || !shown(el)) continue;
        for (const attr of ["placeholder", "aria-label", "title"]) {
            const v = (el.getAttribute(attr) || "").replace(/\\s+/g, " ").trim();
            if (v) out.push({ text: v, where: `${el.tagName.toLowerCase()}[${attr}]` });
        }
    }
    return out;
}"""

MONTHS_ES = ("ene|feb|mar|abr|may|jun|jul|ago|sept?|oct|nov|dic")
FIGURE = re.compile(
    rf"^(?:[\d\s.,:;=+\-−–—%/·×()#…★☆$€@|]|USDT|TRX|TRON|TXID|UTC|tokens|meterchat|{MONTHS_ES}|de)*$",
    re.I)


def texts(lang: str) -> dict[str, list[str]]:
    data = json.loads((I18N / f"{lang}.json").read_text(encoding="utf-8"))
    return {k: list(v.values()) if isinstance(v, dict) else [v] for k, v in data.items()}


def pattern(text: str) -> re.Pattern[str] | None:
    """A catalogue text as a whole-text pattern, each {placeholder} matching anything; None for
    a text that is nothing but placeholders (it would match any text at all)."""
    literal = re.sub(r"\{\w+\}", "", text)
    if not re.search(r"[^\W\d_]", literal):
        return None
    parts = re.split(r"\{\w+\}", " ".join(text.split()))
    return re.compile("^" + "(.+?)".join(re.escape(p) for p in parts) + "$", re.S)


class Judge:
    """Tells a page's texts that are Spanish from those that are English or unknown."""

    def __init__(self) -> None:
        en, es = texts("en"), texts("es")
        self.spanish = [p for forms in es.values() for f in forms if (p := pattern(f))]
        self.english = [(k, p) for k, forms in en.items()
                        for i, f in enumerate(forms)
                        if (p := pattern(f)) and es[k][min(i, len(es[k]) - 1)] != f]
        self.problems: list[str] = []

    def verdict(self, text: str) -> str | None:
        if FIGURE.match(text) or any(p.match(text) for p in self.spanish):
            return None
        for key, p in self.english:
            if p.match(text):
                return f"untranslated ({key})"
        return "not in the catalogue"

    async def page(self, page: Page, name: str) -> None:
        await page.evaluate("() => new Promise((ok) => requestAnimationFrame(() => ok()))")
        found = await page.evaluate(VISIBLE_TEXTS)
        assert len(found) > 3, (name, found)
        for item in found:
            if why := self.verdict(item["text"]):
                self.problems.append(f"{name}: {why}: {item['text']!r} in {item['where']}")
        await shot(page, f"i18n-es-{name}")


def test_the_judge_tells_spanish_from_english_and_from_unknown_text():
    judge = Judge()
    assert judge.verdict("Iniciar sesión") is None
    assert judge.verdict("a tu tarifa de 60 tokens por minuto") is None
    assert judge.verdict("1.012,50") is None
    assert judge.verdict("3 dic, 14:05") is None
    assert judge.verdict("Log out") == "untranslated (header.logout)"
    assert str(judge.verdict("at your rate of 60 tokens per minute")).startswith("untranslated")
    assert judge.verdict("Some new words") == "not in the catalogue"


async def test_a_spanish_browser_gets_the_guest_pages_in_spanish(aiohttp_server, tmp_path):
    server = await aiohttp_server(create_app(make_config(tmp_path)))
    judge = Judge()
    async with chromium() as browser:
        b = Browsers(browser, str(server.make_url("/")).rstrip("/"))
        try:
            page = await b.page("guest", locale="es-ES")
            await open_app(page, "/#/login")
            assert await page.evaluate("document.documentElement.lang") == "es"
            await expect(page.get_by_role("heading", name="Iniciar sesión")).to_be_visible()
            await judge.page(page, "login")
            # A wrong password: the error shown from its code, in Spanish.
            await page.get_by_label("Correo electrónico").fill("nobody@example.com")
            await page.get_by_label("Contraseña").fill("not the password")
            await page.get_by_role("button", name="Iniciar sesión").click()
            await expect(page.get_by_role("alert")).to_have_text("Correo o contraseña incorrectos.")
            await judge.page(page, "login-error")
            await open_app(page, "/#/signup")
            await expect(page.get_by_role("heading", name="Crea tu cuenta")).to_be_visible()
            await judge.page(page, "signup")
            await open_app(page, "/#/forgot")
            await judge.page(page, "forgot")
            await open_app(page, "/#/terms")
            await expect(page.get_by_test_id("terms")).to_be_visible()
            await judge.page(page, "terms")
        finally:
            await b.close()
    assert judge.problems == [], "\n".join(judge.problems)
    assert unexpected(b.errors, 401) == [], "\n".join(b.errors)


async def log_in_es(page: Page, email: str) -> None:
    await open_app(page, "/#/login")
    await page.get_by_label("Correo electrónico").fill(email)
    await page.get_by_label("Contraseña").fill(PASSWORD)
    await page.get_by_role("button", name="Iniciar sesión").click()
    await expect(page.get_by_role("button", name="Cerrar sesión")).to_be_visible()


async def test_a_spanish_browser_gets_the_signed_in_pages_in_spanish(aiohttp_server, tmp_path):
    app = create_app(make_config(tmp_path))
    server = await aiohttp_server(app)
    _, seller_email = await new_user(app, "seller", "Sofía Vendedora")
    buyer_id, buyer_email = await new_user(app, "buyer", "Bruno Comprador")
    _, admin_email = await new_user(app, "admin", "Olga Operadora")
    await fund_tokens(app, buyer_id, "1000")
    judge = Judge()
    async with chromium() as browser:
        b = Browsers(browser, str(server.make_url("/")).rstrip("/"))
        try:
            seller = await b.page("seller", locale="es-ES")
            await log_in_es(seller, seller_email)
            await expect(seller.get_by_role("heading", name="Panel")).to_be_visible()
            await judge.page(seller, "dashboard-new")
            await seller.get_by_label("Tarifa (tokens por minuto)").fill("1234")
            await expect(seller.get_by_test_id("rate-hint")).to_contain_text(
                "1234 tokens = 12,34 USDT por minuto")
            await seller.get_by_label("Sobre ti").fill("Conversation in English, tea optional.")
            await seller.get_by_label("Etiquetas").fill("english, tea")
            await seller.get_by_label("Idiomas", exact=True).fill("English")
            await seller.get_by_role("button", name="Guardar perfil").click()
            await expect(seller.get_by_text("Perfil guardado")).to_be_visible()
            await seller.get_by_role("switch").click()
            await expect(seller.get_by_role("switch")).to_have_attribute("aria-checked", "true")
            await seller.get_by_label("Tokens", exact=True).fill("5")
            await seller.get_by_label("Dirección de TRON (TRC20)").fill(
                "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf")
            # More than the balance: the server's refusal shown in Spanish, from its code.
            await expect(seller.get_by_test_id("withdraw-preview")).to_have_text(
                re.compile(r"^(?!.*\b(the|you|than)\b).+", re.I))
            await judge.page(seller, "dashboard")
            await open_app(seller, "/#/calls")
            await expect(seller.get_by_role("heading", name="Llamadas")).to_be_visible()
            await judge.page(seller, "calls-seller")

            buyer = await b.page("buyer", locale="es-ES")
            await log_in_es(buyer, buyer_email)
            await expect(buyer.get_by_role("heading", name="Vendedores")).to_be_visible()
            await expect(buyer.locator("article.seller")).to_have_count(1)
            await expect(buyer.get_by_role("link", name="Saldo 1.000 tokens")).to_be_visible()
            await judge.page(buyer, "sellers")
            await open_app(buyer, "/#/account")
            await expect(buyer.get_by_role("heading", name="Cuenta")).to_be_visible()
            await expect(buyer.get_by_test_id("sessions")).to_be_visible()
            await judge.page(buyer, "account")
            await open_app(buyer, "/#/calls")
            await expect(buyer.get_by_role("heading", name="Llamadas")).to_be_visible()
            await judge.page(buyer, "calls-buyer")
            await buyer.get_by_role("link", name="Billetera").click()
            await expect(buyer.get_by_role("heading", name="Billetera")).to_be_visible()
            await expect(buyer.get_by_test_id("balance-available")).to_have_text("1.000 tokens")
            await expect(buyer.get_by_test_id("limit-daily")).to_have_text("Sin límite")
            await expect(buyer.get_by_test_id("spending-total")).to_be_visible()
            await judge.page(buyer, "wallet-buyer")
            await seller.get_by_role("link", name="Billetera").click()
            await expect(seller.get_by_role("heading", name="Billetera")).to_be_visible()
            await judge.page(seller, "wallet-seller")

            operator = await b.page("operator", locale="es-ES")
            await log_in_es(operator, admin_email)
            await expect(operator.get_by_role("heading", name="Operador", exact=True)).to_be_visible()
            await expect(operator.get_by_role("heading", name="Promociones")).to_be_visible()
            await operator.get_by_label("Buscar usuarios").fill("Comprador")
            await operator.get_by_role("button", name="Buscar", exact=True).click()
            await operator.get_by_test_id("user-hits").get_by_role("button", name="Abrir").click()
            await expect(operator.get_by_test_id("user-balance")).to_contain_text("1.000 tokens")
            await judge.page(operator, "operator")
        finally:
            await b.close()
    assert judge.problems == [], "\n".join(judge.problems)
    assert unexpected(b.errors, (422, "/api/withdrawals/quote")) == [], "\n".join(b.errors)


async def test_a_spanish_call_live_and_its_summary_are_in_spanish(aiohttp_server, tmp_path):
    app = create_app(make_config(tmp_path, billing={"tick_interval_s": 0.2}))
    server = await aiohttp_server(app)
    _, seller_email = await new_user(app, "seller", "Sofía Vendedora")
    buyer_id, buyer_email = await new_user(app, "buyer", "Bruno Comprador")
    await fund_tokens(app, buyer_id, "1000")
    judge = Judge()
    async with chromium() as browser:
        b = Browsers(browser, str(server.make_url("/")).rstrip("/"))
        try:
            seller = await b.page("seller", locale="es-ES")
            await log_in_es(seller, seller_email)
            await seller.get_by_label("Tarifa (tokens por minuto)").fill("60")
            await seller.get_by_role("button", name="Guardar perfil").click()
            await expect(seller.get_by_text("Perfil guardado")).to_be_visible()
            await seller.get_by_role("switch").click()
            await expect(seller.get_by_role("switch")).to_have_attribute("aria-checked", "true")

            buyer = await b.page("buyer", locale="es-ES")
            await log_in_es(buyer, buyer_email)
            await buyer.get_by_role("link", name="Llamar a Sofía Vendedora").click()
            start = buyer.get_by_role("button", name="Iniciar llamada a 60 tokens/min")
            await expect(buyer.locator(".preview video")).to_be_visible()
            await buyer.get_by_label("Acepto pagar").check()
            await expect(start).to_be_enabled()
            await judge.page(buyer, "pre-call")
            await start.click()
            dialog = seller.get_by_role("dialog", name="Llamada entrante")
            await expect(dialog).to_contain_text("Bruno Comprador quiere hablar")
            await judge.page(seller, "incoming")
            await dialog.get_by_role("button", name="Aceptar").click()
            for page in (buyer, seller):
                await expect(page.get_by_test_id("call-state")).to_have_text(
                    "En directo", timeout=30_000)
            # The first 6-second step charged: the summary then has figures, rating and tips.
            await expect(buyer.get_by_test_id("meter-spent")).not_to_have_text("0", timeout=30_000)
            await judge.page(buyer, "call-live-buyer")
            await judge.page(seller, "call-live-seller")
            await buyer.get_by_role("button", name="Terminar llamada").click()
            for page in (buyer, seller):
                await expect(page.get_by_test_id("call-summary")).to_be_visible()
            await expect(buyer.get_by_test_id("end-reason")).to_contain_text(
                "Terminaste la llamada.")
            await expect(buyer.get_by_role("button", name="Enviar valoración")).to_be_visible()
            await judge.page(buyer, "summary-buyer")
            await judge.page(seller, "summary-seller")
            await buyer.get_by_role("link", name="Llamadas", exact=True).click()
            await buyer.get_by_test_id("call-history").get_by_role("link").first.click()
            await expect(buyer.get_by_test_id("receipt")).to_be_visible()
            await judge.page(buyer, "receipt-buyer")
        finally:
            await b.close()
    assert judge.problems == [], "\n".join(judge.problems)
    assert unexpected(b.errors) == [], "\n".join(b.errors)


async def test_a_spanish_top_up_its_payment_details_and_its_receipt(aiohttp_server, tmp_path):
    app = create_app(make_config(
        tmp_path, devnet={"block_time_s": 0.2, "solidify_depth": 2},
        deposits={"watcher_interval_s": 0.2}))
    server = await aiohttp_server(app)
    _, buyer_email = await new_user(app, "buyer", "Bruno Comprador")
    judge = Judge()
    async with chromium() as browser:
        b = Browsers(browser, str(server.make_url("/")).rstrip("/"))
        try:
            buyer = await b.page("buyer", locale="es-ES")
            await log_in_es(buyer, buyer_email)
            await buyer.get_by_role("link", name="Billetera").click()
            await buyer.get_by_label("Importe en USDT").fill("12")
            await buyer.get_by_role("button", name="Ver los datos de pago").click()
            exact = (await buyer.get_by_test_id("exact-amount").inner_text()).strip()
            address = (await buyer.get_by_test_id("deposit-address").inner_text()).strip()
            await expect(buyer.get_by_role("img", name="Código QR de la dirección de depósito")
                         ).to_be_visible()
            await judge.page(buyer, "top-up-details")
            await devnet_faucet(app)(address, exact)
            await expect(buyer.get_by_role("heading", name="Recarga recibida")).to_be_visible(
                timeout=60_000)
            await expect(buyer.get_by_test_id("deposit-status")).to_contain_text(
                "tokens añadidos a tu saldo")
            await judge.page(buyer, "top-up-receipt")
        finally:
            await b.close()
    assert judge.problems == [], "\n".join(judge.problems)
    assert unexpected(b.errors) == [], "\n".join(b.errors)


async def test_the_switcher_changes_the_language_without_a_reload(aiohttp_server, tmp_path):
    server = await aiohttp_server(create_app(make_config(tmp_path)))
    async with chromium() as browser:
        b = Browsers(browser, str(server.make_url("/")).rstrip("/"))
        try:
            page = await b.page("guest")
            await open_app(page, "/#/login")
            await expect(page.get_by_role("heading", name="Log in")).to_be_visible()
            await page.get_by_label("Email").fill("typed@example.com")
            await page.evaluate("window.notReloaded = true")
            # By keyboard: the switcher is a labelled <select> in the header.
            await page.get_by_label("Page language").focus()
            await page.keyboard.press("ArrowDown")
            await expect(page.get_by_role("heading", name="Iniciar sesión")).to_be_visible()
            assert await page.evaluate("window.notReloaded") is True
            assert await page.evaluate("document.documentElement.lang") == "es"
            await expect(page.get_by_label("Idioma de la página")).to_be_focused()
            await expect(page.get_by_role("link", name="Registrarse")).to_be_visible()
            # The choice is kept over the browser's language.
            await page.reload()
            await page.wait_for_selector("html[data-ready='1']")
            await expect(page.get_by_role("heading", name="Iniciar sesión")).to_be_visible()
            await page.get_by_label("Idioma de la página").select_option("en")
            await expect(page.get_by_role("heading", name="Log in")).to_be_visible()
            assert await page.evaluate("document.documentElement.lang") == "en"
        finally:
            await b.close()
    assert unexpected(b.errors) == [], "\n".join(b.errors)
