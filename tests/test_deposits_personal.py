"""Deposits to a personal address (deposits.mode = "address_per_user") end to end over real
HTTP: the app with its in-process devnet, the real tronpy client, real SQLite. Two buyers get
two fixed addresses; odd and round amounts are credited without a claim; small ones add up
to one credit once they reach deposits.min_usdt; transfers from a deposit address are
ignored; a TXID claim works and never credits twice; unique_amount mode refuses the route."""

from __future__ import annotations

import pytest

from meterchat.app import create_app
from meterchat.appkeys import DB
from meterchat.chain import hd
from meterchat.chain_ctx import CHAIN_INFO, DEVNET, GATEWAY
from meterchat.deposits.watcher import WATCHER
from tests.conftest import actor, assert_error, audit_ok, chain_config, devnet_pay, eventually

PERSONAL = {"mode": "address_per_user", "watcher_interval_s": 0.1}
NO_SWEEPS = {"interval_s": 3600}


@pytest.fixture
async def personal(aiohttp_client, tmp_path):
    return await aiohttp_client(create_app(chain_config(tmp_path, deposits=PERSONAL,
                                                        sweeps=NO_SWEEPS)))


async def my_address(user) -> dict:
    resp = await user.get("/api/deposits/address")
    body = await resp.json()
    assert resp.status == 200, body
    return body


async def available(user) -> str:
    return (await user.me())["balance"]["available"]


async def until_available(user, tokens: str, timeout_s: float = 15) -> None:
    async def check():
        return await available(user) == tokens
    await eventually(check, timeout_s=timeout_s)


async def test_two_buyers_get_two_fixed_addresses_derived_from_the_xpub(personal):
    a, b = await actor(personal), await actor(personal)
    first_a, first_b = await my_address(a), await my_address(b)
    assert first_a["address"] != first_b["address"]
    assert await my_address(a) == first_a  # the same every time
    assert first_a["min_usdt"] == "3" and first_a["qr"].startswith("data:image/svg+xml")
    xpub = personal.app[CHAIN_INFO].deposit_xpub
    derived = {hd.address_at(xpub, i) for i in (0, 1)}
    assert {first_a["address"], first_b["address"]} == derived
    rows = await personal.app[DB].read(lambda c: c.execute(
        "SELECT user_id, derivation_index FROM deposit_addresses ORDER BY 2").fetchall())
    assert [(r["user_id"], r["derivation_index"]) for r in rows] == [(int(a.id), 0),
                                                                      (int(b.id), 1)]


async def test_odd_and_round_amounts_are_credited_to_their_owner_without_a_claim(personal):
    node = personal.app[DEVNET]
    a, b = await actor(personal), await actor(personal)
    addr_a, addr_b = (await my_address(a))["address"], (await my_address(b))["address"]
    await devnet_pay(node.url, addr_a, usdt="7.5")
    await devnet_pay(node.url, addr_b, usdt="10.123457")
    await until_available(a, "750")
    await until_available(b, "1012.3457")
    await audit_ok(personal)


async def test_small_transfers_add_up_to_one_credit_once_they_reach_the_minimum(personal):
    node = personal.app[DEVNET]
    buyer = await actor(personal)
    addr = (await my_address(buyer))["address"]
    txid = await devnet_pay(node.url, addr, usdt="1.25")
    await node.wait_solidified(txid)
    await eventually(lambda: _pending_is(buyer, "1.25"))
    assert await available(buyer) == "0"
    await devnet_pay(node.url, addr, usdt="2")
    await until_available(buyer, "325")
    assert (await my_address(buyer))["pending_usdt"] == "0"
    deposits = (await (await buyer.get("/api/deposits")).json())["deposits"]
    assert [d["amount_usdt"] for d in deposits] == ["3.25"]  # one credit for the sum
    await audit_ok(personal)


async def _pending_is(user, usdt: str) -> bool:
    return (await my_address(user))["pending_usdt"] == usdt


async def test_transfers_from_a_deposit_address_are_ignored(personal):
    app = personal.app
    node = app[DEVNET]
    a, b = await actor(personal), await actor(personal)
    addr_a, addr_b = (await my_address(a))["address"], (await my_address(b))["address"]
    await devnet_pay(node.url, addr_a, usdt="5")
    await until_available(a, "500")
    # Address a pays b (as a sweep would pay the hot wallet): nobody is credited for it.
    key = hd.private_key_at(node.deposit_mnemonic, 0)
    await devnet_pay(node.url, addr_a, trx="5")
    gw = app[GATEWAY]
    await eventually(lambda: _has_trx(gw, addr_a))
    signed = await gw.build_usdt_transfer(key, addr_b, 4_000_000, 40_000_000)
    assert (await gw.broadcast(signed.signed_json)).ok
    await node.wait_solidified(signed.txid)
    marker = await devnet_pay(node.url, addr_b, usdt="3")
    await node.wait_solidified(marker)
    await until_available(b, "300")  # the later transfer is credited, the one from a is not
    assert await available(a) == "500"
    assert (await my_address(b))["pending_usdt"] == "0"


