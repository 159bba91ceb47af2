"""Sweeps paid with energy lent by Stake 2.0 (sweeps.energy = "delegate"), against the
in-process devnet over real HTTP with the real tronpy client: the hot wallet's stake lends
the address just the energy its transfer needs, the sweep burns no TRX for energy, the stake
comes back once the sweep is final, each of the two stake transactions exactly once (a
sweeper killed after signing or after broadcasting either is followed by a fresh one sending
the same stored bytes), every TRX burned recorded; a hot wallet without stake waits saying
why."""

from __future__ import annotations

import json

import pytest
from tronpy import AsyncTron
from tronpy.keys import PrivateKey
from tronpy.providers.async_http import AsyncHTTPProvider

from meterchat.app import create_app
from meterchat.chain.address import to_base58
from meterchat.chain.devnet.stake import OTHER_ENERGY_WEIGHT
from meterchat.chain_ctx import CHAIN_INFO, DEVNET, GATEWAY
from meterchat.deposits.sweep_rules import USDT_TRANSFER_ENERGY_TO_HOLDER
from meterchat.deposits.sweeper import SWEEPER, sweeper_from_app
from tests.conftest import admin_actor, audit_ok, chain_config, eventually
from tests.test_sweeps import PERSONAL, SimulatedCrash, admin_sweeps, funded_address

# Real time on purpose (sockets, timers, child processes): tests/conftest.py starts these
# files first, so their waits overlap the other files' work.
pytestmark = pytest.mark.slow

TRX = 1_000_000
DELEGATE = {"interval_s": 3600, "min_usdt": 5, "expiry_margin_s": 0.2, "energy": "delegate"}


@pytest.fixture
async def manual(aiohttp_client, tmp_path):
    client = await aiohttp_client(create_app(chain_config(tmp_path, deposits=PERSONAL,
                                                          sweeps=DELEGATE)))
    await client.app[SWEEPER].stop()
    return client


async def stake(app, trx: int) -> None:
    """The hot wallet stakes `trx` TRX for ENERGY (freezebalancev2, through tronpy)."""
    node = app[DEVNET]
    tron = AsyncTron(AsyncHTTPProvider(node.url + "/", timeout=5.0))
    try:
        hot = PrivateKey(bytes.fromhex(node.hot_wallet_key_hex))
        txn = await tron.trx.freeze_balance(node.hot_wallet_address, trx * TRX,
                                            "ENERGY").build()
        ret = await txn.sign(hot).broadcast()
        await node.wait_solidified(ret.txid)
    finally:
        await tron.close()


def stake_txs(node, address: str) -> dict[str, list[tuple[str, str | None]]]:
    """The devnet's DelegateResource / UnDelegateResource transactions to `address`:
    {type: [(txid, contractRet)]}."""
    out: dict[str, list[tuple[str, str | None]]] = {}
    for txid, tx_json in node.state.conn.execute("SELECT txid, tx_json FROM txs ORDER BY seq"):
        tx = json.loads(tx_json)
        c = tx["raw_data"]["contract"][0]
        receiver = c["parameter"]["value"].get("receiver_address")
        if receiver and to_base58(receiver) == address:
            out.setdefault(c["type"], []).append(
                (txid, (tx.get("ret") or [{}])[0].get("contractRet")))
    return out


async def until_reclaimed(client, sweeper, timeout_s: float = 30) -> dict:
    admin = await admin_actor(client)

    async def check():
        await sweeper.run_once()
        rows = (await (await admin.get("/api/admin/sweeps")).json())["sweeps"]
        return rows[0] if rows and rows[0]["delegation"] == "undelegated" else None

    return await eventually(check, timeout_s=timeout_s, interval_s=0.1)


