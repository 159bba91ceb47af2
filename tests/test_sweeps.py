"""Sweeps of personal deposit addresses to the hot wallet, against the in-process devnet over
real HTTP with the real tronpy client: the first sweep activates the address with a TRX
top-up and moves its USDT exactly once (every TRX burned recorded, the ledger untouched,
reconcile counting the addresses' USDT as the platform's); a later one uses the TRX left
over; crashes after signing and after broadcasting (the top-up and the sweep) followed by
a fresh sweeper send the same stored bytes, never a second transfer; a sweep too dear for
sweeps.max_trx_per_sweep, or a hot wallet short of TRX, waits and says why; the estimate
follows the chain's energy price and transfer energy, not the config; the TRX kept for
withdrawals (sweeps.keep_trx_for_withdrawals) pays a withdrawal while the sweep waits."""

from __future__ import annotations

import json
import logging

import pytest
from tronpy.keys import PrivateKey

from meterchat.app import create_app
from meterchat.appkeys import CONFIG, DB
from meterchat.chain import hd
from meterchat.chain.address import to_base58
from meterchat.chain_ctx import CHAIN_INFO, DEVNET, GATEWAY, load_deposit_seed
from meterchat.core.config import Secret
from meterchat.deposits.sweep_rules import USDT_TRANSFER_ENERGY_TO_HOLDER
from meterchat.deposits.sweeper import SWEEPER, Sweeper, sweeper_from_app
from meterchat.money import ledger
from tests.conftest import (
    actor,
    admin_actor,
    audit_ok,
    chain_config,
    devnet_pay,
    eventually,
    fund_tokens,
)

# Real time on purpose (sockets, timers, child processes): tests/conftest.py starts these
# files first, so their waits overlap the other files' work.
pytestmark = pytest.mark.slow

PERSONAL = {"mode": "address_per_user", "watcher_interval_s": 0.1}
MANUAL = {"interval_s": 3600, "min_usdt": 5, "expiry_margin_s": 0.2}


class SimulatedCrash(Exception):
    """The process dies here: nothing after this point runs."""


@pytest.fixture
async def manual(aiohttp_client, tmp_path):
    """address_per_user with the app's own sweeper stopped: tests drive sweepers by hand."""
    client = await aiohttp_client(create_app(chain_config(tmp_path, deposits=PERSONAL,
                                                          sweeps=MANUAL)))
    await client.app[SWEEPER].stop()
    return client


async def funded_address(client, usdt: str) -> tuple[object, str]:
    """A buyer whose own address received `usdt`, credited."""
    buyer = await actor(client)
    address = (await (await buyer.get("/api/deposits/address")).json())["address"]
    await devnet_pay(client.app[DEVNET].url, address, usdt=usdt)

    async def credited():
        return (await buyer.me())["balance"]["available"] != "0"

    await eventually(credited, timeout_s=15)
    return buyer, address


def usdt_transfers_from(node, address: str) -> list[tuple[str, int | None, str | None]]:
    """Every USDT transfer the devnet ever accepted from `address`: (txid, block, result)."""
    out = []
    for txid, block, tx_json, info_json in node.state.conn.execute(
            "SELECT txid, block_num, tx_json, info_json FROM txs ORDER BY seq"):
        contract = json.loads(tx_json)["raw_data"]["contract"][0]
        value = contract["parameter"]["value"]
        if contract["type"] == "TriggerSmartContract" \
                and to_base58(value["owner_address"]) == address:
            out.append((txid, block, json.loads(info_json or "{}").get("receipt", {})
                        .get("result")))
    return out


async def admin_sweeps(client) -> dict:
    admin = await admin_actor(client)
    resp = await admin.get("/api/admin/sweeps")
    body = await resp.json()
    assert resp.status == 200, body
    return body


async def until_sweep(client, sweeper: Sweeper, *statuses: str, timeout_s: float = 20) -> dict:
    admin = await admin_actor(client)

    async def check():
        await sweeper.run_once()
        rows = (await (await admin.get("/api/admin/sweeps")).json())["sweeps"]
        return rows[0] if rows and rows[0]["status"] in statuses else None

    return await eventually(check, timeout_s=timeout_s, interval_s=0.1)


