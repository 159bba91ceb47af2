"""The issue's Bar, tried as a new user would, with deposits.mode = "address_per_user" on the
devnet (real server on a real port, real tronpy, real SQLite, the sweeper running on its
own): two buyers get two fixed addresses; 7.5 USDT sent to one is credited as 750 tokens
without a claim; 1.25 and then 2 USDT to the other are credited together as 325 tokens
(deposits.min_usdt 3); the operator sees a confirmed sweep; `meterchat audit` and reconcile
pass."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from meterchat.app import create_app
from meterchat.chain_ctx import CHAIN_INFO, DEVNET, GATEWAY
from tests.conftest import actor, admin_actor, chain_config, devnet_pay, eventually

ROOT = Path(__file__).resolve().parent.parent


async def test_bar_two_buyers_two_addresses_credits_without_claims_and_a_confirmed_sweep(
        aiohttp_client, tmp_path):
    cfg = chain_config(tmp_path, deposits={"mode": "address_per_user", "min_usdt": 3},
                       sweeps={"min_usdt": 5, "interval_s": 0.2})
    client = await aiohttp_client(create_app(cfg))
    node = client.app[DEVNET]
    first, second = await actor(client), await actor(client)

    async def address_of(user) -> str:
        resp = await user.get("/api/deposits/address")
        body = await resp.json()
        assert resp.status == 200, body
        assert body["min_usdt"] == "3"
        return body["address"]

    a1, a2 = await address_of(first), await address_of(second)
    assert a1 != a2 and await address_of(first) == a1 and await address_of(second) == a2

    async def tokens(user) -> str:
        return (await user.me())["balance"]["available"]

    await devnet_pay(node.url, a1, usdt="7.5")
    small = await devnet_pay(node.url, a2, usdt="1.25")
    await node.wait_solidified(small)
    await eventually(lambda: _is(tokens(first), "750"), timeout_s=20)
    assert await tokens(second) == "0"  # below the minimum: kept, not credited yet
    await devnet_pay(node.url, a2, usdt="2")
    await eventually(lambda: _is(tokens(second), "325"), timeout_s=20)
    for user in (first, second):
        deposits = (await (await user.get("/api/deposits")).json())["deposits"]
        assert len(deposits) == 1 and deposits[0]["status"] == "credited"  # no claim made

    admin = await admin_actor(client)

    async def confirmed_sweep():
        body = await (await admin.get("/api/admin/sweeps")).json()
        done = [s for s in body["sweeps"] if s["status"] == "confirmed"]
        return done[0] if done else None

    sweep = await eventually(confirmed_sweep, timeout_s=30)
    assert sweep["address"] == a1 and sweep["usdt"] == "7.5" and sweep["trx_spent_sun"] > 0
    gw = client.app[GATEWAY]
    assert await gw.usdt_balance(a1) == 0 and await gw.usdt_balance(a2) == 3_250_000

    # The TRX the sweep burned is in the operator's costs, beside the withdrawals'.
    costs = (await (await admin.get("/api/admin/costs")).json())["costs"]
    assert costs["by_kind"]["sweep"]["trx_spent_sun"] == sweep["trx_spent_sun"]
    assert costs["by_kind"]["sweep"]["usdt_moved_musdt"] == 7_500_000
    report = await (await admin.get("/api/admin/reconcile")).json()
    assert report["ok"], report
    assert report["personal_addresses_usdt_musdt"] == 3_250_000  # a2's, the platform's
    toml = tmp_path / "audit.toml"
    toml.write_text(f'[database]\npath = "{cfg.database.path}"\n')
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "meterchat.cli", "audit", "--config", str(toml), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert json.loads(out)["ok"] is True
    assert client.app[CHAIN_INFO].deposit_xpub.startswith("xpub")


async def _is(value, expected: str) -> bool:
    return await value == expected
