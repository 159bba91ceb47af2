"""The devnet's chain state alone (chain/devnet/state.py), without HTTP: genesis, the pending
pool and block production, execution and energy, broadcast refusals, dropped transactions,
solidification, and the state across a reopen. The node over HTTP is tests/test_devnet.py."""

from __future__ import annotations

import sqlite3

import pytest
from tronpy.keys import PrivateKey
from tronpy.proto.transaction import calculate_txid_from_raw_data

from meterchat.chain.address import to_hex41
from meterchat.chain.devnet.abi import abi_string, transfer_call_data, word
from meterchat.chain.devnet.contracts import (
    ENERGY_PRICE_SUN,
    ENERGY_TO_FRESH,
    ENERGY_TO_HOLDER,
    TRX_TOKEN,
    USDT_TOKEN,
    Refused,
)
from meterchat.chain.devnet.state import (
    HOT_WALLET_TRX_SUN,
    HOT_WALLET_USDT_MUSDT,
    DevnetState,
    StoredTx,
    address_of,
    now_ms,
)
from meterchat.chain.gateway import TRANSFER_TOPIC


@pytest.fixture
def state(tmp_path):
    s = DevnetState(tmp_path / "devnet.sqlite3", solidify_depth=2)
    yield s
    s.close()


def signed_trx_transfer(state: DevnetState, key: PrivateKey, to: str, sun: int,
                        stamp: int = 0) -> dict:
    """A TRX transfer signed by `key`, referencing the solidified block (as tronpy builds)."""
    ref = state.solid_block()
    ts = now_ms() + stamp
    raw = {
        "contract": [{"type": "TransferContract", "parameter": {
            "type_url": "type.googleapis.com/protocol.TransferContract",
            "value": {"owner_address": to_hex41(address_of(key)), "to_address": to_hex41(to),
                      "amount": sun}}}],
        "timestamp": ts, "expiration": ts + 60_000,
        "ref_block_bytes": ref.id[12:16], "ref_block_hash": ref.id[16:32],
    }
    txid = calculate_txid_from_raw_data(raw)
    return {"txID": txid, "raw_data": raw,
            "signature": [key.sign_msg_hash(bytes.fromhex(txid)).hex()]}


def stored(state: DevnetState, txid: str) -> StoredTx:
    tx = state.stored_tx(txid)
    assert tx is not None, txid
    return tx


def fresh() -> tuple[PrivateKey, str]:
    key = PrivateKey.random()
    return key, address_of(key)


def test_genesis_funds_the_hot_wallet_and_rows_are_read_by_name(state):
    assert state.conn.row_factory is sqlite3.Row
    head = state.head()
    assert head.num == 0 and head.parent_id == "0" * 64 and len(head.id) == 64
    hot = address_of(state.key("hot_wallet_key"))
    assert state.balance(hot, USDT_TOKEN) == HOT_WALLET_USDT_MUSDT
    assert state.balance(hot, TRX_TOKEN) == HOT_WALLET_TRX_SUN
    deposit = address_of(state.key("deposit_key"))
    assert not state.account_exists(deposit) and state.balance(deposit, USDT_TOKEN) == 0
    keys = {state.meta(k) for k in ("faucet_key", "hot_wallet_key", "deposit_key")}
    assert len(keys) == 3


def test_a_transfer_waits_in_the_pool_then_executes_with_mainnet_energy(state):
    _, to = fresh()
    txid = state.faucet_transfer(to, 5_000_000, USDT_TOKEN, 40_000_000)
    pending = state.stored_tx(txid)
    assert pending is not None and pending.block_num is None and pending.info == {}
    assert state.balance(to, USDT_TOKEN) == 0

    num = state.produce_block()
    mined = state.stored_tx(txid)
    assert mined is not None and mined.block_num == num == 1
    assert mined.tx["ret"] == [{"contractRet": "SUCCESS"}]
    receipt = mined.info["receipt"]
    assert receipt["result"] == "SUCCESS" and receipt["energy_usage_total"] == ENERGY_TO_FRESH
    assert mined.info["fee"] == ENERGY_TO_FRESH * ENERGY_PRICE_SUN
    (log,) = mined.info["log"]
    assert log["topics"][0] == TRANSFER_TOPIC and log["data"] == word(5_000_000)
    assert state.balance(to, USDT_TOKEN) == 5_000_000
    assert [t.txid for t in state.block_txs(num)] == [txid]

    again = state.faucet_transfer(to, 1, USDT_TOKEN, 40_000_000)
    state.produce_block()
    info = stored(state, again).info
    assert info["receipt"]["energy_usage_total"] == ENERGY_TO_HOLDER  # to a holder now


