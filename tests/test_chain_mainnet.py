"""Verification proven on real mainnet answers (tests/fixtures/mainnet/, sources in its
README): amounts, addresses, contract and result read right; failed, TRX, other-token and
wrong-recipient transfers refused with their own codes; real TXIDs and signatures recomputed
the way the devnet checks broadcasts."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from tronpy.keys import Signature
from tronpy.proto.transaction import _raw_data_to_protobuf, calculate_txid_from_raw_data

from meterchat.chain.address import to_base58
from meterchat.chain.networks import NETWORKS
from meterchat.chain.parse import parse_transaction
from meterchat.core.errors import ApiError
from meterchat.deposits.rules import NotUsdt, TxFailed, WrongRecipient, deposit_logs

FIXTURES = Path(__file__).parent / "fixtures" / "mainnet"
MAINNET_USDT = NETWORKS["mainnet"].usdt_contract
NILE_USDT = NETWORKS["nile"].usdt_contract


def load(name: str):
    data = json.loads((FIXTURES / name).read_text())
    return data["gettransactionbyid"], data["gettransactioninfobyid"]


def read(name: str, solid_head: int | None = None):
    tx, info = load(name)
    head = solid_head if solid_head is not None else info.get("blockNumber", 0) + 19
    return parse_transaction(tx, info, head)


@pytest.mark.parametrize(("name", "sender", "recipient", "amount_musdt", "block"), [
    ("usdt_0af79242.json", "41e4b8075df69297bc24cc4bbaf48cd17206e1f62c",
     "410d0707963952f2fba59dd06f2b425ace40b492fe", 532_079_999, 30864600),
    ("usdt_b69c51db.json", "4160e6e92e57d61a9d68b5d95275cc9667d9e6c7c9",
     "41cdae4e9a6287333a3f7df432b050af7b17e79e63", 3_500_000, 66861993),
])
def test_real_usdt_transfer_is_read_right(name, sender, recipient, amount_musdt, block):
    tx = read(name)
    assert tx.in_block and tx.result == "SUCCESS" and tx.succeeded
    assert tx.block_number == block and tx.solidified
    (t,) = tx.transfers_of(MAINNET_USDT)
    assert t.contract == "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
    assert (t.from_address, t.to_address) == (to_base58(sender), to_base58(recipient))
    assert t.amount == amount_musdt and t.log_index == 0
    assert deposit_logs(tx, MAINNET_USDT, t.to_address) == (t,)
    # Not yet 19 blocks deep: not solidified.
    assert not read(name, solid_head=block - 1).solidified


def test_real_usdt_receipt_to_another_address_is_wrong_recipient():
    tx = read("usdt_0af79242.json")
    someone_else = to_base58("41cdae4e9a6287333a3f7df432b050af7b17e79e63")
    with pytest.raises(WrongRecipient) as err:
        deposit_logs(tx, MAINNET_USDT, someone_else)
    assert err.value.code == "wrong_recipient" and err.value.status == 422


def test_real_out_of_energy_transfer_is_refused_as_failed():
    tx = read("usdt_out_of_energy_e63a324a.json")
    assert tx.in_block and tx.result == "OUT_OF_ENERGY" and not tx.succeeded
    assert tx.transfers == () and tx.fee_sun == 16_500_120
    with pytest.raises(TxFailed) as err:
        deposit_logs(tx, MAINNET_USDT, to_base58("41cdae4e9a6287333a3f7df432b050af7b17e79e63"))
    assert err.value.code == "tx_failed"


def test_real_trx_transfer_is_not_usdt():
    tx = read("trx_47086db3.json")
    assert tx.contract_type == "TransferContract" and tx.result == "SUCCESS"
    assert tx.trx_amount_sun == 5
    assert tx.trx_to_address == to_base58("4105cc125604448afeb6867eb688efb7e80411d57a")
    with pytest.raises(NotUsdt) as err:
        deposit_logs(tx, MAINNET_USDT, tx.trx_to_address)
    assert err.value.code == "not_usdt"


def test_transfer_of_another_token_is_not_usdt():
    # The real USDT receipt, judged by a server whose USDT is another contract: exactly what
    # a foreign token's Transfer log looks like to the verifier.
    tx = read("usdt_b69c51db.json")
    (t,) = tx.transfers
    with pytest.raises(NotUsdt):
        deposit_logs(tx, NILE_USDT, t.to_address)


def test_each_refusal_has_its_own_code():
    codes = {cls.code for cls in (TxFailed, NotUsdt, WrongRecipient)}
    assert codes == {"tx_failed", "not_usdt", "wrong_recipient"}
    assert all(issubclass(c, ApiError) for c in (TxFailed, NotUsdt, WrongRecipient))


@pytest.mark.parametrize("name", ["trx_47086db3.json", "usdt_body_5e8e3cdf.json"])
def test_real_txid_and_signature_recompute_like_the_devnet_checks(name):
    tx, _ = load(name)
    raw = tx["raw_data"]
    # tronpy's protobuf messages rebuild the exact bytes the network signed.
    assert _raw_data_to_protobuf(raw).SerializeToString().hex() == tx["raw_data_hex"]
    assert calculate_txid_from_raw_data(raw) == tx["txID"]
    assert hashlib.sha256(bytes.fromhex(tx["raw_data_hex"])).hexdigest() == tx["txID"]
    owner = raw["contract"][0]["parameter"]["value"]["owner_address"]
    signer = Signature(bytes.fromhex(tx["signature"][0])).recover_public_key_from_msg_hash(
        bytes.fromhex(tx["txID"])).to_base58check_address()
    assert signer == to_base58(owner)


def test_real_usdt_call_body_is_read_right():
    tx = read("usdt_body_5e8e3cdf.json")
    assert not tx.in_block  # body only: no receipt recorded
    assert tx.contract_type == "TriggerSmartContract"
    assert tx.called_contract == MAINNET_USDT
    assert tx.owner_address == to_base58("418ca132af72e7864eee48eac163a1fb4028662091")
