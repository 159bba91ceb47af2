"""Real WebRTC: two aiortc peers connect through the server's signalling on loopback and
are billed for the time both were connected; a peer process killed with SIGKILL stops the
billing within media_timeout_s."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from meterchat.app import create_app
from meterchat.money import billing
from meterchat.tools.peer import answer_as_seller, call_as_buyer
from tests.calls_helpers import ws_client
from tests.conftest import actor, audit_ok, fast_calls_config, fund, register

# Real time on purpose (sockets, timers, child processes): tests/conftest.py starts these
# files first, so their waits overlap the other files' work.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
MEDIA_TIMEOUT_S = 1.5


@pytest.fixture
async def app_client(aiohttp_client, tmp_path):
    return await aiohttp_client(create_app(fast_calls_config(tmp_path)))


async def wait_live(client, call_id: str) -> float:
    while True:
        msg = await client.next("call.state", call_id, within=20)
        if msg["call"]["state"] == "live":
            return time.monotonic()


async def test_two_aiortc_peers_connect_and_are_billed_for_the_time_both_were_connected(
        app_client):
    seller = await actor(app_client, "seller")
    await seller.put("/api/seller/profile", {"rate": 600})
    await seller.put("/api/seller/status", {"online": True})
    buyer = await actor(app_client)
    await fund(app_client, buyer.id, 1000)
    sc, bc = await ws_client(app_client, seller), await ws_client(app_client, buyer)
    peers = []
    try:
        seller_side = asyncio.create_task(
            answer_as_seller(sc, loopback=True, media_interval_s=0.5))
        call, bpeer = await call_as_buyer(bc, seller.id, loopback=True, media_interval_s=0.5)
        _, speer = await seller_side
        peers = [bpeer, speer]
        live_at = await wait_live(bc, call["id"])
        assert bpeer.pc.connectionState == speer.pc.connectionState == "connected"
        # Real media went both ways and the counters the server trusts grew.
        meter = await bc.next("meter", call["id"], within=10)
        assert meter["billed_tenths"] == 1
        assert bpeer.frames_decoded > 0 and speer.frames_decoded > 0
        assert await bpeer.bytes_received() > 0
        await asyncio.sleep(max(0.0, 8.5 - (time.monotonic() - live_at)))
        resp = await buyer.post(f"/api/calls/{call['id']}/end")
        ended_at = time.monotonic()
        ended = (await resp.json())["call"]
    finally:
        for p in peers:
            await p.close()
        await sc.close()
        await bc.close()
    both_connected_s = ended_at - live_at
    # live_seconds is whole seconds (up to 1 s off), and the test sees "live" when the
    # message arrives, which on a machine busy with the rest of the suite may be half a
    # second after the server counted it.
    assert abs(ended["live_seconds"] - both_connected_s) <= 2
    expected = billing.nearest_tenths(int(both_connected_s * 1000))
    assert abs(ended["billed_tenths"] - expected) <= 1 and ended["billed_tenths"] >= 1
    assert ended["charged"] == str(60 * ended["billed_tenths"])
    await audit_ok(app_client)


async def test_a_peer_killed_with_sigkill_stops_billing_within_media_timeout(app_client):
    seller = await register(app_client, "seller")
    buyer = await actor(app_client)
    await fund(app_client, buyer.id, 1000)
    env = {**os.environ, "MC_SELLER_PASSWORD": "correct horse battery"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "meterchat.tools.peer", "seller", "--url", str(app_client.make_url("")),
        "--seller-email", seller["email"], "--rate", "600", "--loopback",
        "--media-interval", "0.5", cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE)
    bc = await ws_client(app_client, buyer)
    bpeer = None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert json.loads(line)["event"] == "seller_online"
        call, bpeer = await call_as_buyer(bc, seller["id"], loopback=True, media_interval_s=0.5)
        live_at = await wait_live(bc, call["id"])
        await asyncio.sleep(7)
        proc.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        await proc.wait()
        ended = (await bc.next("call.ended", call["id"], within=15))["call"]
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        if bpeer is not None:
            await bpeer.close()
        await bc.close()
    live_until_kill_s = killed_at - live_at
    assert ended["live_seconds"] <= live_until_kill_s + MEDIA_TIMEOUT_S
    assert ended["live_seconds"] >= live_until_kill_s - 1.5
    assert ended["billed_tenths"] == billing.nearest_tenths(ended["live_seconds"] * 1000) or \
        ended["billed_tenths"] == billing.nearest_tenths((ended["live_seconds"] + 1) * 1000)
    assert ended["end_reason"] in ("seller_offline", "connection_lost")
    await audit_ok(app_client)
