"""More than one node (chain/failover.py) against the devnet with the real tronpy client: two
HTTP listeners over one DevnetState are two nodes of one network as a client sees them.
Reads fail over on errors and timeouts, with a growing backoff, logged and counted in
/metrics; a lagging node never answers for a block it has not solidified; broadcasts reach
every node; and a node killed while deposits are watched and a withdrawal is sent loses or
doubles nothing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import Counter
from decimal import Decimal

import aiohttp
import pytest
from aiohttp import web
from tronpy.keys import PrivateKey

from meterchat.app import create_app
from meterchat.appkeys import DB
from meterchat.chain.devnet import DevnetNode, DevnetSettings
from meterchat.chain.failover import FailoverGateway, endpoint_label
from meterchat.chain.gateway import ChainUnavailable
from meterchat.chain_ctx import configured_endpoints
from meterchat.core.config import config_from_dict
from meterchat.money import ledger
from meterchat.withdrawals.sender import SENDER, sender_from_app
from tests.conftest import actor, chain_config, devnet_pay, eventually, fund_tokens


@pytest.fixture
async def node(tmp_path):
    n = DevnetNode(DevnetSettings(tmp_path / "devnet.sqlite3", block_time_s=0.1,
                                  solidify_depth=2))
    await n.start()
    yield n
    await n.stop()


def test_endpoints_take_precedence_and_one_endpoint_is_a_list_of_one(tmp_path):
    def nodes(**chain):
        return configured_endpoints(config_from_dict({"chain": chain}, tmp_path))

    assert nodes() == []  # the embedded devnet, or the network's public node
    assert nodes(endpoint="http://a:8090") == ["http://a:8090"]
    assert nodes(endpoint="http://a:8090", endpoints=["http://b", "http://c"]) == \
        ["http://b", "http://c"]
    assert nodes(endpoints=["http://b", " http://b ", ""]) == ["http://b"]
    assert endpoint_label("https://user:secret@node.example:8443/jsonrpc?key=k") == \
        "https://node.example:8443"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Proxy:
    """A node in front of the devnet that counts what it is asked, and can lag: it then says
    it has solidified `lag` blocks fewer and knows no block above that."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.seen: Counter[str] = Counter()
        self.lag = 0
        self.fail: set[str] = set()  # paths it answers 503 to
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self.forward)

    async def forward(self, request: web.Request) -> web.Response:
        self.seen[request.path] += 1
        if request.path in self.fail:
            raise web.HTTPServiceUnavailable()
        body = await request.read()
        async with aiohttp.ClientSession() as http, http.request(
                request.method, self.upstream + request.path_qs, data=body,
                headers={"Content-Type": request.content_type}) as resp:
            answer = await resp.json(content_type=None)
        if self.lag and request.path == "/wallet/getnodeinfo":
            num = int(answer["solidityBlock"].split(",")[0][4:]) - self.lag
            answer["solidityBlock"] = f"Num:{num},ID:{'00' * 32}"
        if self.lag and request.path == "/walletsolidity/gettransactioninfobyblocknum":
            answer = []  # what java-tron answers for a block it does not have
        return web.json_response(answer)


