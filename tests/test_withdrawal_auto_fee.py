"""The "auto" network fee (withdrawals.network_fee_usdt = "auto") against the devnet with the
real tronpy client: the energy a USDT transfer needs read with triggerconstantcontract (the
devnet answers exactly what it then burns: 64,285 to a holder, 130,285 to a fresh address),
times the energy price of getchainparameters, at trx_usdt_price; the quote a seller is shown
is the fee charged, a request confirming another fee is refused, and fixed numbers work as
before."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from tronpy.keys import PrivateKey

from meterchat.app import create_app
from meterchat.appkeys import DB
from meterchat.chain.devnet.contracts import (
    ENERGY_PRICE_SUN,
    ENERGY_TO_FRESH,
    ENERGY_TO_HOLDER,
    NET_PRICE_SUN,
    NET_USAGE_BYTES,
)
from meterchat.chain_ctx import CHAIN_INFO, DEVNET, GATEWAY
from meterchat.core.config import ConfigError, config_from_dict
from meterchat.money import ledger
from meterchat.withdrawals.rules import auto_network_fee
from tests.conftest import actor, assert_error, chain_config, eventually, fund_tokens

AUTO = {"network_fee_usdt": "auto", "trx_usdt_price": Decimal("0.25"),
        "sender_interval_s": 0.1, "expiry_margin_s": 0.2}


def fresh_address() -> str:
    return PrivateKey.random().public_key.to_base58check_address()


# -- the rule and the config


def test_the_auto_fee_is_energy_times_price_times_trx_price_rounded_up():
    assert auto_network_fee(64_285, 100, Decimal("0.25")).musdt == 1_607_125
    assert auto_network_fee(130_285, 100, Decimal("0.25")).musdt == 3_257_125
    assert auto_network_fee(64_285, 210, Decimal("0.3")).musdt == 4_049_955
    assert auto_network_fee(1, 1, Decimal("0.0000001")).musdt == 1  # never rounded to 0
    # The transfer's 345 bytes of bandwidth at 1,000 sun: 6,773,500 sun in all.
    assert auto_network_fee(64_285, 100, Decimal("0.25"), 1_000).musdt == 1_693_375
    fee = auto_network_fee(64_285, 100, Decimal("0.25"))
    assert (fee.energy, fee.energy_price_sun, fee.trx_sun) == (64_285, 100, 6_428_500)


def test_network_fee_takes_a_number_or_auto_and_nothing_else(tmp_path):
    def cfg(value):
        return config_from_dict({"withdrawals": {"network_fee_usdt": value}}, tmp_path)

    assert cfg("auto").withdrawals.network_fee_auto
    assert cfg(Decimal("1.5")).withdrawals.network_fee_musdt == 1_500_000
    assert not cfg(2).withdrawals.network_fee_auto
    with pytest.raises(ConfigError, match="withdrawals.network_fee_usdt.*\"auto\""):
        cfg("automatic")
    with pytest.raises(ConfigError, match="network_fee_usdt"):
        cfg(Decimal("-1"))


# -- the devnet answers what it burns


async def test_the_devnet_estimates_exactly_the_energy_it_then_burns(aiohttp_client, tmp_path):
    client = await aiohttp_client(create_app(chain_config(tmp_path)))
    node, gateway = client.app[DEVNET], client.app[GATEWAY]
    hot = node.hot_wallet_address
    assert await gateway.energy_price_sun() == ENERGY_PRICE_SUN
    dest = fresh_address()
    assert await gateway.usdt_transfer_energy(hot, dest, 1) == ENERGY_TO_FRESH
    for expected in (ENERGY_TO_FRESH, ENERGY_TO_HOLDER):
        estimate = await gateway.usdt_transfer_energy(hot, dest, 1_000_000)
        signed = await gateway.build_usdt_transfer(node.hot_wallet_key_hex, dest, 1_000_000,
                                                   40_000_000)
        assert (await gateway.broadcast(signed.signed_json)).ok
        await node.wait_solidified(signed.txid)
        tx = await gateway.get_transaction(signed.txid)
        assert tx is not None and tx.succeeded
        assert estimate == tx.energy_used == expected
        # The energy burned, and the bandwidth once the day's free points are used up.
        assert tx.fee_sun - expected * ENERGY_PRICE_SUN in (0, NET_USAGE_BYTES * NET_PRICE_SUN)
    # An owner holding too little USDT: the call would revert, and no figure is quoted.
    from meterchat.chain.gateway import ChainUnavailable

    with pytest.raises(ChainUnavailable):
        await gateway.usdt_transfer_energy(fresh_address(), dest, 1)


# -- the quote, shown and charged


@pytest.fixture
async def auto(aiohttp_client, tmp_path):
    return await aiohttp_client(create_app(chain_config(tmp_path, withdrawals=AUTO)))


async def quote(user, address: str, tokens: str):
    return await user.get("/api/withdrawals/quote", params={"address": address,
                                                            "tokens": tokens})


async def withdraw(user, tokens: str, address: str, fee_tokens: str | None = None):
    body = {"tokens": tokens, "address": address}
    if fee_tokens is not None:
        body["fee_tokens"] = fee_tokens
    return await user.post("/api/withdrawals", json=body,
                           headers={"Idempotency-Key": uuid.uuid4().hex})


async def confirmed_tx(user, client, wid: str):
    async def check():
        rows = (await (await user.get("/api/withdrawals")).json())["withdrawals"]
        w = next(w for w in rows if w["id"] == wid)
        return w if w["status"] == "confirmed" else None

    w = await eventually(check, timeout_s=20)
    tx = await client.app[GATEWAY].get_transaction(w["txid"])
    assert tx is not None and tx.succeeded
    return w, tx


@pytest.mark.parametrize("holder", [True, False], ids=["to_a_holder", "to_a_fresh_address"])
async def test_the_auto_fee_quoted_is_the_fee_charged_and_covers_the_trx_burned(auto, holder):
    node = auto.app[DEVNET]
    dest = fresh_address()
    if holder:
        await node.wait_solidified(node.transfer(dest, usdt_musdt=1))
    energy = ENERGY_TO_HOLDER if holder else ENERGY_TO_FRESH
    network_musdt = auto_network_fee(energy, ENERGY_PRICE_SUN, Decimal("0.25"),
                                     NET_PRICE_SUN).musdt
    burn_sun = energy * ENERGY_PRICE_SUN + NET_USAGE_BYTES * NET_PRICE_SUN
    seller = await actor(auto, "seller")
    await fund_tokens(auto.app, seller.id, "750")

    resp = await quote(seller, dest, "400")
    assert resp.status == 200, await resp.text()
    q = (await resp.json())["quote"]
    fee_musdt = 500_000 + network_musdt
    assert q["network_fee_mode"] == "auto" and q["energy"] == energy
    assert q["energy_price_sun"] == ENERGY_PRICE_SUN and q["trx_usdt_price"] == "0.25"
    assert q["network_fee_trx"] == str(Decimal(burn_sun) / 10**6)
    assert (q["bandwidth_bytes"], q["bandwidth_price_sun"]) == (NET_USAGE_BYTES, NET_PRICE_SUN)
    assert Decimal(q["fee_usdt"]) * 10**6 == fee_musdt
    assert Decimal(q["net_usdt"]) * 10**6 == 4_000_000 - fee_musdt
    assert Decimal(q["fee_tokens"]) + Decimal(q["net_tokens"]) == 400

    resp = await withdraw(seller, "400", dest, q["fee_tokens"])
    assert resp.status == 201, await resp.text()
    w = (await resp.json())["withdrawal"]
    assert (w["fee_usdt"], w["net_usdt"]) == (q["fee_usdt"], q["net_usdt"])
    done, tx = await confirmed_tx(seller, auto, w["id"])
    assert await auto.app[GATEWAY].usdt_balance(dest) == 4_000_000 - fee_musdt + holder
    # The chain burned the energy and at most the bandwidth the fee charged for, at the
    # configured price (the bandwidth is free while the hot wallet has the day's points).
    assert tx.energy_used == energy
    assert tx.fee_sun in (energy * ENERGY_PRICE_SUN, burn_sun)
    assert network_musdt == burn_sun // 4  # 0.25 USDT per TRX, exact here
    assert (await auto.app[DB].read(ledger.audit)).ok


async def test_a_request_confirming_another_fee_is_refused_and_moves_nothing(auto):
    seller = await actor(auto, "seller")
    await fund_tokens(auto.app, seller.id, "750")
    dest = fresh_address()
    q = (await (await quote(seller, dest, "400")).json())["quote"]
    await assert_error(await withdraw(seller, "400", dest, "150"), 409, "fee_changed")
    await assert_error(await withdraw(seller, "400", dest, "many"), 422, "invalid_amount")
    assert (await seller.me())["balance"]["available"] == "750"
    # Without fee_tokens (an older client) the request is charged the fee of now.
    resp = await withdraw(seller, "400", dest)
    assert resp.status == 201
    assert (await resp.json())["withdrawal"]["fee_usdt"] == q["fee_usdt"]


async def test_a_quote_refuses_what_a_request_refuses(auto):
    seller, buyer = await actor(auto, "seller"), await actor(auto)
    info = auto.app[CHAIN_INFO]
    await assert_error(await quote(seller, "Tnope", "400"), 422, "invalid_address")
    await assert_error(await quote(seller, info.hot_wallet_address, "400"), 422,
                       "platform_address")
    await assert_error(await quote(seller, fresh_address(), "299"), 422, "below_minimum")
    await assert_error(await quote(seller, fresh_address(), "x"), 422, "invalid_amount")
    resp = await seller.get("/api/withdrawals/quote", params={"address": fresh_address()})
    await assert_error(resp, 422, "missing_field")
    await assert_error(await quote(buyer, fresh_address(), "400"), 403,
                       "withdrawals_not_allowed")
    auto.session.cookie_jar.clear()  # nobody logged in
    resp = await auto.get("/api/withdrawals/quote", params={"address": fresh_address(),
                                                            "tokens": "400"})
    assert resp.status == 401


async def test_with_the_node_down_an_auto_fee_is_not_guessed(aiohttp_client, tmp_path):
    cfg = chain_config(tmp_path, withdrawals=AUTO,
                       chain={"endpoints": ["http://127.0.0.1:9"], "request_timeout_s": 0.5,
                              "network": "nile",
                              "usdt_contract": "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf",
                              "deposit_address": fresh_address()})
    client = await aiohttp_client(create_app(cfg))
    seller = await actor(client, "seller")
    await fund_tokens(client.app, seller.id, "750")
    await assert_error(await quote(seller, fresh_address(), "400"), 503, "chain_unavailable")
    await assert_error(await withdraw(seller, "400", fresh_address()), 503, "chain_unavailable")
    assert (await seller.me())["balance"]["available"] == "750"


async def test_a_fixed_network_fee_is_quoted_as_before(aiohttp_client, tmp_path):
    client = await aiohttp_client(create_app(chain_config(tmp_path)))
    seller = await actor(client, "seller")
    q = (await (await quote(seller, fresh_address(), "400")).json())["quote"]
    assert (q["network_fee_mode"], q["fee_usdt"], q["net_usdt"]) == ("fixed", "1.5", "2.5")
    assert q["energy"] is None and q["network_fee_usdt"] == "1"
    cc = await (await client.get("/api/client-config")).json()
    assert cc["withdrawal_fees_musdt"] == 1_500_000


async def test_auto_fee_quotes_are_limited_per_account(aiohttp_client, tmp_path):
    client = await aiohttp_client(create_app(chain_config(
        tmp_path, withdrawals={**AUTO, "quotes_per_user_per_minute": 2})))
    seller, other = await actor(client, "seller"), await actor(client, "seller")
    dest = fresh_address()
    for _ in range(2):
        assert (await quote(seller, dest, "400")).status == 200
    resp = await quote(seller, dest, "400")
    await assert_error(resp, 429, "rate_limited")
    assert int(resp.headers["Retry-After"]) >= 1
    assert (await quote(other, dest, "400")).status == 200  # per account