def test_solidified_only_depth_blocks_later(state):
    for _ in range(3):
        state.produce_block()
    assert state.head().num == 3 and state.solid_num() == 1
    assert state.solid_block().num == 1


def test_refusals_carry_java_tron_codes(state):
    hot = state.key("hot_wallet_key")
    _, to = fresh()
    body = signed_trx_transfer(state, hot, to, 1_000_000)
    assert state.broadcast(body) == body["txID"]
    with pytest.raises(Refused) as dup:
        state.broadcast(body)
    assert dup.value.code == "DUP_TRANSACTION_ERROR"

    forged = signed_trx_transfer(state, hot, to, 2_000_000)
    forged["signature"] = [PrivateKey.random().sign_msg_hash(
        bytes.fromhex(forged["txID"])).hex()]
    with pytest.raises(Refused) as sig:
        state.broadcast(forged)
    assert sig.value.code == "SIGERROR"

    stale = signed_trx_transfer(state, hot, to, 3_000_000)
    stale["raw_data"]["ref_block_hash"] = "00" * 8
    with pytest.raises(Refused) as tapos:
        state.broadcast(stale)
    assert tapos.value.code == "TAPOS_ERROR"

    with pytest.raises(Refused) as malformed:
        state.broadcast({"raw_data": {"expiration": 1}})
    assert malformed.value.code == "OTHER_ERROR"

    poor, _ = fresh()
    with pytest.raises(Refused) as broke:
        state.broadcast(signed_trx_transfer(state, poor, to, 1))
    assert broke.value.code == "CONTRACT_VALIDATE_ERROR"
    # java-tron's messages for a TRX transfer's own checks, word for word.
    for key, receiver, sun, message in (
            (hot, state.address("hot_wallet_key"), 1, "Cannot transfer TRX to yourself."),
            (hot, to, 0, "Amount must be greater than 0."),
            (poor, to, 1, "Validate TransferContract error, no OwnerAccount."),
            (hot, to, 10**18, "balance is not sufficient.")):
        with pytest.raises(Refused) as refused:
            state.broadcast(signed_trx_transfer(state, key, receiver, sun, stamp=sun % 97))
        assert (refused.value.code, refused.value.message) == (
            "CONTRACT_VALIDATE_ERROR", message)


def test_a_transfer_no_longer_payable_at_block_time_is_dropped(state):
    key, owner = fresh()
    state.faucet_transfer(owner, 10_000_000, TRX_TOKEN, 0)
    state.produce_block()
    _, to = fresh()
    # Each passes the broadcast check alone; together they spend more than the owner has.
    first = state.broadcast(signed_trx_transfer(state, key, to, 8_000_000))
    second = state.broadcast(signed_trx_transfer(state, key, to, 8_000_000, stamp=1))
    state.produce_block()
    assert stored(state, first).block_num is not None
    assert state.stored_tx(second) is None
    # The first transfer activated `to`: 1 TRX + 0.1 TRX of bandwidth burned from the owner.
    assert state.balance(owner, TRX_TOKEN) == 2_000_000 - 1_100_000
    assert state.balance(to, TRX_TOKEN) == 8_000_000


def test_usdt_beyond_balance_reverts_and_low_fee_limit_runs_out_of_energy(state):
    key, owner = fresh()
    state.faucet_transfer(owner, 100_000_000, TRX_TOKEN, 0)
    state.faucet_transfer(owner, 1_000_000, USDT_TOKEN, 40_000_000)
    state.produce_block()
    _, to = fresh()

    def usdt_call(amount: int, fee_limit: int, stamp: int) -> str:
        body = signed_trx_transfer(state, key, to, 1, stamp)
        raw = body["raw_data"]
        raw["contract"] = [{"type": "TriggerSmartContract", "parameter": {
            "type_url": "type.googleapis.com/protocol.TriggerSmartContract",
            "value": {"owner_address": to_hex41(owner),
                      "contract_address": to_hex41(state.meta("usdt_contract") or ""),
                      "data": transfer_call_data(bytes.fromhex(to_hex41(to))[1:], amount)}}}]
        raw["fee_limit"] = fee_limit
        txid = calculate_txid_from_raw_data(raw)
        return state.broadcast({"txID": txid, "raw_data": raw,
                                "signature": [key.sign_msg_hash(bytes.fromhex(txid)).hex()]})

    too_much = usdt_call(2_000_000, 40_000_000, 1)
    starved = usdt_call(1_000, 1_000_000, 2)
    state.produce_block()
    assert stored(state, too_much).info["receipt"]["result"] == "REVERT"
    out = stored(state, starved).info
    # The fee_limit caps the energy burned; the owner's second transaction of the day has no
    # free bandwidth left (600 points a day, 345 a transfer), so its bytes are burned too.
    assert out["receipt"]["result"] == "OUT_OF_ENERGY" and out["receipt"]["energy_fee"] == 1_000_000
    assert out["receipt"]["net_fee"] == 345_000 and out["fee"] == 1_345_000
    assert out["result"] == "FAILED" and "log" not in out
    assert state.balance(owner, USDT_TOKEN) == 1_000_000 and state.balance(to, USDT_TOKEN) == 0


