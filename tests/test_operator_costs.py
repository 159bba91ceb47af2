"""TRX costs shown, not guessed (operator/costs.py): the pure report over (kind, at_ms,
trx_spent_sun, usdt_moved_musdt) rows — per UTC day over 30 days, per USDT moved, the hot
wallet's runway over the last 7 days' spending, a second kind of source (sweeps) added as
rows alone — and the figures of real withdrawals on the devnet with the real tronpy client,
read from their receipts, in GET /api/admin/costs, GET /api/admin/reconcile and `meterchat
reconcile`."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path

from tronpy.keys import PrivateKey

from meterchat.app import create_app
from meterchat.appkeys import DB
from meterchat.chain.devnet.contracts import ENERGY_PRICE_SUN, ENERGY_TO_FRESH, ENERGY_TO_HOLDER
from meterchat.chain_ctx import DEVNET, GATEWAY
from meterchat.core.units import DAY_MS, HOUR_MS
from meterchat.operator.costs import CostRow, report, runway_warning
from tests.conftest import (
    actor,
    admin_actor,
    assert_error,
    chain_config,
    eventually,
    fund_tokens,
)

ROOT = Path(__file__).resolve().parent.parent
TODAY = 1_780_000_000_000 - 1_780_000_000_000 % DAY_MS  # 2026-05-28, 00:00 UTC
NOW = TODAY + 15 * HOUR_MS


def test_costs_are_summed_per_day_per_kind_and_per_usdt_moved():
    rows = [
        CostRow("withdrawal", NOW - HOUR_MS, 6_428_500, 2_500_000),
        CostRow("withdrawal", TODAY + 1, 13_028_500, 0),  # failed on chain: burned, moved 0
        CostRow("sweep", NOW - 2 * HOUR_MS, 13_028_500, 7_500_000),  # another source's rows
        CostRow("withdrawal", TODAY - DAY_MS + 5, 6_428_500, 10_000_000),  # yesterday
        CostRow("withdrawal", TODAY - 30 * DAY_MS, 99_000_000, 1),  # before the 30 days shown
    ]
    r = report(rows, NOW, trx_balance_sun=None)
    assert r["days"] == 30 and len(r["per_day"]) == 30
    assert r["from"] == r["per_day"][0]["day"] and r["per_day"][-1]["day"] == "2026-05-28"
    today, yesterday = r["per_day"][-1], r["per_day"][-2]
    assert (today["transactions"], today["trx_spent_sun"], today["usdt_moved_musdt"]) == \
        (3, 32_485_500, 10_000_000)
    assert today["by_kind"]["sweep"]["trx_spent"] == "13.0285"
    assert today["by_kind"]["withdrawal"]["trx_per_usdt"] == "7.7828"  # 19.457 TRX / 2.5 USDT
    assert yesterday["trx_per_usdt"] == "0.64285"
    assert r["total"]["trx_spent_sun"] == 32_485_500 + 6_428_500
    assert r["total"]["usdt_moved"] == "20"
    assert set(r["by_kind"]) == {"sweep", "withdrawal"}
    assert r["per_day"][0]["transactions"] == 0 and r["per_day"][0]["trx_per_usdt"] is None
    assert r["runway"]["days_left"] is None  # no balance read


def test_the_runway_is_the_balance_over_the_last_seven_days_average():
    rows = [CostRow("withdrawal", NOW - d * DAY_MS - HOUR_MS, 7_000_000, 1_000_000)
            for d in range(10)]  # 7 TRX a day, every day
    r = report(rows, NOW, trx_balance_sun=700_000_000)
    assert r["runway"]["average_trx_per_day"] == "7"  # 7 of the 10 fall in the last 7 days
    assert r["runway"]["days_left"] == "100.0"
    assert runway_warning(r) is None
    low = report(rows, NOW, trx_balance_sun=20_000_000)
    assert low["runway"]["days_left"] == "2.9"
    assert "last about 2.9 days" in (runway_warning(low) or "")
    quiet = report([], NOW, trx_balance_sun=700_000_000)
    assert quiet["runway"]["days_left"] is None and quiet["total"]["trx_spent"] == "0"


# -- figures from real withdrawals


AUTO = {"network_fee_usdt": "auto", "trx_usdt_price": Decimal("0.25"),
        "sender_interval_s": 0.1, "expiry_margin_s": 0.2}


async def withdraw_and_confirm(client, seller, dest: str, tokens: str) -> dict:
    resp = await seller.post("/api/withdrawals", json={"tokens": tokens, "address": dest},
                             headers={"Idempotency-Key": uuid.uuid4().hex})
    assert resp.status == 201, await resp.text()
    wid = (await resp.json())["withdrawal"]["id"]

    async def confirmed():
        rows = (await (await seller.get("/api/withdrawals")).json())["withdrawals"]
        w = next(w for w in rows if w["id"] == wid)
        return w if w["status"] == "confirmed" else None

    return await eventually(confirmed, timeout_s=20)


async def test_the_costs_of_real_withdrawals_come_from_their_receipts(aiohttp_client, tmp_path):
    client = await aiohttp_client(create_app(chain_config(tmp_path, withdrawals=AUTO)))
    node, gateway = client.app[DEVNET], client.app[GATEWAY]
    seller, admin = await actor(client, "seller"), await admin_actor(client)
    await fund_tokens(client.app, seller.id, "2000")
    dest = PrivateKey.random().public_key.to_base58check_address()
    first = await withdraw_and_confirm(client, seller, dest, "400")  # fresh address
    second = await withdraw_and_confirm(client, seller, dest, "1000")  # now a holder
    receipts = [await gateway.get_transaction(w["txid"]) for w in (first, second)]
    assert [t.energy_used for t in receipts] == [ENERGY_TO_FRESH, ENERGY_TO_HOLDER]
    spent = sum(t.fee_sun for t in receipts)
    # 19.457 TRX of energy, and the bandwidth of each transfer the free points did not pay.
    bandwidth_sun = spent - (ENERGY_TO_FRESH + ENERGY_TO_HOLDER) * ENERGY_PRICE_SUN
    assert bandwidth_sun in (0, 345_000, 690_000)
    moved = sum(int(Decimal(w["net_usdt"]) * 10**6) for w in (first, second))
    rows = await client.app[DB].fetchall(
        "SELECT trx_spent_sun, energy_used FROM withdrawal_txs ORDER BY created_at_ms")
    assert [(r["trx_spent_sun"], r["energy_used"]) for r in rows] == \
        [(t.fee_sun, t.energy_used) for t in receipts]

    resp = await admin.get("/api/admin/costs")
    assert resp.status == 200, await resp.text()
    c = (await resp.json())["costs"]
    today = c["per_day"][-1]
    assert (today["trx_spent_sun"], today["usdt_moved_musdt"], today["transactions"]) == \
        (spent, moved, 2)
    assert Decimal(c["total"]["trx_spent"]) * 10**6 == spent
    assert c["total"]["trx_per_usdt"] == str((Decimal(spent) / moved).quantize(
        Decimal("0.000001")).normalize())
    balance = await gateway.trx_balance_sun(node.hot_wallet_address)
    assert c["runway"]["trx_balance_sun"] == balance
    assert Decimal(c["runway"]["days_left"]) == (Decimal(balance) / (Decimal(spent) / 7)) \
        .quantize(Decimal("0.1"))
    r = await (await admin.get("/api/admin/reconcile")).json()
    assert r["costs"]["total"] == c["total"] and r["ok"] is True
    await assert_error(await seller.get("/api/admin/costs"), 403, "wrong_role")


def test_cli_reconcile_prints_the_costs(tmp_path):
    """`meterchat reconcile` as a real subprocess on a database holding a settled
    withdrawal transaction with its receipt's figures."""
    from meterchat.accounts import users as accounts
    from meterchat.core.db import connect_sync, migrate_sync, now_ms, run_tx

    cfg = tmp_path / "m.toml"
    cfg.write_text('[database]\npath = "m.sqlite3"\n'
                   '[devnet]\nport = 0\npath = "devnet.sqlite3"\n')
    conn = connect_sync(tmp_path / "m.sqlite3")
    migrate_sync(conn)
    user = run_tx(conn, accounts.insert_user_tx, "s@example.com", "x", "seller", "s")
    at = now_ms()

    def settled(c):
        wid = c.execute(
            "INSERT INTO withdrawals (user_id, idem_key, address, amount_musdt, fee_musdt,"
            " net_musdt, status, created_at_ms, updated_at_ms) VALUES"
            " (?, 'k', 'T', 4000000, 1500000, 2500000, 'confirmed', ?, ?) RETURNING id",
            (user.id, at, at)).fetchone()["id"]
        c.execute(
            "INSERT INTO withdrawal_txs (txid, withdrawal_id, signed_json, expiration_ms,"
            " fee_limit_sun, created_at_ms, outcome, trx_spent_sun, energy_used, block_time_ms,"
            " finished_at_ms) VALUES ('ab', ?, '{}', ?, 1, ?, 'confirmed', 6428500, 64285, ?, ?)",
            (wid, at, at, at, at))

    run_tx(conn, settled)
    conn.close()
    r = subprocess.run([sys.executable, "-m", "meterchat.cli", "reconcile", "--config",
                        str(cfg)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    report_ = json.loads(r.stdout)
    assert report_["costs"]["total"]["trx_spent_sun"] == 6_428_500
    assert report_["costs"]["total"]["trx_per_usdt"] == "2.5714"
    assert "costs, last 30 days: 6.4285 TRX spent on 1 transaction(s) moving 2.5 USDT" \
        " (2.5714 TRX per USDT)" in r.stderr
    assert "hot wallet TRX runway:" in r.stderr