async def test_lent_energy_pays_the_sweep_and_comes_back(manual):
    app = manual.app
    node, gw = app[DEVNET], app[GATEWAY]
    hot = app[CHAIN_INFO].hot_wallet_address
    await stake(app, 7_000)
    buyer, address = await funded_address(manual, "7.5")
    hot_usdt, hot_trx = await gw.usdt_balance(hot), await gw.trx_balance_sun(hot)

    done = await until_reclaimed(manual, sweeper_from_app(app))
    assert done["status"] == "confirmed" and done["energy"] == "delegate"
    # Stake for 64,285 energy at 180e9 energy over (18e9 + 7,000) TRX, one TRX for rounding.
    weight = OTHER_ENERGY_WEIGHT + 7_000
    assert done["delegated_sun"] == (-(-USDT_TRANSFER_ENERGY_TO_HOLDER * weight
                                       // 180_000_000_000) + 1) * TRX == 6_430 * TRX
    # The address was activated with its bandwidth's TRX; its transfer burned nothing.
    assert done["topup_sun"] == 345_000 and done["topup_fee_sun"] == 1_100_000
    assert done["sweep_fee_sun"] == 0
    fees = [tx.fee_sun for tx in [await gw.get_transaction(t) for t in
                                  (done["delegate_txid"], done["undelegate_txid"])]]
    assert done["delegation_fee_sun"] == sum(fees)
    assert done["trx_spent_sun"] == 1_100_000 + sum(fees)
    assert await gw.usdt_balance(address) == 0
    assert await gw.usdt_balance(hot) == hot_usdt + 7_500_000
    assert await gw.trx_balance_sun(hot) == hot_trx - 345_000 - 1_100_000 - sum(fees)
    receipt = node.state.stored_tx(done["sweep_txid"]).info["receipt"]
    assert receipt["energy_usage"] == USDT_TRANSFER_ENERGY_TO_HOLDER
    assert receipt["energy_fee"] == 0
    # Lent once, taken back once; the address holds no energy now.
    txs = stake_txs(node, address)
    assert txs == {"DelegateResourceContract": [(done["delegate_txid"], "SUCCESS")],
                   "UnDelegateResourceContract": [(done["undelegate_txid"], "SUCCESS")]}
    res = await gw.account_resource(address)
    assert res.energy_limit == 0
    assert await gw.delegatable_sun(hot, "ENERGY") < 7_000 * TRX  # the usage moved back
    assert (await buyer.me())["balance"]["available"] == "750"
    await audit_ok(manual)


@pytest.mark.parametrize("point", ["delegate_signed", "delegate_broadcast",
                                   "undelegate_signed", "undelegate_broadcast"])
async def test_a_sweeper_killed_at_each_stake_step_sends_the_same_bytes_once(manual, point):
    app = manual.app
    node = app[DEVNET]
    await stake(app, 7_000)
    _, address = await funded_address(manual, "8")

    def crash(at: str) -> None:
        if at == point:
            raise SimulatedCrash(at)

    dying = sweeper_from_app(app, hook=crash)
    for _ in range(60):
        await dying.run_once()
        if dying.last_error:
            break
        await node.wait_blocks(1)
    assert dying.last_error == f"SimulatedCrash: {point}"
    stored = (await admin_sweeps(manual))["sweeps"][0]
    key = "delegate_txid" if point.startswith("delegate") else "undelegate_txid"
    stored_txid = stored[key]
    assert stored_txid and len(stored_txid) == 64
    await node.wait_blocks(3)

    done = await until_reclaimed(manual, sweeper_from_app(app))
    assert done[key] == stored_txid  # the same signed bytes, never a second
    txs = stake_txs(node, address)
    assert [t[1] for t in txs["DelegateResourceContract"]] == ["SUCCESS"]
    assert [t[1] for t in txs["UnDelegateResourceContract"]] == ["SUCCESS"]
    assert done["status"] == "confirmed"
    await audit_ok(manual)


async def test_a_hot_wallet_without_stake_leaves_the_sweep_waiting_saying_why(manual):
    app = manual.app
    _, address = await funded_address(manual, "9")
    sweeper = sweeper_from_app(app)
    await sweeper.run_once()
    waiting = (await admin_sweeps(manual))["sweeps"][0]
    assert waiting["status"] == "waiting" and waiting["trx_spent_sun"] == 0
    assert waiting["wait_reason"].startswith(
        "the hot wallet can lend 0 TRX of its energy stake, less than the 6430 TRX")
    assert 'sweeps.energy = "burn"' in waiting["wait_reason"]
    assert not await app[GATEWAY].account_exists(address)  # nothing was sent
    await stake(app, 7_000)  # the operator stakes: the sweep goes on
    admin = await admin_actor(manual)

    async def confirmed():
        await sweeper.run_once()
        rows = (await (await admin.get("/api/admin/sweeps")).json())["sweeps"]
        return rows[0] if rows[0]["status"] == "confirmed" else None

    done = await eventually(confirmed, timeout_s=30, interval_s=0.1)
    assert done["sweep_fee_sun"] == 0


def test_migration_0018_keeps_every_sweep_and_its_transactions(tmp_path):
    import shutil

    from meterchat.core.db import MIGRATIONS_DIR, connect_sync, migrate_sync

    older = tmp_path / "migs"
    older.mkdir()
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        if int(path.name[:4]) < 18:
            shutil.copy(path, older / path.name)
    conn = connect_sync(tmp_path / "m.sqlite3")
    migrate_sync(conn, older)
    conn.execute("PRAGMA foreign_keys=OFF")  # rows standing for a user's address
    conn.execute("INSERT INTO deposit_addresses (user_id, derivation_index, address,"
                 " created_at_ms) VALUES (1, 0, 'TAddr', 1)")
    conn.execute("INSERT INTO sweeps (id, address, amount_musdt, status, sweep_txid,"
                 " created_at_ms, updated_at_ms) VALUES (7, 'TAddr', 5, 'sent', 'ab', 1, 2)")
    conn.execute("INSERT INTO sweep_txs (txid, sweep_id, kind, signed_json, expiration_ms,"
                 " amount, broadcasts, created_at_ms) VALUES ('ab', 7, 'sweep', '{}', 9, 5,"
                 " 3, 1)")
    conn.execute("PRAGMA foreign_keys=ON")
    assert migrate_sync(conn) == ["0018_sweep_delegation"]
    sweep = conn.execute("SELECT status, energy_mode, delegation_status, delegated_sun"
                         " FROM sweeps WHERE id = 7").fetchone()
    assert tuple(sweep) == ("sent", "burn", None, 0)
    tx = conn.execute("SELECT sweep_id, kind, broadcasts FROM sweep_txs WHERE txid = 'ab'"
                      ).fetchone()
    assert tuple(tx) == (7, "sweep", 3)
    conn.execute("INSERT INTO sweep_txs (txid, sweep_id, kind, signed_json, expiration_ms,"
                 " amount, created_at_ms) VALUES ('cd', 7, 'delegate', '{}', 9, 5, 1)")
    assert conn.execute("PRAGMA foreign_key_check(sweep_txs)").fetchall() == []
