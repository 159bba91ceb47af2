"""The withdrawal sender against the in-process devnet over real HTTP with the real tronpy
client: the whole path to `confirmed` (the address holds tokens/100 - fees, read through
tronpy), crashes at each step of the sender followed by a fresh sender (or a restarted
server) on the same database and chain proving exactly one transfer on chain, an expired
signed transaction replaced only once proven dead, failures on chain (OUT_OF_ENERGY,
REVERT) that the operator retries or refunds, a hot wallet short of USDT or TRX or without a
key, and an unreachable node that moves nothing."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid

import pytest
from tronpy.keys import PrivateKey

from meterchat.app import create_app
from meterchat.appkeys import CONFIG, DB
from meterchat.chain.address import to_base58
from meterchat.chain.client import ClientSettings, TronClient
from meterchat.chain.gateway import SignedTransfer
from meterchat.chain_ctx import CHAIN_INFO, DEVNET, GATEWAY
from meterchat.core.db import now_ms
from meterchat.events import outbox
from meterchat.money import ledger
from meterchat.withdrawals import sending, store
from meterchat.withdrawals.sender import NO_KEY_REASON, SENDER, WithdrawalSender, sender_from_app
from tests.conftest import (
    actor,
    admin_actor,
    assert_error,
    chain_config,
    eventually,
    fund_tokens,
)

LIVE = {"sender_interval_s": 0.1, "expiry_margin_s": 0.2}
MANUAL = {"sender_interval_s": 3600, "expiry_margin_s": 0.2}


class SimulatedCrash(Exception):
    """The process dies here: nothing after this point runs."""


def fresh_address() -> str:
    return PrivateKey.random().public_key.to_base58check_address()


def transfers_to(node, address: str) -> list[tuple[str, int | None, str | None]]:
    """Every USDT transfer call to `address` the devnet ever accepted: (txid, block or None
    while pending, receipt result)."""
    out = []
    for txid, block, tx_json, info_json in node.state.conn.execute(
            "SELECT txid, block_num, tx_json, info_json FROM txs ORDER BY seq"):
        contract = json.loads(tx_json)["raw_data"]["contract"][0]
        data = contract["parameter"]["value"].get("data", "")
        if contract["type"] == "TriggerSmartContract" and to_base58(data[32:72]) == address:
            out.append((txid, block, json.loads(info_json or "{}").get("receipt", {})
                        .get("result")))
    return out


async def withdraw(user, tokens: str, address: str, key: str | None = None):
    return await user.post("/api/withdrawals", json={"tokens": tokens, "address": address},
                           headers={"Idempotency-Key": key or uuid.uuid4().hex})


async def withdrawal_of(user, wid: str) -> dict:
    rows = (await (await user.get("/api/withdrawals")).json())["withdrawals"]
    return next(w for w in rows if w["id"] == wid)


async def until_status(user, wid: str, *statuses: str, sender=None, timeout_s: float = 15):
    async def check():
        if sender is not None:
            await sender.run_once()
        w = await withdrawal_of(user, wid)
        return w if w["status"] in statuses else None

    return await eventually(check, timeout_s=timeout_s)


async def audit(app) -> dict:
    report = (await app[DB].read(ledger.audit)).as_dict()
    assert report["ok"], report
    return report


@pytest.fixture
async def live(aiohttp_client, tmp_path):
    return await aiohttp_client(create_app(chain_config(tmp_path, withdrawals=LIVE)))


@pytest.fixture
async def manual(aiohttp_client, tmp_path):
    """The app's own sender stopped: each test drives its senders pass by pass."""
    client = await aiohttp_client(create_app(chain_config(tmp_path, withdrawals=MANUAL)))
    await client.app[SENDER].stop()
    return client


async def seller_with(client, tokens: str):
    seller = await actor(client, "seller")
    await fund_tokens(client.app, seller.id, tokens)
    return seller


