"""The pure rules of chain access, without a server: address checks that never raise, key
addresses, networks, node-answer parsing, and the chain settings of the config. (The rules of
deposits: test_deposits_rules.py.)"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tronpy.keys import PrivateKey

from meterchat.chain.address import (
    SECP256K1_N,
    address_of_key,
    is_valid_address,
    to_base58,
    to_hex41,
    to_raw20,
)
from meterchat.chain.networks import NETWORKS, network
from meterchat.chain.parse import (
    ParseError,
    parse_block_number,
    parse_broadcast,
    parse_constant_uint,
)

USDT = NETWORKS["mainnet"].usdt_contract
ADDR = to_base58("41cdae4e9a6287333a3f7df432b050af7b17e79e63")


@given(st.text(max_size=40))
def test_address_check_never_raises(text):
    assert is_valid_address(text) in (True, False)


@given(st.binary(min_size=20, max_size=20))
def test_address_forms_round_trip(raw20):
    b58 = to_base58(raw20)
    assert is_valid_address(b58)
    assert to_raw20(b58) == raw20
    assert to_base58(to_hex41(b58)) == b58
    assert to_base58(raw20.hex().rjust(64, "0")) == b58  # as in an event topic


def test_bad_addresses_are_false_not_errors():
    good = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
    assert is_valid_address(good)
    for bad in (good[:-1] + "u", good.lower(), "T" * 34, "", None, 42, good + "x",
                "0x" + "00" * 20, "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj60"):
        assert is_valid_address(bad) is False


def test_key_gives_its_address():
    key = PrivateKey.random()
    assert address_of_key(key.hex()) == key.public_key.to_base58check_address()


@given(st.integers(min_value=1, max_value=SECP256K1_N - 1))
def test_key_address_is_the_one_tronpy_derives(secret):
    """Our derivation (coincurve + keccak, without tronpy) gives tronpy's address for any key,
    the smallest and largest included."""
    key = PrivateKey(secret.to_bytes(32, "big"))
    assert address_of_key(key.hex()) == key.public_key.to_base58check_address()


def test_a_known_key_has_its_known_address():
    # The private key 1: its address as every TRON wallet shows it.
    assert address_of_key("00" * 31 + "01") == "TMVQGm1qAQYVdetCeGRRkTWYYrLXuHK2HC"


@pytest.mark.parametrize("bad", ["", "00" * 32, "ff" * 32, "01" * 31, "zz" * 32,
                                 f"{SECP256K1_N:064x}"])
def test_what_is_no_private_key_is_a_value_error(bad):
    with pytest.raises(ValueError):
        address_of_key(bad)


def test_a_balance_is_the_word_a_constant_call_returns_and_a_refusal_is_no_balance():
    word = f"{3_250_000:064x}"
    assert parse_constant_uint({"result": {"result": True}, "constant_result": [word]}) \
        == 3_250_000
    for refused in (
        {"result": {"code": "CONTRACT_VALIDATE_ERROR", "message": "4e6f20636f6e7472616374"}},
        {"result": {"result": True}, "constant_result": [""]},  # a revert
        {"result": {"result": True}, "constant_result": [word],
         "transaction": {"ret": [{"ret": "FAILED"}]}},
        {"result": {"result": True}, "constant_result": ["zz" * 32]},
        {"result": {"result": True}}, [], None,
    ):
        with pytest.raises(ParseError):
            parse_constant_uint(refused)


def test_networks_have_their_usdt_and_endpoints():
    assert network("mainnet").usdt_contract == "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
    assert network("nile").usdt_contract == "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf"
    assert set(NETWORKS) == {"devnet", "nile", "shasta", "mainnet"}
    for n in NETWORKS.values():
        assert n.usdt_contract == "" or is_valid_address(n.usdt_contract)
    with pytest.raises(ValueError):
        network("testnet")


def test_node_info_and_broadcast_answers_are_read():
    info = {"block": "Num:120,ID:0000000000000078ab", "solidityBlock": "Num:101,ID:00000065cd"}
    assert parse_block_number(info, "block") == 120
    assert parse_block_number(info, "solidityBlock") == 101
    assert parse_broadcast({"result": True, "txid": "ab"}).ok
    dup = parse_broadcast({"code": "DUP_TRANSACTION_ERROR", "message": "647570207472616e73"})
    assert (dup.ok, dup.duplicate, dup.message) == (False, True, "dup trans")
    sig = parse_broadcast({"code": "SIGERROR", "message": "not hex at all"})
    assert (sig.code, sig.message) == ("SIGERROR", "not hex at all")


async def test_chain_settings_come_from_config_and_keys_never_from_the_toml(tmp_path,
                                                                           monkeypatch):
    from meterchat.chain_ctx import load_hot_wallet_key, resolve
    from meterchat.core.config import ConfigError
    from tests.conftest import make_config

    key = PrivateKey.random()
    (tmp_path / "hot.key").write_text(key.hex() + "\n")
    cfg = make_config(tmp_path, chain={"network": "mainnet", "deposit_address": ADDR,
                                       "hot_wallet_key_file": "hot.key"})
    info = await resolve(cfg, None)
    assert (info.endpoint, info.usdt_contract) == ("https://api.trongrid.io", USDT)
    assert info.hot_wallet_key.reveal() == key.hex()
    assert info.hot_wallet_address == key.public_key.to_base58check_address()
    assert key.hex() not in repr(info)

    monkeypatch.setenv("MC_TEST_HOT_KEY", "not a key at all")
    cfg = make_config(tmp_path, chain={"hot_wallet_key_env": "MC_TEST_HOT_KEY"})
    with pytest.raises(ConfigError) as err:
        load_hot_wallet_key(cfg)
    assert "not a key at all" not in str(err.value)

    cfg = make_config(tmp_path, chain={"network": "mainnet"})
    with pytest.raises(ConfigError, match="chain.deposit_address"):
        await resolve(cfg, None)
    cfg = make_config(tmp_path, chain={"network": "shasta", "deposit_address": ADDR})
    with pytest.raises(ConfigError, match="chain.usdt_contract"):
        await resolve(cfg, None)