async def test_first_sweep_activates_the_address_and_moves_its_usdt_once(manual, caplog):
    caplog.set_level(logging.DEBUG)
    app = manual.app
    node, gw = app[DEVNET], app[GATEWAY]
    hot = app[CHAIN_INFO].hot_wallet_address
    buyer, address = await funded_address(manual, "7.5")
    hot_usdt, hot_trx = await gw.usdt_balance(hot), await gw.trx_balance_sun(hot)
    assert not await gw.account_exists(address)

    sweeper = sweeper_from_app(app)
    done = await until_sweep(manual, sweeper, "confirmed")
    assert done["usdt"] == "7.5" and done["address"] == address
    assert done["user_id"] == buyer.id
    # Activation by the top-up (1 TRX + 0.1 TRX bandwidth), then the sweep's energy (the
    # hot wallet holds USDT: 64,285 energy at 100 sun; the address's free bandwidth).
    assert done["topup_fee_sun"] == 1_100_000
    assert done["sweep_fee_sun"] == USDT_TRANSFER_ENERGY_TO_HOLDER * 100
    assert done["trx_spent_sun"] == 1_100_000 + USDT_TRANSFER_ENERGY_TO_HOLDER * 100
    topup_sun = done["topup_sun"]
    assert topup_sun == USDT_TRANSFER_ENERGY_TO_HOLDER * 100 + 345_000  # energy + bandwidth
    assert await gw.usdt_balance(address) == 0
    assert await gw.usdt_balance(hot) == hot_usdt + 7_500_000
    assert await gw.trx_balance_sun(hot) == hot_trx - topup_sun - 1_100_000
    assert [t[2] for t in usdt_transfers_from(node, address)] == ["SUCCESS"]
    for _ in range(5):  # more passes move nothing
        await sweeper.run_once()
    assert len(usdt_transfers_from(node, address)) == 1
    # The ledger is unchanged by a sweep: the buyer keeps the 750 tokens credited.
    assert (await buyer.me())["balance"]["available"] == "750"
    await audit_ok(manual)
    body = await admin_sweeps(manual)
    assert body["totals"]["usdt_swept"] == "7.5"
    assert body["totals"]["trx_spent_sun"] == done["trx_spent_sun"]
    # The seed and the keys it derives are never logged nor shown.
    seed = node.deposit_mnemonic
    key = hd.private_key_at(seed, 0)
    logged = " ".join(r.getMessage() + str(r.__dict__) for r in caplog.records)
    assert caplog.records and seed not in logged and key not in logged
    assert seed.split()[0] + " " + seed.split()[1] not in json.dumps(body)


async def test_a_later_sweep_uses_the_trx_left_over_and_needs_no_activation(manual):
    app = manual.app
    node, gw = app[DEVNET], app[GATEWAY]
    _, address = await funded_address(manual, "6")
    sweeper = sweeper_from_app(app)
    await until_sweep(manual, sweeper, "confirmed")
    left = await gw.trx_balance_sun(address)
    assert left == 345_000  # the bandwidth the estimate counted; the free points paid it
    txid = await devnet_pay(node.url, address, usdt="5")
    await node.wait_solidified(txid)
    await eventually(lambda: _owed(app, address), timeout_s=15)
    second = await until_sweep(manual, sweeper, "confirmed")
    assert second["usdt"] == "5"
    assert second["topup_fee_sun"] < 1_100_000  # no activation this time
    assert await gw.usdt_balance(address) == 0
    assert [t[2] for t in usdt_transfers_from(node, address)] == ["SUCCESS", "SUCCESS"]


async def _owed(app, address: str) -> bool:
    rows = await app[DB].read(lambda c: c.execute(
        "SELECT COUNT(*) AS n FROM address_transfers WHERE address = ?", (address,)
    ).fetchone()["n"])
    return rows == 2