def test_the_state_survives_a_reopen(tmp_path):
    path = tmp_path / "devnet.sqlite3"
    first = DevnetState(path, solidify_depth=2)
    contract, deposit = first.meta("usdt_contract"), address_of(first.key("deposit_key"))
    txid = first.faucet_transfer(deposit, 7, USDT_TOKEN, 40_000_000)
    first.produce_block()
    first.close()
    again = DevnetState(path, solidify_depth=2)
    try:
        assert again.meta("usdt_contract") == contract
        assert address_of(again.key("deposit_key")) == deposit
        assert again.head().num == 1 and stored(again, txid).block_num == 1
        assert again.balance(deposit, USDT_TOKEN) == 7
    finally:
        again.close()


def test_abi_encodings():
    assert word(6) == "0" * 63 + "6"
    encoded = abi_string("USDT")
    assert encoded[:64] == word(32) and encoded[64:128] == word(4)
    assert encoded[128:136] == b"USDT".hex() and len(encoded) == 192


def test_the_first_trx_to_an_address_activates_it_and_burns_the_account_fee(state):
    _, to = fresh()
    state.faucet_transfer(to, 2_000_000, USDT_TOKEN, 40_000_000)
    state.produce_block()
    # USDT alone makes no account: it cannot own a transaction, getaccount knows nothing.
    assert not state.account_exists(to) and state.balance(to, USDT_TOKEN) == 2_000_000
    key, owner = fresh()
    state.faucet_transfer(owner, 10_000_000, TRX_TOKEN, 0)
    state.produce_block()
    assert state.account_exists(owner)
    txid = state.broadcast(signed_trx_transfer(state, key, to, 3_000_000))
    state.produce_block()
    info = stored(state, txid).info
    assert info["fee"] == 1_100_000 and info["receipt"] == {"net_fee": 100_000}
    assert state.account_exists(to) and state.balance(to, TRX_TOKEN) == 3_000_000
    assert state.balance(owner, TRX_TOKEN) == 10_000_000 - 3_000_000 - 1_100_000
    # To an account that exists: its bandwidth only (free: 268 of the day's 600 points).
    again = state.broadcast(signed_trx_transfer(state, key, to, 1_000_000, stamp=1))
    state.produce_block()
    assert stored(state, again).info["receipt"] == {"net_usage": 268}
    assert state.free_net_left(owner, now_ms()) == 600 - 268


def test_an_owner_without_free_bandwidth_or_trx_is_refused_bandwith_error(state):
    key, owner = fresh()
    state.faucet_transfer(owner, 300_000, TRX_TOKEN, 0)
    state.faucet_transfer(owner, 1_000_000, USDT_TOKEN, 40_000_000)
    state.produce_block()
    _, to = fresh()
    body = signed_trx_transfer(state, key, to, 1, 5)
    raw = body["raw_data"]
    raw["contract"] = [{"type": "TriggerSmartContract", "parameter": {
        "type_url": "type.googleapis.com/protocol.TriggerSmartContract",
        "value": {"owner_address": to_hex41(owner),
                  "contract_address": to_hex41(state.meta("usdt_contract") or ""),
                  "data": transfer_call_data(bytes.fromhex(to_hex41(to))[1:], 1)}}}]
    raw["fee_limit"] = 1
    state._use_free_net(owner, now_ms(), 600)  # the day's free points are spent
    txid = calculate_txid_from_raw_data(raw)
    with pytest.raises(Refused) as refused:
        state.broadcast({"txID": txid, "raw_data": raw,
                         "signature": [key.sign_msg_hash(bytes.fromhex(txid)).hex()]})
    assert refused.value.code == "BANDWITH_ERROR"