class SilentNode:
    """A node that accepts connections and never answers (a hung node: only timeouts)."""

    def __init__(self) -> None:
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None
        self.url = ""

    async def start(self) -> None:
        async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.writers.append(writer)

        self.server = await asyncio.start_server(hang, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        for w in self.writers:
            w.close()
            with contextlib.suppress(Exception):
                await w.wait_closed()
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


def gateway_of(node, urls, timeout_s=2.0, clock=None):
    kw = {"clock": clock} if clock is not None else {}
    return FailoverGateway.of_endpoints(urls, node.usdt_contract, timeout_s, **kw)


async def test_reads_fail_over_to_the_next_node_and_a_failed_node_waits_longer_each_time(
        node, caplog):
    a, b = await node.add_listener(), await node.add_listener()
    clock = Clock()
    gw = gateway_of(node, [a, b], clock=clock)
    first, second = gw.nodes
    try:
        assert await gw.solidified_block_number() >= 0
        assert (first.up, first.errors, second.errors) == (True, 0, 0)
        await node.stop_listener(a)
        with caplog.at_level(logging.INFO, logger="meterchat.chain"):
            assert await gw.usdt_balance(node.hot_wallet_address) > 0  # answered by b
        line = next(r for r in caplog.records if r.getMessage() == "chain_failover")
        assert line.fields["endpoint"] == endpoint_label(a)  # type: ignore[attr-defined]
        assert line.fields["next_endpoint"] == endpoint_label(b)  # type: ignore[attr-defined]
        assert (first.up, first.failovers, first.skip_until) == (False, 1, clock.now + 1.0)
        assert await gw.solidified_block_number() >= 0  # a is skipped while it backs off
        assert first.errors == 1
        clock.now += 1.5  # the backoff is over: a is asked first again, fails, waits 2 s
        await gw.head_block_number()
        assert (first.errors, first.failures, first.skip_until) == (2, 2, clock.now + 2.0)
        assert second.up and second.errors == 0
    finally:
        await gw.close()


async def test_a_node_that_hangs_times_out_and_the_next_one_answers(node):
    hung = SilentNode()
    await hung.start()
    b = await node.add_listener()
    gw = gateway_of(node, [hung.url, b], timeout_s=0.3)
    try:
        assert await gw.trx_balance_sun(node.hot_wallet_address) > 0
        assert gw.nodes[0].failovers == 1 and not gw.nodes[0].up
    finally:
        await gw.close()
        await hung.stop()


async def test_every_node_down_is_chain_unavailable(node):
    a, b = await node.add_listener(), await node.add_listener()
    gw = gateway_of(node, [a, b])
    await node.stop_listener(a)
    await node.stop_listener(b)
    try:
        with pytest.raises(ChainUnavailable):
            await gw.solidified_block_number()
        with pytest.raises(ChainUnavailable):  # both in backoff: still both tried
            await gw.head_block_number()
        assert [n.errors for n in gw.nodes] == [2, 2]
    finally:
        await gw.close()


async def test_a_lagging_node_never_answers_for_a_block_it_has_not_solidified(
        node, aiohttp_server):
    lagging = Proxy(await node.add_listener())
    lagging_url = str((await aiohttp_server(lagging.app)).make_url(""))
    good = await node.add_listener()
    txid = node.transfer(node.deposit_address, usdt_musdt=5_000_000)
    block = await node.wait_solidified(txid)
    gw = gateway_of(node, [lagging_url, good])
    try:
        lagging.lag = 10
        found = await gw.block_transfers(block, node.usdt_contract)
        assert [t.txid for t in found.transfers] == [txid]
        assert lagging.seen["/walletsolidity/gettransactioninfobyblocknum"] == 0
        assert gw.nodes[0].failovers == 1
    finally:
        await gw.close()


async def test_a_transaction_is_judged_by_one_node_only(node, aiohttp_server):
    """The receipt and the solidified height come from the same node: a node that dies
    between the two is asked again from the start on the next one."""
    flaky = Proxy(await node.add_listener())
    flaky_url = str((await aiohttp_server(flaky.app)).make_url(""))
    good = await node.add_listener()
    txid = node.transfer(node.deposit_address, usdt_musdt=1_000_000)
    await node.wait_solidified(txid)
    gw = gateway_of(node, [flaky_url, good])
    try:
        flaky.fail = {"/wallet/getnodeinfo"}
        tx = await gw.get_transaction(txid)
        assert tx is not None and tx.solidified and tx.succeeded
        # The flaky node gave the receipt, then failed on its height: its half answer was
        # dropped and the good node answered all of it.
        assert flaky.seen["/wallet/gettransactioninfobyid"] == 1
        assert gw.nodes[0].failovers == 1
        seen = await gw.lookup_transaction(txid)
        assert seen.tx is not None and seen.solidified_block >= (seen.tx.block_number or 0)
    finally:
        await gw.close()


async def test_a_broadcast_goes_to_every_node_and_the_second_copy_is_no_error(
        node, aiohttp_server):
    proxies = [Proxy(await node.add_listener()) for _ in range(2)]
    urls = [str((await aiohttp_server(p.app)).make_url("")) for p in proxies]
    gw = gateway_of(node, urls)
    try:
        signed = await gw.build_usdt_transfer(node.hot_wallet_key_hex,
                                              PrivateKey.random().public_key
                                              .to_base58check_address(), 1_000_000, 40_000_000)
        answer = await gw.broadcast(signed.signed_json)
        assert answer.ok  # one node took it, the other had it already: still ok
        assert [p.seen["/wallet/broadcasttransaction"] for p in proxies] == [1, 1]
        again = await gw.broadcast(signed.signed_json)
        assert again.duplicate and not again.ok  # every node has it: the sender's "accepted"
        await node.wait_solidified(signed.txid)
        tx = await gw.get_transaction(signed.txid)
        assert tx is not None and tx.succeeded
    finally:
        await gw.close()


async def test_a_broadcast_with_one_node_down_reaches_the_other(node):
    a, b = await node.add_listener(), await node.add_listener()
    gw = gateway_of(node, [a, b])
    try:
        signed = await gw.build_usdt_transfer(node.hot_wallet_key_hex,
                                              PrivateKey.random().public_key
                                              .to_base58check_address(), 1_000_000, 40_000_000)
        await node.stop_listener(a)
        assert (await gw.broadcast(signed.signed_json)).ok
        assert not gw.nodes[0].up and gw.nodes[0].errors == 1
        await node.stop_listener(b)
        with pytest.raises(ChainUnavailable):
            await gw.broadcast(signed.signed_json)
    finally:
        await gw.close()


# -- the app on two nodes, one killed mid-run


async def available(user) -> str:
    return (await user.me())["balance"]["available"]


async def test_a_node_killed_mid_run_loses_and_doubles_nothing(aiohttp_client, node, tmp_path):
    a, b = await node.add_listener(), await node.add_listener()
    key_file = tmp_path / "hot.key"
    key_file.write_text(node.hot_wallet_key_hex)
    cfg = chain_config(tmp_path, chain={"endpoints": [a, b], "hot_wallet_key_file": str(key_file),
                                        "request_timeout_s": 1.0, "node_backoff_s": 0.05,
                                        "node_backoff_max_s": 0.2},
                       withdrawals={"sender_interval_s": 3600, "expiry_margin_s": 0.2})
    client = await aiohttp_client(create_app(cfg))
    await client.app[SENDER].stop()  # driven pass by pass here, to kill a node between two
    sender = sender_from_app(client.app)
    buyer, seller = await actor(client), await actor(client, "seller")
    intents = []
    for usdt in ("3", "4", "5"):
        resp = await buyer.post("/api/deposits/intents", json={"usdt": usdt})
        assert resp.status == 201, await resp.text()
        intents.append((await resp.json())["intent"])
    paid = [await devnet_pay(node.url, intents[0]["address"], usdt=intents[0]["amount_usdt"])]
    await fund_tokens(client.app, seller.id, "500")
    dest = PrivateKey.random().public_key.to_base58check_address()
    resp = await seller.post("/api/withdrawals", json={"tokens": "400", "address": dest},
                             headers={"Idempotency-Key": uuid.uuid4().hex})
    assert resp.status == 201, await resp.text()
    wid = (await resp.json())["withdrawal"]["id"]
    await sender.run_once()  # signed, stored, broadcast to both nodes
    rows = (await (await seller.get("/api/withdrawals")).json())["withdrawals"]
    assert next(w for w in rows if w["id"] == wid)["status"] == "sent"

    await node.stop_listener(a)  # the first node dies while all of that is under way
    for intent in intents[1:]:
        paid.append(await devnet_pay(node.url, intent["address"], usdt=intent["amount_usdt"]))
    expected = sum(Decimal(i["amount_usdt"]) for i in intents) * 100

    async def all_credited():
        return Decimal(await available(buyer)) == expected

    async def confirmed():
        await sender.run_once()
        rows = (await (await seller.get("/api/withdrawals")).json())["withdrawals"]
        return next(w for w in rows if w["id"] == wid)["status"] == "confirmed"

    await eventually(all_credited, timeout_s=20)
    await eventually(confirmed, timeout_s=20)
    db = client.app[DB]
    rows = await db.fetchall("SELECT txid, COUNT(*) AS n FROM deposits GROUP BY txid")
    assert sorted((r["txid"], r["n"]) for r in rows) == sorted((t, 1) for t in paid)
    sent = await db.fetchall("SELECT txid FROM withdrawal_txs WHERE withdrawal_id = ?",
                             (int(wid),))
    assert len(sent) == 1
    assert await gw_usdt(client, node, dest) == 2_500_000  # 4 USDT less the default fees
    await node.wait_blocks(5)  # more passes on the remaining node: still once each
    assert Decimal(await available(buyer)) == expected
    assert (await db.read(ledger.audit)).ok
    metrics = await (await client.get("/metrics")).text()
    assert f'meterchat_chain_node_up{{endpoint="{endpoint_label(a)}"}} 0.0' in metrics
    assert f'meterchat_chain_node_up{{endpoint="{endpoint_label(b)}"}} 1.0' in metrics
    failovers = next(line for line in metrics.splitlines() if line.startswith(
        f'meterchat_chain_failovers_total{{endpoint="{endpoint_label(a)}"}}'))
    assert float(failovers.split()[-1]) >= 1
    await client.close()


async def gw_usdt(client, node, address: str) -> int:
    from meterchat.chain_ctx import GATEWAY

    return await client.app[GATEWAY].usdt_balance(address)