@pytest.mark.parametrize("point", ["topup_signed", "topup_broadcast", "signed", "broadcast"])
async def test_crash_at_each_step_then_a_fresh_sweeper_sends_the_same_bytes_once(manual,
                                                                                 point):
    app = manual.app
    node, gw = app[DEVNET], app[GATEWAY]
    _, address = await funded_address(manual, "8")

    def crash(at: str) -> None:
        if at == point:
            raise SimulatedCrash(at)

    dying = sweeper_from_app(app, hook=crash)
    for _ in range(40):
        await dying.run_once()
        if dying.last_error:
            break
        await node.wait_blocks(1)
    assert dying.last_error == f"SimulatedCrash: {point}"
    stored = (await admin_sweeps(manual))["sweeps"][0]
    stored_txid = stored["topup_txid"] if point.startswith("topup") else stored["sweep_txid"]
    assert stored_txid and len(stored_txid) == 64
    await node.wait_blocks(3)  # a broadcast one lands meanwhile (the crash lost its answer)

    fresh = sweeper_from_app(app)
    done = await until_sweep(manual, fresh, "confirmed")
    if point.startswith("topup"):
        assert done["topup_txid"] == stored_txid
    else:
        assert done["sweep_txid"] == stored_txid  # the same signed bytes, never a second
    assert [(t[0], t[2]) for t in usdt_transfers_from(node, address)] == [
        (done["sweep_txid"], "SUCCESS")]
    topups = node.state.conn.execute(
        "SELECT COUNT(*) AS n FROM txs WHERE tx_json LIKE '%TransferContract%'"
        " AND tx_json LIKE ?", (f"%{address}%",)).fetchone()["n"]
    assert topups == 1
    assert await gw.usdt_balance(address) == 0
    await audit_ok(manual)


async def test_a_sweep_dearer_than_max_trx_per_sweep_waits_and_says_why(aiohttp_client,
                                                                       tmp_path):
    cfg = chain_config(tmp_path, deposits=PERSONAL, sweeps={**MANUAL, "max_trx_per_sweep": 2})
    client = await aiohttp_client(create_app(cfg))
    await client.app[SWEEPER].stop()
    _, address = await funded_address(client, "9")
    sweeper = sweeper_from_app(client.app)
    for _ in range(3):
        await sweeper.run_once()
    waiting = (await admin_sweeps(client))["sweeps"][0]
    assert waiting["status"] == "waiting" and waiting["address"] == address
    assert "sweeps.max_trx_per_sweep (2 TRX)" in waiting["wait_reason"]
    assert "activate" in waiting["wait_reason"]
    assert waiting["trx_spent_sun"] == 0 and waiting["topup_txid"] is None
    assert not await client.app[GATEWAY].account_exists(address)  # no TRX was sent
    assert (await admin_sweeps(client))["totals"]["waiting"] == 1
    metrics = await (await client.get("/metrics")).text()
    assert 'meterchat_sweeps{status="waiting"} 1.0' in metrics


async def test_a_hot_wallet_short_of_trx_leaves_the_sweep_waiting_saying_why(manual):
    app = manual.app
    node = app[DEVNET]
    _, address = await funded_address(manual, "9")
    poor = PrivateKey.random()
    poor_address = poor.public_key.to_base58check_address()
    txid = await devnet_pay(node.url, poor_address, trx="0.5")
    await node.wait_solidified(txid)
    info = app[CHAIN_INFO]
    sweeper = Sweeper(app[DB], app[GATEWAY], info.usdt_contract,
                      load_deposit_seed(app[CONFIG], node), Secret(poor.hex()), poor_address,
                      app[CONFIG].sweeps)
    await sweeper.run_once()
    waiting = (await admin_sweeps(manual))["sweeps"][0]
    assert waiting["status"] == "waiting"
    assert waiting["wait_reason"].startswith("the hot wallet holds 0.5 TRX, less than")
    assert await app[GATEWAY].usdt_balance(address) == 9_000_000


