"""Stake 2.0 on the devnet, driven by the real tronpy 0.6.2 client over real HTTP: the hand
encoder of FreezeBalanceV2 / DelegateResource / UnDelegateResource against java-tron's
balance_contract.proto (built here as a protobuf descriptor), staking TRX for energy,
lending it to an address whose USDT transfer then burns no TRX for energy, taking it back,
getaccountresource's figures, and every refusal with java-tron's message."""

from __future__ import annotations

import hashlib
import json

import aiohttp
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from tronpy import AsyncTron
from tronpy.keys import PrivateKey
from tronpy.providers.async_http import AsyncHTTPProvider

from meterchat.chain.address import to_hex41
from meterchat.chain.client import ClientSettings, TronClient
from meterchat.chain.devnet import DevnetNode, DevnetSettings
from meterchat.chain.devnet import proto as devproto
from meterchat.chain.devnet.stake import (
    OTHER_ENERGY_WEIGHT,
    STAKE_NET_USAGE_BYTES,
    TOTAL_ENERGY_LIMIT,
)
from tests.conftest import devnet_pay

TRX = 1_000_000
OWNER = "TN3W4H6rK2ce4vX9YnFQHwKENnHjoxb3m9"
RECEIVER = "TVjsyZ7fYF3qLF6BQgPmTEZy1xrNNyVAAA"


def java_tron_messages():
    """FreezeBalanceV2Contract, DelegateResourceContract and UnDelegateResourceContract as
    java-tron's core/contract/balance_contract.proto declares them (ResourceCode an int
    enum: BANDWIDTH 0, ENERGY 1), compiled into message classes by protobuf itself."""
    f = descriptor_pb2.FileDescriptorProto(name="balance_contract_test.proto",
                                           package="protocol_test", syntax="proto3")
    enum = f.enum_type.add(name="ResourceCode")
    for name, number in (("BANDWIDTH", 0), ("ENERGY", 1), ("TRON_POWER", 2)):
        enum.value.add(name=name, number=number)
    T = descriptor_pb2.FieldDescriptorProto
    specs = {
        "FreezeBalanceV2Contract": [("owner_address", 1, T.TYPE_BYTES),
                                    ("frozen_balance", 2, T.TYPE_INT64),
                                    ("resource", 3, T.TYPE_ENUM)],
        "DelegateResourceContract": [("owner_address", 1, T.TYPE_BYTES),
                                     ("resource", 2, T.TYPE_ENUM),
                                     ("balance", 3, T.TYPE_INT64),
                                     ("receiver_address", 4, T.TYPE_BYTES),
                                     ("lock", 5, T.TYPE_BOOL),
                                     ("lock_period", 6, T.TYPE_INT64)],
        "UnDelegateResourceContract": [("owner_address", 1, T.TYPE_BYTES),
                                       ("resource", 2, T.TYPE_ENUM),
                                       ("balance", 3, T.TYPE_INT64),
                                       ("receiver_address", 4, T.TYPE_BYTES)],
    }
    for msg, fields in specs.items():
        m = f.message_type.add(name=msg)
        for name, number, ftype in fields:
            field = m.field.add(name=name, number=number, type=ftype, label=T.LABEL_OPTIONAL)
            if ftype == T.TYPE_ENUM:
                field.type_name = ".protocol_test.ResourceCode"
    pool = descriptor_pool.DescriptorPool()
    fd = pool.Add(f)
    return {name: message_factory.GetMessageClass(fd.message_types_by_name[name])
            for name in specs}


