"""The devnet node, driven by the real tronpy 0.6.2 client over real HTTP: balances, USDT
transfers with mainnet-shaped receipts and logs, solidification, every broadcast refusal,
energy and OUT_OF_ENERGY, the faucet, status, the CLI, and state across a restart."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from tronpy import AsyncTron
from tronpy.keys import PrivateKey
from tronpy.providers.async_http import AsyncHTTPProvider

from meterchat.chain.client import ClientSettings, TronClient
from meterchat.chain.devnet import (
    ENERGY_PRICE_SUN,
    ENERGY_TO_FRESH,
    ENERGY_TO_HOLDER,
    DevnetNode,
    DevnetSettings,
)
from meterchat.chain.gateway import TRANSFER_TOPIC
from tests.conftest import devnet_pay

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
async def node(tmp_path):
    n = DevnetNode(DevnetSettings(tmp_path / "devnet.sqlite3", block_time_s=0.1,
                                  solidify_depth=2))
    await n.start()
    yield n
    await n.stop()


@pytest.fixture
async def tron(node):
    client = AsyncTron(AsyncHTTPProvider(node.url + "/", timeout=5.0),
                       conf={"fee_limit": 40_000_000})
    yield client
    await client.close()


@pytest.fixture
async def gateway(node):
    gw = TronClient(ClientSettings(node.url, node.usdt_contract, 5.0))
    yield gw
    await gw.close()


async def test_tronpy_reads_usdt_contract_balances_and_decimals(node, tron):
    usdt = await tron.get_contract(node.usdt_contract)
    assert await usdt.functions.decimals() == 6
    assert await usdt.functions.symbol() == "USDT"
    assert await usdt.functions.balanceOf(node.hot_wallet_address) == 100_000 * 10**6
    assert await usdt.functions.balanceOf(node.deposit_address) == 0
    assert await tron.get_account_balance(node.hot_wallet_address) == 10_000
    assert await tron.get_latest_solid_block_number() >= 0


async def test_tronpy_transfer_is_mined_with_mainnet_shaped_receipt_and_transfer_log(node, tron):
    key = PrivateKey(bytes.fromhex(node.hot_wallet_key_hex))
    usdt = await tron.get_contract(node.usdt_contract)
    to = node.deposit_address
    builder = await usdt.functions.transfer.with_owner(node.hot_wallet_address)(to, 12_345_678)
    txn = await builder.with_owner(node.hot_wallet_address).fee_limit(40_000_000).build()
    ret = await txn.sign(key).broadcast()
    assert ret["result"] is True and ret.txid == txn.txid
    receipt = await ret.wait(timeout=10, interval=0.05)
    assert receipt["receipt"]["result"] == "SUCCESS"
    assert receipt["receipt"]["energy_usage_total"] == ENERGY_TO_FRESH
    assert receipt["fee"] == ENERGY_TO_FRESH * ENERGY_PRICE_SUN
    (log,) = receipt["log"]
    assert log["address"] == node.usdt_contract  # base58, as with visible=true
    assert log["topics"][0] == TRANSFER_TOPIC
    assert not log["data"].startswith("0x") and len(log["data"]) == 64
    # tronpy's own event decoding reads it (it silently skips hex log addresses).
    (event,) = list(usdt.events.Transfer.process_receipt(receipt))
    assert event["event"] == "Transfer"
    assert event["args"] == {"from": node.hot_wallet_address, "to": to, "value": 12_345_678}
    assert await usdt.functions.balanceOf(to) == 12_345_678
    # Tether's transfer() reports false even on success: judge by receipt and log only.
    assert await ret.result(timeout=5, interval=0.05) is False
    tx = await tron.get_transaction(txn.txid)
    assert tx["ret"][0]["contractRet"] == "SUCCESS"
    assert tx["raw_data"]["contract"][0]["parameter"]["value"]["owner_address"] == \
        node.hot_wallet_address
    # The second transfer to a holder costs the smaller mainnet figure.
    tx2 = node.transfer(to, usdt_musdt=1)
    await node.wait_solidified(tx2)
    info2 = await tron.get_solid_transaction_info(tx2)
    assert info2["receipt"]["energy_usage_total"] == ENERGY_TO_HOLDER


async def test_block_becomes_solidified_only_after_depth_blocks(node, gateway):
    txid = node.transfer(node.deposit_address, usdt_musdt=5_000_000)
    tx = None
    while tx is None:
        await node.wait_blocks(1)
        tx = await gateway.get_transaction(txid)
    # Seen in a block: not solidified until 2 more blocks are on top.
    assert tx.in_block
    if tx.solidified:
        assert await gateway.solidified_block_number() >= tx.block_number
    else:
        assert await gateway.head_block_number() - tx.block_number < 2
    await node.wait_solidified(txid)
    tx = await gateway.get_transaction(txid)
    assert tx.solidified and tx.result == "SUCCESS"
    assert await gateway.head_block_number() - tx.block_number >= 2
    bt = await gateway.block_transfers(tx.block_number, node.usdt_contract)
    assert [t.txid for t in bt.transfers] == [txid]
    assert bt.block_time_ms == tx.block_time_ms


async def test_rebroadcast_of_same_signed_transaction_is_dup(node, gateway):
    signed = await gateway.build_usdt_transfer(node.hot_wallet_key_hex, node.deposit_address,
                                               1_000_000, 40_000_000)
    first = await gateway.broadcast(signed.signed_json)
    again = await gateway.broadcast(signed.signed_json)
    assert first.ok and first.code == "SUCCESS"
    assert not again.ok and again.duplicate and again.code == "DUP_TRANSACTION_ERROR"
    await node.wait_solidified(signed.txid)
    later = await gateway.broadcast(signed.signed_json)
    assert later.duplicate  # still known once mined
    assert await gateway.usdt_balance(node.deposit_address) == 1_000_000


async def test_broadcast_refusals_carry_java_tron_codes(node, gateway):
    signed = await gateway.build_usdt_transfer(node.hot_wallet_key_hex, node.deposit_address,
                                               2_000_000, 40_000_000)
    body = json.loads(signed.signed_json)

    tampered = json.loads(signed.signed_json)
    tampered["raw_data"]["fee_limit"] = 41_000_000  # changed after signing: new TXID
    r = await gateway.broadcast(json.dumps(tampered))
    assert (r.ok, r.code) == (False, "SIGERROR")

    stranger = PrivateKey.random()
    forged = dict(body, signature=[stranger.sign_msg_hash(bytes.fromhex(signed.txid)).hex()])
    r = await gateway.broadcast(json.dumps(forged))
    assert (r.ok, r.code) == (False, "SIGERROR")

    unsigned = dict(body, signature=[])
    assert (await gateway.broadcast(json.dumps(unsigned))).code == "SIGERROR"

    expired = json.loads(signed.signed_json)
    expired["raw_data"]["expiration"] = expired["raw_data"]["timestamp"] - 1
    r = await gateway.broadcast(json.dumps(expired))
    assert r.code == "TRANSACTION_EXPIRATION_ERROR"

    bad_ref = json.loads(signed.signed_json)
    bad_ref["raw_data"]["ref_block_hash"] = "00" * 8
    assert (await gateway.broadcast(json.dumps(bad_ref))).code == "TAPOS_ERROR"

    # None of those moved anything; the genuine one still goes through.
    assert (await gateway.broadcast(signed.signed_json)).ok
    await node.wait_solidified(signed.txid)
    assert await gateway.usdt_balance(node.deposit_address) == 2_000_000


async def test_low_fee_limit_ends_out_of_energy_burning_the_fee_limit(node, gateway):
    before_trx = await gateway.trx_balance_sun(node.hot_wallet_address)
    before_usdt = await gateway.usdt_balance(node.hot_wallet_address)
    fee_limit = 10_000_000  # tronpy's default: too low for a transfer to a fresh address
    signed = await gateway.build_usdt_transfer(node.hot_wallet_key_hex, node.deposit_address,
                                               3_000_000, fee_limit)
    assert (await gateway.broadcast(signed.signed_json)).ok
    await node.wait_solidified(signed.txid)
    tx = await gateway.get_transaction(signed.txid)
    assert tx.in_block and tx.result == "OUT_OF_ENERGY" and tx.transfers == ()
    assert tx.fee_sun == fee_limit
    assert await gateway.trx_balance_sun(node.hot_wallet_address) == before_trx - fee_limit
    assert await gateway.usdt_balance(node.hot_wallet_address) == before_usdt
    assert await gateway.usdt_balance(node.deposit_address) == 0


async def test_transfer_beyond_balance_reverts(node, gateway):
    poor = PrivateKey.random()
    poor_addr = poor.public_key.to_base58check_address()
    trx_txid = node.transfer(poor_addr, trx_sun=50_000_000)
    usdt_txid = node.transfer(poor_addr, usdt_musdt=1_000_000)
    await node.wait_solidified(usdt_txid)
    assert (await gateway.get_transaction(trx_txid)).contract_type == "TransferContract"
    signed = await gateway.build_usdt_transfer(poor.hex(), node.deposit_address, 2_000_000,
                                               40_000_000)
    assert (await gateway.broadcast(signed.signed_json)).ok
    await node.wait_solidified(signed.txid)
    tx = await gateway.get_transaction(signed.txid)
    assert tx.result == "REVERT" and tx.transfers == ()
    assert await gateway.usdt_balance(poor_addr) == 1_000_000


async def test_faucet_and_status_over_http_never_show_keys(node):
    txid = await devnet_pay(node.url, node.deposit_address, usdt="10.000317")
    assert len(txid) == 64
    async with aiohttp.ClientSession() as http:
        async with http.get(node.url + "/devnet/status") as resp:
            status = await resp.json()
        async with http.post(node.url + "/devnet/transfer",
                             json={"to": "Tnotanaddress", "usdt": "1"}) as resp:
            assert resp.status == 400
        async with http.post(node.url + "/devnet/transfer",
                             json={"to": node.deposit_address, "usdt": "1.0000001"}) as resp:
            assert resp.status == 400
    assert {"block", "solidified_block", "usdt_contract", "deposit_address"} <= set(status)
    assert status["usdt_contract"] == node.usdt_contract
    assert status["deposit_address"] == node.deposit_address
    dump = json.dumps(status)
    for secret in (node.hot_wallet_key_hex, node.faucet_key_hex):
        assert secret not in dump
    await node.wait_solidified(txid)
    async with aiohttp.ClientSession() as http:
        async with http.post(node.url + "/wallet/getnodeinfo", json={}) as resp:
            info = await resp.text()
    for secret in (node.hot_wallet_key_hex, node.faucet_key_hex):
        assert secret not in info


async def test_unknown_transaction_and_bad_ids(node, gateway, tron):
    assert await gateway.get_transaction("ab" * 32) is None
    from tronpy.exceptions import TransactionNotFound

    with pytest.raises(TransactionNotFound):
        await tron.get_transaction("ab" * 32)


async def test_state_survives_a_restart(tmp_path):
    settings = DevnetSettings(tmp_path / "devnet.sqlite3", block_time_s=0.1, solidify_depth=2)
    node = DevnetNode(settings)
    await node.start()
    deposit, usdt = node.deposit_address, node.usdt_contract
    txid = node.transfer(deposit, usdt_musdt=7_000_000)
    block = await node.wait_solidified(txid)
    await node.stop()

    again = DevnetNode(settings)
    await again.start()
    try:
        assert (again.deposit_address, again.usdt_contract) == (deposit, usdt)
        gw = TronClient(ClientSettings(again.url, usdt, 5.0))
        try:
            assert await gw.usdt_balance(deposit) == 7_000_000
            tx = await gw.get_transaction(txid)
            assert tx.block_number == block and tx.solidified
            head = await gw.head_block_number()
            await again.wait_blocks(2)
            assert await gw.head_block_number() > head >= block
        finally:
            await gw.close()
    finally:
        await again.stop()


async def test_cli_devnet_transfer_prints_the_txid(node, gateway):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "meterchat.cli", "devnet", "transfer", "--to", node.deposit_address,
        "--usdt", "3.5", "--node", node.url, cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    txid = out.decode().strip()
    await node.wait_solidified(txid)
    (t,) = (await gateway.get_transaction(txid)).transfers
    assert (t.to_address, t.amount) == (node.deposit_address, 3_500_000)


def test_serve_on_devnet_starts_the_node_in_process_and_prints_its_address(tmp_path):
    import os
    import re
    import signal
    import urllib.request

    cfg = tmp_path / "c.toml"
    cfg.write_text("[server]\nport = 0\n[devnet]\nport = 0\nblock_time_s = 0.1\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "meterchat.cli", "serve", "--config", str(cfg)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        lines = [proc.stdout.readline(), proc.stdout.readline()]
        assert "serving on" in lines[0], proc.stderr.read() if not lines[0] else lines
        m = re.search(r"devnet node on (http://\S+) .*deposit address (T\w{33})", lines[1])
        assert m, lines
        with urllib.request.urlopen(m.group(1) + "/devnet/status", timeout=10) as resp:
            status = json.loads(resp.read())
        assert status["deposit_address"] == m.group(2)
        assert (tmp_path / "data" / "devnet.sqlite3").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