async def _has_trx(gw, address: str) -> bool:
    return await gw.trx_balance_sun(address) > 0


async def test_a_claim_credits_a_personal_transfer_once_and_the_watcher_never_again(
        aiohttp_client, tmp_path):
    cfg = chain_config(tmp_path, deposits={**PERSONAL, "watcher_interval_s": 3600},
                       sweeps=NO_SWEEPS)
    client = await aiohttp_client(create_app(cfg))
    node = client.app[DEVNET]
    buyer = await actor(client)
    addr = (await my_address(buyer))["address"]
    small = await devnet_pay(node.url, addr, usdt="1")
    await node.wait_solidified(small)
    resp = await buyer.post("/api/deposits/claim", json={"txid": small})
    body = await resp.json()
    assert resp.status == 202 and body["deposit"]["status"] == "below_minimum", body
    assert body["deposit"]["pending_usdt"] == "1"
    big = await devnet_pay(node.url, addr, usdt="4.5")
    await node.wait_solidified(big)
    resp = await buyer.post("/api/deposits/claim", json={"txid": big})
    body = await resp.json()
    assert resp.status == 200 and body["deposit"]["amount_usdt"] == "5.5", body
    await assert_error(await buyer.post("/api/deposits/claim", json={"txid": big}), 409,
                       "already_credited")
    stranger = await actor(client)
    await my_address(stranger)
    await assert_error(await stranger.post("/api/deposits/claim", json={"txid": big}), 409)
    await client.app[WATCHER].run_once()
    assert await available(buyer) == "550"
    await audit_ok(client)


async def test_unique_amount_mode_has_no_personal_address(aiohttp_client, tmp_path):
    client = await aiohttp_client(create_app(chain_config(tmp_path)))
    buyer = await actor(client)
    await assert_error(await buyer.get("/api/deposits/address"), 409, "personal_addresses_off")


async def test_a_personal_top_up_gets_its_bonus_tier_on_the_sum(aiohttp_client, tmp_path):
    cfg = chain_config(tmp_path, deposits=PERSONAL, sweeps=NO_SWEEPS,
                       economy={"bonus_tiers": ["5:10"]})
    client = await aiohttp_client(create_app(cfg))
    node = client.app[DEVNET]
    buyer = await actor(client)
    addr = (await my_address(buyer))["address"]
    first = await devnet_pay(node.url, addr, usdt="2.5")
    await node.wait_solidified(first)
    await devnet_pay(node.url, addr, usdt="3")  # 5.5 in all: the 5-USDT tier, 10 %
    await until_available(buyer, "605")
    await audit_ok(client)


ABANDON = "abandon " * 11 + "about"


async def test_start_up_refuses_personal_mode_without_a_usable_xpub_or_seed(tmp_path):
    from meterchat.chain_ctx import load_deposit_seed, resolve
    from meterchat.core.config import ConfigError

    base = {"network": "nile", "deposit_address": "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"}
    missing = chain_config(tmp_path, chain=base, deposits={"mode": "address_per_user"})
    with pytest.raises(ConfigError, match="chain.deposit_xpub"):
        await resolve(missing, None)
    bad = chain_config(tmp_path, chain={**base, "deposit_xpub": "xpubnotakey"},
                       deposits={"mode": "address_per_user"})
    with pytest.raises(ConfigError, match="chain.deposit_xpub") as err:
        await resolve(bad, None)
    assert "xpubnotakey" not in str(err.value)
    seed_file = tmp_path / "seed.txt"
    seed_file.write_text(hd.new_mnemonic())
    other = chain_config(tmp_path, chain={**base, "deposit_xpub": hd.xpub_of(ABANDON),
                                          "deposit_seed_file": str(seed_file)},
                         deposits={"mode": "address_per_user"})
    info = await resolve(other, None)
    assert info.deposit_xpub == hd.xpub_of(ABANDON)
    with pytest.raises(ConfigError, match="does not derive chain.deposit_xpub") as err:
        load_deposit_seed(other, None)
    assert seed_file.read_text() not in str(err.value)
    seed_file.write_text(ABANDON + "\n")
    secret = load_deposit_seed(other, None)
    assert secret is not None and secret.reveal() == ABANDON and "abandon" not in repr(secret)


async def test_racing_first_asks_allocate_one_index_per_user(personal):
    import asyncio

    users = [await actor(personal) for _ in range(3)]
    answers = await asyncio.gather(*(my_address(u) for u in users for _ in range(4)))
    by_user: dict[str, set[str]] = {}
    for i, a in enumerate(answers):
        by_user.setdefault(users[i // 4].id, set()).add(a["address"])
    assert all(len(v) == 1 for v in by_user.values())
    assert len({next(iter(v)) for v in by_user.values()}) == 3
    rows = await personal.app[DB].read(lambda c: c.execute(
        "SELECT COUNT(*) AS n, MAX(derivation_index) AS top FROM deposit_addresses").fetchone())
    assert (rows["n"], rows["top"]) == (3, 2)