async def test_bar_seller_withdraws_400_of_750_and_the_address_holds_2_5_usdt(live, caplog):
    caplog.set_level(logging.DEBUG)
    app = live.app
    node, gateway = app[DEVNET], app[GATEWAY]
    seller = await seller_with(live, "750")  # earned in calls: credited through the ledger
    dest = fresh_address()
    await assert_error(await withdraw(seller, "400", "Tbad"), 422, "invalid_address")
    await assert_error(await withdraw(seller, "299", dest), 422, "below_minimum")
    await assert_error(await withdraw(seller, "751", dest), 402, "insufficient_funds")
    buyer = await actor(live, "buyer")
    await fund_tokens(app, buyer.id, "750")
    await assert_error(await withdraw(buyer, "400", dest), 403, "withdrawals_not_allowed")

    first = await withdraw(seller, "400", dest, key="bar-1")
    again = await withdraw(seller, "400", dest, key="bar-1")
    w = (await first.json())["withdrawal"]
    assert first.status == again.status == 201
    assert (await again.json())["withdrawal"]["id"] == w["id"]
    assert (await seller.me())["balance"]["available"] == "350"

    # Ten concurrent requests against the remaining 350 tokens: at most one passes.
    other = fresh_address()
    answers = await asyncio.gather(*(withdraw(seller, "300", other) for _ in range(10)))
    assert sorted(r.status for r in answers) == [201] + [402] * 9
    assert (await seller.me())["balance"]["available"] == "50"

    done = await until_status(seller, w["id"], "confirmed")
    assert len(done["txid"]) == 64 and done["block_number"] > 0
    assert await gateway.usdt_balance(dest) == 2_500_000  # 4 - 0.5 - 1.0, read through tronpy
    second = next(r for r in answers if r.status == 201)
    w2 = await until_status(seller, (await second.json())["withdrawal"]["id"], "confirmed")
    assert await gateway.usdt_balance(other) == 1_500_000
    assert [t[0] for t in transfers_to(node, dest)] == [done["txid"]]
    assert [t[0] for t in transfers_to(node, other)] == [w2["txid"]]
    report = await audit(app)
    assert report["withdrawals_out_musdt"] == 4_000_000
    assert report["clearing_musdt"] == 0
    fees = await app[DB].read(ledger.balance, ledger.REVENUE_WITHDRAWAL_FEES)
    assert fees == 3_000_000
    # The hot wallet paid the net and burned TRX within the explicit fee_limit.
    tx = await gateway.get_transaction(done["txid"])
    assert tx.succeeded and 0 < tx.fee_sun <= app[CONFIG].withdrawals.fee_limit_trx * 10**6
    assert tx.owner_address == app[CHAIN_INFO].hot_wallet_address
    metrics = await (await live.get("/metrics")).text()
    assert 'meterchat_withdrawals{status="confirmed"} 2.0' in metrics
    key = app[CHAIN_INFO].hot_wallet_key.reveal()
    assert caplog.records and not any(key in r.getMessage() or key in str(r.__dict__)
                                      for r in caplog.records)


@pytest.mark.parametrize("point", ["built", "signed", "broadcast"])
async def test_crash_at_each_step_then_a_fresh_sender_sends_exactly_once(manual, point):
    app = manual.app
    node = app[DEVNET]
    seller = await seller_with(manual, "750")
    dest = fresh_address()
    w = (await (await withdraw(seller, "400", dest)).json())["withdrawal"]

    def crash(at: str) -> None:
        if at == point:
            raise SimulatedCrash(at)

    dying = sender_from_app(app, hook=crash)
    await dying.run_once()
    assert dying.last_error == f"SimulatedCrash: {point}"
    after_crash = await withdrawal_of(seller, w["id"])
    stored_txid = after_crash["txid"]
    if point == "built":
        assert after_crash["status"] == "queued" and stored_txid is None
    else:
        assert after_crash["status"] == "signed" and len(stored_txid) == 64
    await node.wait_blocks(3)  # a broadcast one lands meanwhile (the crash lost its answer)

    fresh = sender_from_app(app)
    done = await until_status(seller, w["id"], "confirmed", sender=fresh)
    if stored_txid is not None:
        assert done["txid"] == stored_txid  # the same signed bytes, never a second one
    on_chain = transfers_to(node, dest)
    assert [(t[0], t[2]) for t in on_chain] == [(done["txid"], "SUCCESS")]
    assert await app[GATEWAY].usdt_balance(dest) == 2_500_000
    for _ in range(5):  # more passes change nothing
        await fresh.run_once()
    assert len(transfers_to(node, dest)) == 1
    assert (await audit(app))["withdrawals_out_musdt"] == 2_500_000


async def test_server_killed_after_broadcast_restarts_and_confirms_once(aiohttp_client,
                                                                        tmp_path):
    cfg = chain_config(tmp_path, withdrawals=MANUAL)
    client = await aiohttp_client(create_app(cfg))
    await client.app[SENDER].stop()
    seller = await seller_with(client, "750")
    dest = fresh_address()
    w = (await (await withdraw(seller, "400", dest)).json())["withdrawal"]

    def crash(at: str) -> None:
        if at == "broadcast":
            raise SimulatedCrash(at)

    await sender_from_app(client.app, hook=crash).run_once()
    txid = (await withdrawal_of(seller, w["id"]))["txid"]
    await client.close()  # the whole server and its devnet node go down

    restarted = await aiohttp_client(create_app(chain_config(tmp_path, withdrawals=LIVE)))
    seller.client = restarted
    done = await until_status(seller, w["id"], "confirmed")
    assert done["txid"] == txid
    assert [t[0] for t in transfers_to(restarted.app[DEVNET], dest)] == [txid]
    assert await restarted.app[GATEWAY].usdt_balance(dest) == 2_500_000


