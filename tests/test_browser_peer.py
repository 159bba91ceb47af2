"""The README's smoke test against a real browser: `python -m meterchat.tools.peer` (aiortc) as a
subprocess, exactly as shipped, on one side of a call and the pages in headless Chromium on
the other, through the real server's signalling on loopback. Chromium trickles
`{type: "candidate"}` signals (some before its offer or answer) and may ask for an offer
with `ready`; the peer must take them all and the call must be billed."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from meterchat.app import create_app
from tests.browser_pool import chromium
from tests.conftest import make_config, new_email
from tests.test_browser import (
    PASSWORD,
    REMOTE_PLAYING,
    Browsers,
    fund_through_api,
    open_app,
    seller_sets_rate_and_goes_online,
    shot,
    sign_up,
    unexpected,
)

# Real time on purpose (an aiortc peer in a child process, the meter over many seconds):
# tests/conftest.py starts this file among the first.
pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
RATE = 60  # tokens/min: 6 tokens a 6-second segment


def peer_config(tmp_path: Path):
    return make_config(
        tmp_path,
        billing={"tick_interval_s": 0.2},
        devnet={"block_time_s": 0.2, "solidify_depth": 2},
        deposits={"watcher_interval_s": 0.2},
    )


class PeerProcess:
    """`python -m tools.peer MODE ...` with its JSON event lines read as they come."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.events: list[dict] = []
        self.stderr = b""

    @classmethod
    async def start(cls, *args: str, env: dict[str, str]) -> PeerProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "meterchat.tools.peer", *args, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), **env},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        return cls(proc)

    async def event(self, name: str, within_s: float = 60) -> dict:
        """The next event line of that name (earlier other lines are kept)."""
        assert self.proc.stdout is not None
        async with asyncio.timeout(within_s):
            while True:
                line = await self.proc.stdout.readline()
                if not line:
                    await self.finish()
                    raise AssertionError(f"the peer exited before {name}: {self.stderr!r}")
                if line.startswith(b"{"):
                    ev = json.loads(line)
                    self.events.append(ev)
                    if ev.get("event") == name:
                        return ev

    async def finish(self, within_s: float = 30) -> int:
        async with asyncio.timeout(within_s):
            _, self.stderr = await self.proc.communicate()
        return self.proc.returncode

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


async def api_user(base_url: str, role: str, name: str, profile: dict | None = None) -> dict:
    """Register (and log in) a user through the API; a seller's profile is saved too."""
    from aiohttp import ClientSession

    email = new_email(role)
    async with ClientSession(base_url) as http:
        async with http.post("/api/auth/register", json={
                "email": email, "password": PASSWORD, "role": role, "display_name": name,
                "adult": True, "terms": True}) as resp:
            assert resp.status == 201, await resp.text()
            user = (await resp.json())["user"]
        async with http.post("/api/auth/login",
                             json={"email": email, "password": PASSWORD}) as resp:
            token = (await resp.json())["token"]
        if profile is not None:
            async with http.put("/api/seller/profile", json=profile,
                                headers={"Authorization": f"Bearer {token}"}) as resp:
                assert resp.status == 200, await resp.text()
    return {"email": email, "id": user["id"], "token": token}


async def call_from_page(page: Page, seller_name: str, rate: int) -> None:
    await page.get_by_role("link", name="Sellers", exact=True).click()
    card = page.locator("article.seller", has_text=seller_name)
    await expect(card).to_contain_text(str(rate))
    await card.get_by_role("link", name=f"Call {seller_name}").click()
    await page.get_by_label("I agree to pay").check()
    await page.wait_for_function(
        "() => { const v = document.querySelector('.preview video'); return v.readyState >= 2; }")
    await page.get_by_role("button", name=f"Start call at {rate} tokens/min").click()


async def page_call_is_live_and_billed(page: Page) -> None:
    """The other side's (aiortc's) picture plays, the call is live, the meter charges."""
    await page.wait_for_function(REMOTE_PLAYING, timeout=30_000)
    await expect(page.get_by_test_id("call-state")).to_have_text("Live", timeout=30_000)
    await expect(page.get_by_test_id("meter-spent")).not_to_have_text("0", timeout=30_000)


def assert_billed(call: dict) -> None:
    assert call["state"] == "ended", call
    assert call["billed_tenths"] > 0, call
    assert call["charged"] not in ("0", "0.0", None), call


