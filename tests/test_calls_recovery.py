"""Crash recovery: the server process killed mid-call and restarted ends the call at its
last recorded segment (at most one segment unbilled, nothing billed twice, audit clean);
and the billing pass on the database itself: idempotent, settles at the minute boundary."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from meterchat.accounts import users as accounts
from meterchat.calls import store as calls
from meterchat.core.db import connect_sync, migrate_sync, now_ms, run_read, run_tx
from meterchat.money import billing, ledger
from meterchat.sellers import store as sellers
from meterchat.tools.peer import Client, SyntheticMedia
from tests.conftest import FAST_HASH, fund_sync

# Real time on purpose (sockets, timers, child processes): tests/conftest.py starts these
# files first, so their waits overlap the other files' work.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def write_config(tmp_path: Path) -> Path:
    cfg = tmp_path / "meterchat.toml"
    cfg.write_text(
        "[server]\nport = 0\npresence_grace_s = 30\n"
        f"password_hash_time_cost = {FAST_HASH['password_hash_time_cost']}\n"
        f"password_hash_memory_kib = {FAST_HASH['password_hash_memory_kib']}\n"
        '[database]\npath = "db.sqlite3"\n'
        '[devnet]\nport = 0\npath = "devnet.sqlite3"\n'
        "[billing]\ntick_interval_s = 0.2\nmedia_timeout_s = 1.5\nreconnect_grace_s = 30\n"
    )
    return cfg


async def start_server(cfg: Path) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "meterchat.cli", "serve", "--config", str(cfg), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
    assert "serving on" in line, line
    return proc, line.split("serving on ")[1].split()[0]


async def register(url: str, role: str, email: str) -> None:
    async with aiohttp.ClientSession() as http:
        resp = await http.post(url + "/api/auth/register", json={
            "email": email, "password": "correct horse battery", "role": role,
            "display_name": role, "adult": True, "terms": True})
        assert resp.status == 201, await resp.text()


async def test_server_killed_mid_call_restarts_with_the_call_ended_and_audit_clean(tmp_path):
    cfg = write_config(tmp_path)
    proc, url = await start_server(cfg)
    clients: list[Client] = []
    media: list[SyntheticMedia] = []
    try:
        await register(url, "seller", "s@example.com")
        await register(url, "buyer", "b@example.com")
        conn = connect_sync(tmp_path / "db.sqlite3")
        fund_sync(conn, 2, 1000)
        conn.close()
        s, b = Client(url), Client(url)
        clients = [s, b]
        for c, email in ((s, "s@example.com"), (b, "b@example.com")):
            await c.__aenter__()
            await c.login(email, "correct horse battery")
            await c.open_ws()
        await s.request("PUT", "/api/seller/profile", {"rate": 600})
        await s.request("PUT", "/api/seller/status", {"online": True})
        call = (await b.request("POST", "/api/calls", {"seller_id": s.id, "rate": 600}))["call"]
        await s.request("POST", f"/api/calls/{call['id']}/accept")
        media = [SyntheticMedia(b, call["id"], 0.3), SyntheticMedia(s, call["id"], 0.3)]
        for m in media:
            m.start()
        while (await b.next("call.state", call["id"]))["call"]["state"] != "live":
            pass
        live_at = time.monotonic()
        await b.next("meter", call["id"], within=10)  # one segment recorded
        await asyncio.sleep(max(0.0, 10.5 - (time.monotonic() - live_at)))
        proc.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        await proc.wait()
    finally:
        for m in media:
            await m.stop()
        for c in clients:
            await c.close()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    live_s = killed_at - live_at
    proc, url = await start_server(cfg)
    try:
        async with Client(url) as b:
            await b.login("b@example.com", "correct horse battery")
            ended = (await b.request("GET", f"/api/calls/{call['id']}"))["call"]
            me = await b.request("GET", "/api/me")
    finally:
        proc.send_signal(signal.SIGTERM)
        await proc.wait()
    assert ended["state"] == "ended" and ended["end_reason"] == "server_restart"
    assert billing.completed_tenths(int(live_s * 1000)) - 1 <= ended["billed_tenths"] \
        <= billing.completed_tenths(int(live_s * 1000))
    assert ended["billed_tenths"] >= 1
    assert ended["charged"] == str(60 * ended["billed_tenths"])
    assert me["balance"] == {"available": str(1000 - 60 * ended["billed_tenths"]),
                             "held": "0", "pending": "0"}
    conn = sqlite3.connect(tmp_path / "db.sqlite3")
    n_segments = conn.execute("SELECT COUNT(*) FROM call_segments").fetchone()[0]
    assert n_segments == ended["billed_tenths"]
    conn.close()
    audit = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "meterchat.cli", "audit", "--config", str(cfg), cwd=ROOT,
        env=os.environ, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await audit.communicate()
    assert audit.returncode == 0, err


def setup_call(conn, rate: int = 600, funds_tokens: int = 10_000, cap: int | None = None,
               tag: str = ""):
    def users(c):
        s = accounts.insert_user_tx(c, f"s{tag}@example.com", "x", "seller", "S")
        b = accounts.insert_user_tx(c, f"b{tag}@example.com", "x", "buyer", "B")
        sellers.save_profile_tx(c, s.id, rate, None, None, None)
        sellers.set_online_tx(c, s.id, True)
        return s.id, b.id

    sid, bid = run_tx(conn, users)
    fund_sync(conn, bid, funds_tokens)
    row = run_tx(conn, calls.create_call_tx, bid, sid, rate, cap, 1, 250_000, now_ms())
    run_tx(conn, calls.accept_call_tx, row.id, now_ms())
    return row.id, sid, bid


def test_pass_settles_each_minute_once_and_recovery_ends_at_the_last_segment(tmp_path):
    conn = connect_sync(tmp_path / "db.sqlite3")
    migrate_sync(conn)
    call_id, sid, bid = setup_call(conn)
    out = run_tx(conn, billing.run_pass, [(call_id, 12)], now_ms())
    assert out[0].billed_tenths == 12 and out[0].charged_musdt == 12 * 60 * 10_000
    # The same pass again (a retry after a lost answer) changes nothing.
    assert run_tx(conn, billing.run_pass, [(call_id, 12)], now_ms()) == []
    bal = run_read(conn, ledger.user_balances, bid)
    assert bal == {"available": (10_000 - 600 - 600) * 10_000, "held": 600 * 10_000,
                   "pending": 0}
    assert run_read(conn, ledger.balance, ledger.user_account(sid)) == 450 * 10_000
    done = run_tx(conn, billing.recover_after_crash, now_ms())
    assert [(f.call_id, f.billed_tenths) for f in done] == [(call_id, 12)]
    assert run_tx(conn, billing.recover_after_crash, now_ms()) == []
    bal = run_read(conn, ledger.user_balances, bid)
    assert bal["available"] == (10_000 - 720) * 10_000 and bal["held"] == 0
    assert run_read(conn, ledger.balance, ledger.user_account(sid)) == 540 * 10_000
    assert run_read(conn, ledger.audit).ok
    keys = [r[0] for r in conn.execute(
        "SELECT idem_key FROM ledger_tx WHERE idem_key LIKE 'call:%' ORDER BY id")]
    # One transaction per minute boundary: settle minute 1 and hold minute 2 together.
    assert keys == [f"call:{call_id}:hold:1", f"call:{call_id}:settle:1",
                    f"call:{call_id}:settle:2", f"call:{call_id}:release"]
    minute_1 = conn.execute(
        "SELECT a.name, p.amount_musdt FROM postings p JOIN accounts a ON a.id = p.account_id"
        " JOIN ledger_tx t ON t.id = p.tx_id WHERE t.idem_key = ? ORDER BY a.name",
        (f"call:{call_id}:settle:1",)).fetchall()
    assert sorted(tuple(r) for r in minute_1) == sorted([
        ("revenue:commission", 150 * 10_000), (f"user:{sid}:available", 450 * 10_000),
        (f"user:{bid}:available", -600 * 10_000)])  # held: -600 settled +600 held = 0


def test_pass_skips_a_call_whose_keys_are_already_in_the_ledger(tmp_path):
    conn = connect_sync(tmp_path / "db.sqlite3")
    migrate_sync(conn)
    call_id, _, bid = setup_call(conn)
    # Someone already wrote minute 1's settlement: the pass must not write it again.
    run_tx(conn, lambda c: ledger.post(c, "test", [(ledger.CHAIN_DEPOSITS, -1),
                                                   (ledger.user_account(bid), 1)],
                                       idem_key=billing.idem_settle(call_id, 1)))
    assert run_tx(conn, billing.run_pass, [(call_id, 10)], now_ms()) == []
    assert run_read(conn, ledger.audit).ok


def test_a_replayed_key_skips_only_its_own_call_in_a_busy_pass(tmp_path):
    conn = connect_sync(tmp_path / "db.sqlite3")
    migrate_sync(conn)
    replayed, _, bid = setup_call(conn)
    fine, fine_seller, fine_buyer = setup_call(conn, tag="2")
    run_tx(conn, lambda c: ledger.post(c, "test", [(ledger.CHAIN_DEPOSITS, -1),
                                                   (ledger.user_account(bid), 1)],
                                       idem_key=billing.idem_settle(replayed, 1)))
    out = run_tx(conn, billing.run_pass, [(replayed, 10), (fine, 10)], now_ms())
    # The other call settles its minute and holds the next, as if alone.
    assert [(o.call_id, o.billed_tenths) for o in out] == [(fine, 10)]
    assert run_read(conn, ledger.balance, ledger.user_account(fine_seller)) == 450 * 10_000
    assert run_read(conn, ledger.user_balances, fine_buyer)["held"] == 600 * 10_000
    billed = dict(conn.execute("SELECT id, billed_tenths FROM calls").fetchall())
    assert billed == {replayed: 0, fine: 10}
    assert run_read(conn, ledger.audit).ok