def test_the_hand_encoder_matches_java_trons_protobuf_definitions():
    msgs = java_tron_messages()
    owner, receiver = bytes.fromhex(to_hex41(OWNER)), bytes.fromhex(to_hex41(RECEIVER))
    cases = [
        ("FreezeBalanceV2Contract", {"owner_address": to_hex41(OWNER),
                                     "frozen_balance": 7_000 * TRX, "resource": "ENERGY"},
         dict(owner_address=owner, frozen_balance=7_000 * TRX, resource=1)),
        ("FreezeBalanceV2Contract", {"owner_address": OWNER, "frozen_balance": 1,
                                     "resource": "BANDWIDTH"},
         dict(owner_address=owner, frozen_balance=1, resource=0)),
        ("DelegateResourceContract", {"owner_address": OWNER, "receiver_address": RECEIVER,
                                      "balance": 6_500 * TRX, "resource": "ENERGY",
                                      "lock": False},
         dict(owner_address=owner, receiver_address=receiver, balance=6_500 * TRX,
              resource=1)),
        ("DelegateResourceContract", {"owner_address": OWNER, "receiver_address": RECEIVER,
                                      "balance": 2**40, "resource": "BANDWIDTH",
                                      "lock": True, "lock_period": 28_800},
         dict(owner_address=owner, receiver_address=receiver, balance=2**40, resource=0,
              lock=True, lock_period=28_800)),
        ("UnDelegateResourceContract", {"owner_address": OWNER, "receiver_address": RECEIVER,
                                        "balance": 6_500 * TRX, "resource": "ENERGY"},
         dict(owner_address=owner, receiver_address=receiver, balance=6_500 * TRX,
              resource=1)),
    ]
    for ctype, value, fields in cases:
        expected = msgs[ctype](**fields).SerializeToString()
        assert devproto.contract_bytes(ctype, value) == expected, ctype
    # A known encoding spelled out: field 1 (0x0a) 21 bytes, field 2 (0x10) varint
    # 7,000,000,000 (0x80 0x8c 0xee 0x89 0x1a, 7 bits at a time), field 3 (0x18) 1.
    assert devproto.contract_bytes("FreezeBalanceV2Contract", cases[0][1]).hex() == (
        "0a15" + to_hex41(OWNER) + "10808cee891a" + "1801")
    assert devproto.varint(300) == b"\xac\x02" and devproto.varint(-1) == b"\xff" * 9 + b"\x01"
    with pytest.raises(ValueError, match="ResourceCode error"):
        devproto.contract_bytes("FreezeBalanceV2Contract",
                                {"owner_address": OWNER, "frozen_balance": 1,
                                 "resource": "WATER"})


def test_the_txid_is_the_hash_of_the_whole_raw_data():
    raw = {"contract": [{"type": "DelegateResourceContract", "parameter": {
        "type_url": "type.googleapis.com/protocol.DelegateResourceContract",
        "value": {"owner_address": OWNER, "receiver_address": RECEIVER, "balance": TRX,
                  "resource": "ENERGY"}}}],
        "ref_block_bytes": "0001", "ref_block_hash": "0011223344556677",
        "expiration": 1_700_000_060_000, "timestamp": 1_700_000_000_000}
    body = devproto.raw_data_bytes(raw)
    assert devproto.txid_of(raw) == hashlib.sha256(body).hexdigest()
    # Transaction.raw: ref_block_bytes (1), ref_block_hash (4), expiration (8), the contract
    # (11: type 57, its Any), timestamp (14).
    inner = devproto.contract_bytes("DelegateResourceContract",
                                    raw["contract"][0]["parameter"]["value"])
    type_url = b"type.googleapis.com/protocol.DelegateResourceContract"
    any_msg = devproto.field_bytes(1, type_url) + devproto.field_bytes(2, inner)
    contract = devproto.field_varint(1, 57) + devproto.field_bytes(2, any_msg)
    assert body == (devproto.field_bytes(1, bytes.fromhex("0001"))
                    + devproto.field_bytes(4, bytes.fromhex("0011223344556677"))
                    + devproto.field_varint(8, 1_700_000_060_000)
                    + devproto.field_bytes(11, contract)
                    + devproto.field_varint(14, 1_700_000_000_000))
    # And protobuf's own Transaction.raw (tronpy's bundled tron.proto) agrees.
    from google.protobuf import any_pb2
    from tronpy.proto import tron_pb2

    theirs = tron_pb2.Transaction.raw(
        ref_block_bytes=bytes.fromhex("0001"), ref_block_hash=bytes.fromhex("0011223344556677"),
        expiration=1_700_000_060_000, timestamp=1_700_000_000_000,
        contract=[tron_pb2.Transaction.Contract(
            type=tron_pb2.Transaction.Contract.ContractType.DelegateResourceContract,
            parameter=any_pb2.Any(type_url=type_url.decode(), value=inner))])
    assert body == theirs.SerializeToString()


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