async def test_chromium_buyer_calls_the_aiortc_peer_seller_and_the_call_is_billed(
        aiohttp_server, tmp_path):
    app = create_app(peer_config(tmp_path))
    server = await aiohttp_server(app)
    base_url = str(server.make_url("/")).rstrip("/")
    seller = await api_user(base_url, "seller", "Petra Peer",
                            {"rate": RATE, "bio": "An aiortc peer.", "tags": ["english"]})
    peer = await PeerProcess.start(
        "seller", "--url", base_url, "--seller-email", seller["email"], "--loopback",
        "--media-interval", "0.5", "--wait", "120", env={"MC_SELLER_PASSWORD": PASSWORD})
    try:
        await peer.event("seller_online")
        async with chromium() as browser:
            b = Browsers(browser, base_url)
            try:
                buyer = await b.page("buyer")
                email = await sign_up(buyer, "buyer", "Bea Browser")
                await fund_through_api(app, base_url, email, "5")
                await open_app(buyer)
                await call_from_page(buyer, "Petra Peer", RATE)
                accepted = await peer.event("call_accepted")
                await page_call_is_live_and_billed(buyer)
                await shot(buyer, "peer-call-chromium-buyer", full_page=False)
                # The buyer's page reloads mid-call: its new peer connection's `fresh`
                # offer gets a new connection from the peer, the picture and meter go on.
                buyer.on("dialog", lambda d: d.accept())  # "leave the call?" before unload
                await buyer.reload()
                await buyer.wait_for_function(REMOTE_PLAYING, timeout=30_000)
                await expect(buyer.get_by_test_id("call-state")).to_have_text(
                    "Live", timeout=30_000)
                spent = buyer.get_by_test_id("meter-spent")
                await expect(spent).not_to_have_text("0", timeout=30_000)
                now = await spent.inner_text()
                await expect(spent).not_to_have_text(now, timeout=30_000)
                await buyer.get_by_role("button", name="End call").click()
                await expect(buyer.get_by_test_id("call-summary")).to_be_visible()
            finally:
                await b.close()
        ended = await peer.event("call_ended")
        assert await peer.finish() == 0, peer.stderr
    finally:
        await peer.kill()
    assert ended["call"]["id"] == accepted["call_id"]
    assert_billed(ended["call"])
    assert b"Traceback" not in peer.stderr and b"not applied" not in peer.stderr, \
        peer.stderr.decode()
    assert unexpected(b.errors, (404, "/api/deposits/claim")) == [], "\n".join(b.errors)


async def test_aiortc_peer_buyer_calls_a_chromium_seller_and_the_call_is_billed(
        aiohttp_server, tmp_path):
    app = create_app(peer_config(tmp_path))
    server = await aiohttp_server(app)
    base_url = str(server.make_url("/")).rstrip("/")
    buyer = await api_user(base_url, "buyer", "Paul Peer")
    await fund_through_api(app, base_url, buyer["email"], "5")
    peer = None
    async with chromium() as browser:
        b = Browsers(browser, base_url)
        try:
            seller = await b.page("seller")
            await sign_up(seller, "seller", "Cora Chromium")
            await seller_sets_rate_and_goes_online(seller, RATE)
            seller_id = await seller_id_by_name(base_url, buyer["token"], "Cora Chromium")
            peer = await PeerProcess.start(
                "buyer", "--url", base_url, "--buyer-email", buyer["email"], "--seller-id",
                seller_id, "--loopback", "--media-interval", "0.5", "--seconds", "35",
                env={"MC_BUYER_PASSWORD": PASSWORD})
            dialog = seller.get_by_role("dialog", name="Incoming call")
            await expect(dialog).to_contain_text("Paul Peer wants to talk", timeout=30_000)
            await dialog.get_by_role("button", name="Accept").click()
            await peer.event("call_started")
            await page_call_is_live_and_billed(seller)
            await shot(seller, "peer-call-chromium-seller", full_page=False)
            # The seller's page reloads mid-call: it asks for an offer with `ready` (fresh),
            # the peer starts a new connection and offers again, the picture comes back.
            seller.on("dialog", lambda d: d.accept())
            await seller.reload()
            await seller.wait_for_function(REMOTE_PLAYING, timeout=30_000)
            await expect(seller.get_by_test_id("call-state")).to_have_text(
                "Live", timeout=30_000)
            spent = seller.get_by_test_id("meter-spent")
            await expect(spent).not_to_have_text("0", timeout=30_000)
            now = await spent.inner_text()
            await expect(spent).not_to_have_text(now, timeout=30_000)
            ended = await peer.event("call_ended", within_s=90)
            assert await peer.finish() == 0, peer.stderr  # 0: the call was billed
            await expect(seller.get_by_test_id("call-summary")).to_be_visible()
        finally:
            if peer is not None:
                await peer.kill()
            await b.close()
    assert_billed(ended["call"])
    assert b"Traceback" not in peer.stderr and b"not applied" not in peer.stderr, \
        peer.stderr.decode()
    assert unexpected(b.errors) == [], "\n".join(b.errors)


async def seller_id_by_name(base_url: str, token: str, name: str) -> str:
    from aiohttp import ClientSession

    async with ClientSession(base_url) as http, http.get(
            "/api/sellers", headers={"Authorization": f"Bearer {token}"}) as resp:
        sellers = (await resp.json())["sellers"]
    return next(s["id"] for s in sellers if s["display_name"] == name)