async def test_reconcile_counts_usdt_at_personal_addresses_as_the_platforms(manual):
    app = manual.app
    await funded_address(manual, "7")
    admin = await admin_actor(manual)
    report = await (await admin.get("/api/admin/reconcile")).json()
    assert report["ok"], report
    assert report["personal_addresses_usdt_musdt"] == 7_000_000
    assert report["personal_addresses_read"] == 1
    await until_sweep(manual, sweeper_from_app(app), "confirmed")
    after = await (await admin.get("/api/admin/reconcile")).json()
    assert after["ok"] and after["sweeps_trx_spent_sun"] > 0
    assert after["personal_addresses_usdt_musdt"] is None  # nothing left to read
    assert (await app[DB].read(ledger.audit)).ok


async def test_the_estimate_follows_the_chains_energy_price_not_the_config(manual):
    app = manual.app
    node = app[DEVNET]
    node.state.set_energy_price_sun(210)  # the committee raised it; config still says 100
    assert app[CONFIG].sweeps.energy_price_sun == 100
    _, address = await funded_address(manual, "6")
    done = await until_sweep(manual, sweeper_from_app(app), "confirmed")
    # triggerconstantcontract's energy of this transfer (the hot wallet holds USDT) at the
    # price getchainparameters answers, plus the 345 bytes of bandwidth.
    assert done["topup_sun"] == USDT_TRANSFER_ENERGY_TO_HOLDER * 210 + 345_000
    assert done["sweep_fee_sun"] == USDT_TRANSFER_ENERGY_TO_HOLDER * 210
    assert await app[GATEWAY].usdt_balance(address) == 0


async def test_a_nearly_empty_hot_wallet_pays_the_withdrawal_and_the_sweep_waits(
        aiohttp_client, tmp_path):
    from meterchat.withdrawals.sender import SENDER, sender_from_app

    cfg = chain_config(tmp_path, deposits=PERSONAL,
                       sweeps={**MANUAL, "keep_trx_for_withdrawals": 40},
                       withdrawals={"sender_interval_s": 3600, "expiry_margin_s": 0.2})
    client = await aiohttp_client(create_app(cfg))
    app = client.app
    await app[SWEEPER].stop()
    await app[SENDER].stop()
    node, gw = app[DEVNET], app[GATEWAY]
    hot = app[CHAIN_INFO].hot_wallet_address
    _, address = await funded_address(client, "9")
    # 45 TRX left: enough for the sweep's top-up (7.87 TRX) or for a withdrawal (its 40 TRX
    # fee_limit), not for both.
    node.state.add(hot, "TRX", -node.state.balance(hot, "TRX") + 45_000_000)
    seller = await actor(client, "seller")
    await fund_tokens(app, seller.id, "750")
    dest = PrivateKey.random().public_key.to_base58check_address()
    resp = await seller.post("/api/withdrawals", json={"tokens": "400", "address": dest},
                             headers={"Idempotency-Key": "keep-1"})
    assert resp.status == 201
    wid = (await resp.json())["withdrawal"]["id"]

    sweeper = sweeper_from_app(app)
    await sweeper.run_once()  # the sweeper runs first and leaves the 40 TRX kept
    waiting = (await admin_sweeps(client))["sweeps"][0]
    assert waiting["status"] == "waiting" and waiting["topup_txid"] is None
    assert waiting["wait_reason"].startswith(
        "the hot wallet holds 45 TRX and keeps 40 TRX of it for withdrawals "
        "(sweeps.keep_trx_for_withdrawals)")
    assert await gw.trx_balance_sun(hot) == 45_000_000

    sender = sender_from_app(app)

    async def confirmed():
        await sender.run_once()
        rows = (await (await seller.get("/api/withdrawals")).json())["withdrawals"]
        w = next(r for r in rows if r["id"] == wid)
        return w if w["status"] == "confirmed" else None

    done = await eventually(confirmed, timeout_s=20, interval_s=0.1)
    assert done["reason"] is None
    assert await gw.usdt_balance(dest) > 0
    for _ in range(3):
        await sweeper.run_once()
    still = (await admin_sweeps(client))["sweeps"][0]
    assert still["status"] == "waiting" and still["trx_spent_sun"] == 0
    assert still["wait_reason"].startswith("the hot wallet holds")
    assert await gw.usdt_balance(address) == 9_000_000
    await audit_ok(client)
