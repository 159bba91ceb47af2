"""The pure rules of chain access and deposits, without a server: address checks that never
raise, node-answer parsing, TXID syntax, asked amounts, suffix choice, intent matching, and
the 24-hour quarantine of an expired intent's amount."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tronpy.keys import PrivateKey

from meterchat.chain.address import address_of_key, is_valid_address, to_base58, to_hex41, to_raw20
from meterchat.chain.gateway import TransferLog
from meterchat.chain.networks import NETWORKS, network
from meterchat.chain.parse import parse_block_number, parse_broadcast
from meterchat.core.db import connect_sync, migrate_sync, run_tx
from meterchat.core.errors import BadRequest, Unprocessable
from meterchat.deposits import store as deposits

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


def test_txid_syntax():
    txid = "ab" * 32
    assert deposits.parse_txid(f"  0x{txid.upper()} ") == txid
    for bad in ("", "ab" * 31, "zz" * 32, None, 5, ["ab" * 32]):
        with pytest.raises(BadRequest) as err:
            deposits.parse_txid(bad)
        assert err.value.code == "invalid_txid"


def test_asked_amounts():
    assert deposits.requested_musdt("10", 3_000_000) == 10_000_000
    assert deposits.requested_musdt("3.25", 3_000_000) == 3_250_000
    for bad, code in (("2.99", "amount_too_small"), ("10.001", "invalid_amount"),
                      ("NaN", "invalid_amount"), ("2000000", "amount_too_large")):
        with pytest.raises(Unprocessable) as err:
            deposits.requested_musdt(bad, 3_000_000)
        assert err.value.code == code


@given(st.sets(st.integers(1, deposits.SUFFIX_MAX), max_size=200))
def test_suffix_is_never_one_in_use(used):
    s = deposits.pick_suffix(used)
    assert s is not None and 1 <= s <= deposits.SUFFIX_MAX and s not in used


def test_no_suffix_when_all_are_taken():
    assert deposits.pick_suffix(set(range(1, deposits.SUFFIX_MAX + 1))) is None


def intent(**kw) -> deposits.Intent:
    base = dict(id=1, user_id=7, amount_musdt=10_000_317, address=ADDR, usdt_contract=USDT,
                created_at_ms=1_000_000, expires_at_ms=4_600_000,
                reserved_until_ms=4_600_000 + deposits.REUSE_AFTER_EXPIRY_MS,
                paid_deposit_id=None)
    base.update(kw)
    return deposits.Intent(**base)


def transfer(**kw) -> TransferLog:
    base = dict(txid="ab" * 32, log_index=0, contract=USDT, from_address=ADDR,
                to_address=ADDR, amount=10_000_317)
    base.update(kw)
    return TransferLog(**base)


def test_transfer_matches_only_on_every_term():
    i = intent()
    assert deposits.intent_matches(i, transfer(), 2_000_000)
    assert deposits.intent_matches(i, transfer(), 4_600_000 + 3600_000)  # late but kept
    assert not deposits.intent_matches(i, transfer(amount=10_000_318), 2_000_000)
    assert not deposits.intent_matches(i, transfer(amount=10_000_000), 2_000_000)
    assert not deposits.intent_matches(i, transfer(contract=NETWORKS["nile"].usdt_contract),
                                       2_000_000)
    assert not deposits.intent_matches(i, transfer(to_address=USDT), 2_000_000)
    assert not deposits.intent_matches(i, transfer(), 999_999)  # sent before it was asked
    assert not deposits.intent_matches(i, transfer(), i.reserved_until_ms + 1)
    assert not deposits.intent_matches(intent(paid_deposit_id=3), transfer(), 2_000_000)
    assert deposits.match_intent([intent(id=2), intent(id=1)], transfer(), 2_000_000).id == 1


def test_expired_amount_is_not_handed_out_again_for_24_hours(tmp_path):
    conn = connect_sync(tmp_path / "db.sqlite3")
    migrate_sync(conn)
    conn.execute("INSERT INTO users (id, email, password_hash, role, display_name,"
                 " created_at_ms) VALUES (1, 'a@b.co', 'x', 'buyer', 'a', 0)")
    ttl = 60 * 60_000
    day = 24 * 3600_000

    def new(at_ms: int) -> int:
        i = run_tx(conn, deposits.create_intent_tx, 1, 10_000_000, ADDR, USDT, ttl, at_ms, min)
        return i.amount_musdt - 10_000_000

    assert new(0) == 1
    assert new(1000) == 2  # open: never shared
    assert new(ttl + day - 1) == 3  # both expired, still reserved for late transfers
    assert new(ttl + day + 1) == 1  # 24 h after expiry the first amount is free again
    amounts = {new(ttl + day + 2) for _ in range(300)}
    assert len(amounts) == 300 and 1 not in amounts


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