async def test_expired_unsent_transaction_is_replaced_only_once_proven_dead(manual):
    app = manual.app
    node, gateway, info = app[DEVNET], app[GATEWAY], app[CHAIN_INFO]
    seller = await seller_with(manual, "750")
    dest = fresh_address()
    w = (await (await withdraw(seller, "400", dest)).json())["withdrawal"]
    # A transaction signed with a short life and stored, then the process died before
    # broadcasting it (as the sender would have, with a 0.3 s expiration).
    hot = info.hot_wallet_address
    tron = await gateway.nodes[0].client.tronpy_client()
    contract = await tron.get_contract(info.usdt_contract)
    builder = await contract.functions.transfer.with_owner(hot)(dest, 2_500_000)
    txn = await builder.with_owner(hot).fee_limit(40_000_000).expiration(300).build()
    txn.sign(PrivateKey(bytes.fromhex(node.hot_wallet_key_hex)))
    body = txn.to_json()
    old = SignedTransfer(body["txID"], body["raw_data"]["expiration"], json.dumps(body))
    assert await app[DB].tx(sending.store_signed_tx, int(w["id"]), old, 40_000_000, now_ms())

    await asyncio.sleep(0.35)
    fresh = sender_from_app(app)
    await fresh.run_once()  # expired by our clock, but not yet proven absent: no new tx
    assert (await withdrawal_of(seller, w["id"]))["txid"] == old.txid
    done = await until_status(seller, w["id"], "confirmed", sender=fresh)
    assert done["txid"] != old.txid
    assert [t[0] for t in transfers_to(node, dest)] == [done["txid"]]
    assert await gateway.get_transaction(old.txid) is None
    assert await gateway.usdt_balance(dest) == 2_500_000
    history = await app[DB].read(store.transactions_of, int(w["id"]))
    assert [(h["txid"], h["outcome"]) for h in history] == \
        [(old.txid, "expired"), (done["txid"], "confirmed")]


async def test_out_of_energy_fails_then_operator_retries_and_it_confirms(manual, tmp_path):
    app = manual.app
    node = app[DEVNET]
    admin = await admin_actor(manual)
    seller = await seller_with(manual, "750")
    dest = fresh_address()
    w = (await (await withdraw(seller, "400", dest)).json())["withdrawal"]
    # A fee_limit of 1 TRX cannot pay the ~13 TRX of energy a first USDT transfer burns.
    cheap_cfg = app[CONFIG].replace(withdrawals={"fee_limit_trx": 1}).withdrawals
    info = app[CHAIN_INFO]
    cheap = WithdrawalSender(app[DB], app[GATEWAY], info.usdt_contract, info.hot_wallet_key,
                             info.hot_wallet_address, cheap_cfg)
    failed = await until_status(seller, w["id"], "failed", sender=cheap)
    assert "OUT_OF_ENERGY" in failed["reason"]
    assert (await seller.me())["balance"]["available"] == "350"  # still in clearing
    for _ in range(3):  # nothing moves a failed withdrawal by itself
        await cheap.run_once()
    assert (await withdrawal_of(seller, w["id"]))["status"] == "failed"

    resp = await admin.post(f"/api/admin/withdrawals/{w['id']}/approve")  # retry
    assert (await resp.json())["withdrawal"]["status"] == "queued"
    done = await until_status(seller, w["id"], "confirmed", sender=sender_from_app(app))
    assert done["txid"] != failed["txid"]
    # Each final state wrote its operator event, in its transaction.
    written = [(e.type, e.data["txid"], e.data["withdrawal_id"])
               for e in reversed(await app[DB].read(outbox.newest))
               if e.type.startswith("withdrawal.")]
    assert written == [("withdrawal.failed", failed["txid"], w["id"]),
                       ("withdrawal.confirmed", done["txid"], w["id"])]
    assert [(t[0], t[2]) for t in transfers_to(node, dest)] == \
        [(failed["txid"], "OUT_OF_ENERGY"), (done["txid"], "SUCCESS")]
    assert await app[GATEWAY].usdt_balance(dest) == 2_500_000
    await assert_error(await admin.post(f"/api/admin/withdrawals/{w['id']}/reject"), 409,
                       "withdrawal_not_rejectable")
    assert (await audit(app))["withdrawals_out_musdt"] == 2_500_000