async def wallet(node, name: str, body: dict) -> dict:
    async with aiohttp.ClientSession() as s, \
            s.post(f"{node.url}/wallet/{name}", json=body) as resp:
        return await resp.json()


async def solid(node, ret) -> dict:
    await node.wait_solidified(ret.txid)
    return await ret.wait(timeout=10, interval=0.05, solid=True)


async def test_staked_energy_lent_to_an_address_pays_its_usdt_transfer(node, tron, gateway):
    hot = PrivateKey(bytes.fromhex(node.hot_wallet_key_hex))
    owner = node.hot_wallet_address
    payer = PrivateKey.random()
    payer_address = payer.public_key.to_base58check_address()
    await node.wait_solidified(await devnet_pay(node.url, payer_address, usdt="5"))
    await node.wait_solidified(await devnet_pay(node.url, payer_address, trx="1"))
    trx_before = node.state.balance(owner, "TRX")

    # Stake 7,000 TRX for energy: 7,000 / (18e9 + 7,000) of 180e9 energy.
    txn = await tron.trx.freeze_balance(owner, 7_000 * TRX, "ENERGY").build()
    info = await solid(node, await txn.sign(hot).broadcast())
    assert info["receipt"] == {"net_usage": STAKE_NET_USAGE_BYTES}
    assert node.state.balance(owner, "TRX") == trx_before - 7_000 * TRX
    weight = OTHER_ENERGY_WEIGHT + 7_000
    res = await tron.get_account_resource(owner)
    assert res["EnergyLimit"] == TOTAL_ENERGY_LIMIT * 7_000 // weight == 69_999
    assert res["TotalEnergyWeight"] == weight and res["TotalEnergyLimit"] == TOTAL_ENERGY_LIMIT
    account = await tron.get_account(owner)
    assert {"type": "ENERGY", "amount": 7_000 * TRX} in account["frozenV2"]

    # Lend 6,500 TRX of it (64,999 energy) to the payer; its transfer to a holder needs 64,285.
    size = await wallet(node, "getcandelegatedmaxsize", {"owner_address": owner, "type": 1,
                                                          "visible": True})
    assert size == {"max_size": 7_000 * TRX}
    txn = await tron.trx.delegate_resource(owner, payer_address, 6_500 * TRX,
                                           "ENERGY").build()
    await solid(node, await txn.sign(hot).broadcast())
    lent = await tron.get_account_resource(payer_address)
    assert lent["EnergyLimit"] == TOTAL_ENERGY_LIMIT * 6_500 // weight == 64_999
    assert (await tron.get_account_resource(owner))["EnergyLimit"] == \
        TOTAL_ENERGY_LIMIT * 500 // weight
    account = await tron.get_account(owner)
    assert account["account_resource"]["delegated_frozenV2_balance_for_energy"] == 6_500 * TRX
    got = await tron.get_account(payer_address)
    assert got["account_resource"]["acquired_delegated_frozenV2_balance_for_energy"] == \
        6_500 * TRX

    signed = await gateway.build_usdt_transfer(payer.hex(), owner, 5_000_000, 40_000_000)
    assert (await gateway.broadcast(signed.signed_json)).ok
    await node.wait_solidified(signed.txid)
    tx = await gateway.get_transaction(signed.txid)
    assert tx is not None and tx.succeeded and tx.fee_sun == 0  # energy and bandwidth free
    receipt = node.state.stored_tx(signed.txid).info["receipt"]
    assert receipt["energy_usage"] == receipt["energy_usage_total"] == 64_285
    assert receipt["energy_fee"] == 0
    assert node.state.balance(payer_address, "TRX") == TRX
    # What was used recovers over 24 hours: a few units in the seconds since.
    assert 64_000 < (await tron.get_account_resource(payer_address))["EnergyUsed"] <= 64_285

    # Taken back: the payer keeps no energy, its usage moves to the owner.
    txn = await tron.trx.undelegate_resource(owner, payer_address, 6_500 * TRX,
                                             "ENERGY").build()
    await solid(node, await txn.sign(hot).broadcast())
    back = await tron.get_account_resource(payer_address)
    assert "EnergyLimit" not in back and "EnergyUsed" not in back
    mine = await tron.get_account_resource(owner)
    assert mine["EnergyLimit"] == 69_999 and mine["EnergyUsed"] > 64_000
    # The owner paid only bandwidth: free points for the first, then 280 bytes burned.
    assert node.state.balance(owner, "TRX") >= trx_before - 7_000 * TRX - 3 * 280_000


