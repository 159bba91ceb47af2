"""Reconciliation against the devnet over real tronpy: the operator panel over HTTP and
`meterchat reconcile` as a real subprocess (which starts the devnet node itself); the pure
judgement of the figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from meterchat.app import create_app
from meterchat.chain_ctx import CHAIN_INFO, DEVNET
from meterchat.core.db import connect_sync, migrate_sync, run_tx
from meterchat.operator import reconcile
from tests.conftest import (
    actor,
    admin_actor,
    assert_error,
    chain_config,
    devnet_pay,
    eventually,
    fund,
    fund_sync,
)

ROOT = Path(__file__).resolve().parent.parent
HOT_WALLET_USDT_MUSDT = 100_000 * 10**6  # what the devnet's genesis gives the hot wallet


async def test_panel_reports_the_devnet_hot_wallet_and_unmatched_deposits(aiohttp_client,
                                                                          tmp_path):
    client = await aiohttp_client(create_app(chain_config(tmp_path)))
    admin = await admin_actor(client)
    buyer = await actor(client)
    await assert_error(await buyer.get("/api/admin/reconcile"), 403, "wrong_role")
    await fund(client, buyer.id, 250)
    node, info = client.app[DEVNET], client.app[CHAIN_INFO]
    # A transfer that matches no intent: recorded unmatched by the watcher.
    txid = await devnet_pay(node.url, info.deposit_address, usdt="7.123456")

    async def unmatched():
        r = await (await admin.get("/api/admin/reconcile")).json()
        return r if r["unmatched_deposits"] else None

    r = await eventually(unmatched, timeout_s=15)
    assert r["ok"] is True and r["network"] == "devnet"
    assert r["wallet_address"] == node.hot_wallet_address
    assert r["wallet_usdt_musdt"] == HOT_WALLET_USDT_MUSDT and r["wallet_usdt"] == "100000"
    assert r["wallet_trx_sun"] > 0
    assert r["users_musdt"] == 2_500_000 and r["liability_usdt"] == "2.5"
    assert r["surplus_musdt"] == HOT_WALLET_USDT_MUSDT - 2_500_000
    assert [d["txid"] for d in r["unmatched_deposits"]] == [txid]
    assert r["unmatched_musdt"] == 7_123_456
    assert r["deposit_address_usdt_musdt"] == 7_123_456
    assert any("unmatched" in w for w in r["warnings"])

    # Users now hold more than the hot wallet: not ok, and by how much.
    await fund(client, buyer.id, 10_000_000)
    r = await (await admin.get("/api/admin/reconcile")).json()
    assert r["ok"] is False and r["surplus_musdt"] == -2_500_000
    assert "short by 2.5 USDT" in r["problems"][0]


def _meterchat(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "meterchat.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)


def test_cli_reconcile_reads_the_devnet_and_exits_nonzero_when_short(tmp_path):
    cfg = tmp_path / "m.toml"
    cfg.write_text('[database]\npath = "m.sqlite3"\n'
                   '[devnet]\nport = 0\npath = "devnet.sqlite3"\n')
    conn = connect_sync(tmp_path / "m.sqlite3")
    migrate_sync(conn)
    from meterchat.accounts import users as accounts

    user = run_tx(conn, accounts.insert_user_tx, "b@example.com", "x", "buyer", "b")
    fund_sync(conn, user.id, 1_000)

    r = _meterchat("reconcile", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["ok"] is True and report["wallet_usdt_musdt"] == HOT_WALLET_USDT_MUSDT
    assert report["liability_musdt"] == 10_000_000 and report["wallet_address"].startswith("T")
    assert "reconcile ok" in r.stderr

    fund_sync(conn, user.id, 10_000_000)  # 100,000 USDT more than the wallet's
    conn.close()
    r = _meterchat("reconcile", "--config", str(cfg))
    assert r.returncode == 1, r.stderr
    report = json.loads(r.stdout)
    assert report["ok"] is False and report["surplus_musdt"] == -10_000_000
    assert "short by 10 USDT" in r.stderr and "reconcile FAILED" in r.stderr


def _report(**kw) -> reconcile.Report:
    base = dict(ok=False, network="devnet", wallet_address="TW", liability_musdt=100,
                users_musdt=80, clearing_withdrawals_musdt=20)
    return reconcile.Report(**{**base, **kw})


def test_judge_wallet_covering_users_exactly_is_ok():
    r = reconcile.judge(_report(wallet_usdt_musdt=100, wallet_trx_sun=10**9), 40 * 10**6)
    assert r.ok and r.surplus_musdt == 0 and r.problems == [] and r.warnings == []


def test_judge_one_musdt_short_fails():
    r = reconcile.judge(_report(wallet_usdt_musdt=99, wallet_trx_sun=10**9), 40 * 10**6)
    assert not r.ok and r.surplus_musdt == -1
    assert "short by 0.000001 USDT" in r.problems[0]


def test_judge_low_trx_warns_but_money_is_there():
    r = reconcile.judge(_report(wallet_usdt_musdt=500, wallet_trx_sun=5 * 10**6), 40 * 10**6)
    assert r.ok and "TRX" in r.warnings[0]


def test_judge_without_chain_figures_is_not_ok():
    r = _report()
    r.problems.append("the chain cannot be read: refused")
    assert reconcile.judge(r, 40 * 10**6).ok is False