async def test_revert_on_chain_fails_and_the_operator_returns_the_tokens(manual):
    app = manual.app
    node = app[DEVNET]
    info = app[CHAIN_INFO]
    admin = await admin_actor(manual)
    seller = await seller_with(manual, "750")
    dest = fresh_address()
    w = (await (await withdraw(seller, "400", dest)).json())["withdrawal"]
    drained = {}

    def empty_hot_wallet(at: str) -> None:
        # Someone empties the hot wallet between signing and the block: the call reverts.
        if at == "signed" and not drained:
            drained["usdt"] = node.state.balance(info.hot_wallet_address, "USDT")
            node.state.add(info.hot_wallet_address, "USDT", -drained["usdt"])

    sender = sender_from_app(app, hook=empty_hot_wallet)
    failed = await until_status(seller, w["id"], "failed", sender=sender)
    assert "REVERT" in failed["reason"]
    assert transfers_to(node, dest)[0][2] == "REVERT"
    assert await app[GATEWAY].usdt_balance(dest) == 0

    resp = await admin.post(f"/api/admin/withdrawals/{w['id']}/reject")
    body = await resp.json()
    assert resp.status == 200 and body["withdrawal"]["status"] == "rejected"
    assert (await seller.me())["balance"]["available"] == "750"
    report = await audit(app)
    assert report["clearing_musdt"] == 0 and report["withdrawals_out_musdt"] == 0
    node.state.add(info.hot_wallet_address, "USDT", drained["usdt"])


async def test_hot_wallet_short_of_usdt_or_trx_waits_and_says_why(manual):
    app = manual.app
    node = app[DEVNET]
    hot = app[CHAIN_INFO].hot_wallet_address
    seller = await seller_with(manual, "750")
    dest = fresh_address()
    w = (await (await withdraw(seller, "400", dest)).json())["withdrawal"]
    sender = sender_from_app(app)

    usdt = node.state.balance(hot, "USDT")
    node.state.add(hot, "USDT", -usdt + 2_499_999)  # one µUSDT short of the net
    await sender.run_once()
    waiting = await withdrawal_of(seller, w["id"])
    assert waiting["status"] == "queued" and "too little USDT" in waiting["reason"]
    node.state.add(hot, "USDT", usdt - 2_499_999)

    trx = node.state.balance(hot, "TRX")
    node.state.add(hot, "TRX", -trx + 39_999_999)  # below the 40 TRX fee_limit
    await sender.run_once()
    waiting = await withdrawal_of(seller, w["id"])
    assert waiting["status"] == "queued" and "too little TRX" in waiting["reason"]
    node.state.add(hot, "TRX", trx - 39_999_999)

    done = await until_status(seller, w["id"], "confirmed", sender=sender)
    assert done["reason"] is None
    assert await app[GATEWAY].usdt_balance(dest) == 2_500_000


async def test_without_a_hot_wallet_key_withdrawals_queue_for_the_operator(manual):
    app = manual.app
    info = app[CHAIN_INFO]
    seller = await seller_with(manual, "750")
    w = (await (await withdraw(seller, "400", fresh_address())).json())["withdrawal"]
    keyless = WithdrawalSender(app[DB], app[GATEWAY], info.usdt_contract, None, None,
                               app[CONFIG].withdrawals)
    await keyless.run_once()
    waiting = await withdrawal_of(seller, w["id"])
    assert waiting["status"] == "queued" and waiting["reason"] == NO_KEY_REASON
    assert info.hot_wallet_key.reveal() not in json.dumps(waiting)


async def test_an_unreachable_node_never_moves_a_sent_withdrawal(manual):
    app = manual.app
    seller = await seller_with(manual, "750")
    dest = fresh_address()
    w = (await (await withdraw(seller, "400", dest)).json())["withdrawal"]
    sender = sender_from_app(app)
    await sender.run_once()
    assert (await withdrawal_of(seller, w["id"]))["status"] == "sent"
    info = app[CHAIN_INFO]
    dead = TronClient(ClientSettings(endpoint="http://127.0.0.1:9", timeout_s=0.5,
                                     usdt_contract=info.usdt_contract))
    try:
        blind = WithdrawalSender(app[DB], dead, info.usdt_contract, info.hot_wallet_key,
                                 info.hot_wallet_address, app[CONFIG].withdrawals)
        for _ in range(3):
            await blind.run_once()
            blind.backoff_until = 0
        assert blind.failures == 3 and "wallet/" in (blind.last_error or "")
    finally:
        await dead.close()
    assert (await withdrawal_of(seller, w["id"]))["status"] == "sent"
    done = await until_status(seller, w["id"], "confirmed", sender=sender)
    assert len(transfers_to(app[DEVNET], dest)) == 1 and done["txid"]