async def test_stake_refusals_carry_java_trons_messages(node, tron, gateway):
    hot = PrivateKey(bytes.fromhex(node.hot_wallet_key_hex))
    owner = node.hot_wallet_address
    stranger = PrivateKey.random().public_key.to_base58check_address()

    async def refused(builder) -> tuple[str, str]:
        txn = await builder.build()
        answer = await gateway.broadcast(json.dumps(txn.sign(hot).to_json()))
        assert not answer.ok
        return answer.code, answer.message

    code, msg = await refused(tron.trx.freeze_balance(owner, TRX - 1, "ENERGY"))
    assert code == "CONTRACT_VALIDATE_ERROR"
    assert msg == "frozenBalance must be greater than or equal to 1 TRX"
    _, msg = await refused(tron.trx.freeze_balance(owner, 10**15, "ENERGY"))
    assert msg == "frozenBalance must be less than or equal to accountBalance"
    _, msg = await refused(tron.trx.delegate_resource(owner, stranger, TRX, "ENERGY"))
    assert msg == "delegateBalance must be less than or equal to available FreezeEnergyV2 " \
        "balance"  # nothing staked yet
    txn = await tron.trx.freeze_balance(owner, 100 * TRX, "ENERGY").build()
    await solid(node, await txn.sign(hot).broadcast())
    _, msg = await refused(tron.trx.delegate_resource(owner, stranger, TRX, "ENERGY"))
    assert msg == f"Account[{stranger}] not exists"
    _, msg = await refused(tron.trx.delegate_resource(owner, owner, TRX, "ENERGY"))
    assert msg == "receiverAddress must not be the same as ownerAddress"
    _, msg = await refused(tron.trx.delegate_resource(owner, node.faucet_address, TRX - 1,
                                                      "ENERGY"))
    assert msg == "delegateBalance must be greater than or equal to 1 TRX"
    _, msg = await refused(tron.trx.undelegate_resource(owner, node.faucet_address, TRX,
                                                        "ENERGY"))
    assert msg == "delegated Resource does not exist"
    txn = await tron.trx.delegate_resource(owner, node.faucet_address, 10 * TRX,
                                           "ENERGY").build()
    await solid(node, await txn.sign(hot).broadcast())
    _, msg = await refused(tron.trx.undelegate_resource(owner, node.faucet_address, 11 * TRX,
                                                        "ENERGY"))
    assert msg == ("insufficient delegatedFrozenBalance(Energy), request=11000000, "
                   "unlock_balance=10000000")
    # The HTTP builders refuse the same way, in java-tron's {"Error": ...} shape.
    answer = await wallet(node, "delegateresource", {
        "owner_address": owner, "receiver_address": stranger, "balance": TRX,
        "resource": "ENERGY", "visible": True})
    assert answer["Error"].endswith(f"Account[{stranger}] not exists")
    built = await wallet(node, "freezebalancev2", {
        "owner_address": owner, "frozen_balance": 5 * TRX, "resource": "BANDWIDTH",
        "visible": True})
    assert built["txID"] == hashlib.sha256(bytes.fromhex(built["raw_data_hex"])).hexdigest()
