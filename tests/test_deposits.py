"""Deposits end to end over real HTTP: the app with its in-process devnet, the real tronpy
client, real SQLite. Intents, claims by TXID with every refusal, idempotent crediting under
concurrency, strangers, the watcher (crediting without a claim, unmatched transfers, resuming
from its cursor after a restart, surviving node errors) and the operator's assignment."""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal

import pytest

from meterchat.accounts import users as accounts
from meterchat.app import create_app
from meterchat.appkeys import DB, PASSWORDS
from meterchat.chain.client import ClientSettings, TronClient
from meterchat.chain.devnet import DevnetNode, DevnetSettings
from meterchat.chain_ctx import CHAIN_INFO, DEVNET, GATEWAY
from meterchat.core.units import usdt_to_musdt
from meterchat.deposits import credits, intents, rules
from meterchat.deposits.watcher import WATCHER, DepositWatcher
from meterchat.money import ledger
from tests.conftest import (
    Actor,
    actor,
    assert_error,
    chain_config,
    devnet_pay,
    eventually,
    login,
)

OTHER_ADDRESS = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"


@pytest.fixture
async def app_client(aiohttp_client, tmp_path):
    return await aiohttp_client(create_app(chain_config(tmp_path)))


@pytest.fixture
async def claim_only_client(aiohttp_client, tmp_path):
    """The watcher effectively asleep, so claims are what credits."""
    cfg = chain_config(tmp_path, deposits={"watcher_interval_s": 3600})
    return await aiohttp_client(create_app(cfg))


async def new_intent(user, usdt: str = "10") -> dict:
    resp = await user.post("/api/deposits/intents", json={"usdt": usdt})
    assert resp.status == 201, await resp.text()
    return (await resp.json())["intent"]


async def pay(client, intent: dict, amount_usdt: str | None = None) -> str:
    node = client.app[DEVNET]
    return await devnet_pay(node.url, intent["address"], usdt=amount_usdt or intent["amount_usdt"])


async def available(user) -> str:
    return (await user.me())["balance"]["available"]


async def test_intent_transfer_claim_credits_exactly_100_tokens_per_usdt_once(claim_only_client):
    client = claim_only_client
    buyer = await actor(client)
    intent = await new_intent(buyer, "10")
    info = client.app[CHAIN_INFO]
    amount = Decimal(intent["amount_usdt"])
    assert Decimal(10) < amount < Decimal("10.1")  # a suffix of 1 to 99,999 µUSDT
    assert intent["address"] == info.deposit_address
    assert intent["qr"].startswith("data:image/svg+xml")
    assert intent["expires_at"].endswith("Z")

    txid = await pay(client, intent)
    await client.app[DEVNET].wait_solidified(txid)
    resp = await buyer.post("/api/deposits/claim", json={"txid": txid})
    body = await resp.json()
    assert resp.status == 200, body
    dep = body["deposit"]
    assert dep["status"] == "credited" and dep["txid"] == txid
    assert dep["amount_usdt"] == intent["amount_usdt"]
    # 10.00xxxx USDT = 1000.xxxx tokens: µUSDT in = µUSDT credited.
    assert Decimal(dep["tokens"]) == amount * 100
    assert Decimal(await available(buyer)) == amount * 100

    resp = await buyer.post("/api/deposits/claim", json={"txid": txid.upper()})
    await assert_error(resp, 409, "already_credited")
    assert Decimal(await available(buyer)) == amount * 100

    entries = (await (await buyer.get("/api/ledger")).json())["entries"]
    assert [(e["kind"], e["bucket"], e["amount"]) for e in entries] == \
        [("deposit", "available", dep["tokens"])]
    assert entries[0]["balance_after"] == dep["tokens"] and entries[0]["at"].endswith("Z")
    listed = (await (await buyer.get("/api/deposits")).json())
    assert [d["txid"] for d in listed["deposits"]] == [txid]
    assert listed["intents"][0]["status"] == "paid"
    # The paid intent carries its receipt: the wallet shows it in place of the address.
    assert listed["intents"][0]["paid"] == {
        "txid": txid, "credited_at": dep["credited_at"], "amount_usdt": intent["amount_usdt"],
        "tokens": dep["tokens"]}
    report = await client.app[DB].read(ledger.audit)
    assert report.ok and report.deposits_in_musdt == usdt_to_musdt(intent["amount_usdt"])


async def test_stranger_pasting_a_txid_first_gets_nothing(claim_only_client):
    client = claim_only_client
    owner, stranger = await actor(client), await actor(client)
    intent = await new_intent(owner, "5")
    await new_intent(stranger, "5")  # even with an intent of the same size
    txid = await pay(client, intent)
    await client.app[DEVNET].wait_solidified(txid)

    resp = await stranger.post("/api/deposits/claim", json={"txid": txid})
    await assert_error(resp, 409, "unmatched")
    assert await available(stranger) == "0"
    # The transfer still went to its rightful owner, and only once.
    assert Decimal(await available(owner)) == Decimal(intent["amount_usdt"]) * 100
    resp = await owner.post("/api/deposits/claim", json={"txid": txid})
    await assert_error(resp, 409, "already_credited")
    resp = await stranger.post("/api/deposits/claim", json={"txid": txid})
    await assert_error(resp, 409, "unmatched")


async def test_fifty_concurrent_claims_of_one_txid_credit_once(claim_only_client):
    client = claim_only_client
    buyer = await actor(client)
    intent = await new_intent(buyer, "20")
    txid = await pay(client, intent)
    await client.app[DEVNET].wait_solidified(txid)
    resps = await asyncio.gather(*(
        buyer.post("/api/deposits/claim", json={"txid": txid}) for _ in range(50)
    ))
    statuses = sorted(r.status for r in resps)
    assert statuses == [200] + [409] * 49
    codes = {(await r.json())["error"]["code"] for r in resps if r.status == 409}
    assert codes == {"already_credited"}
    assert Decimal(await available(buyer)) == Decimal(intent["amount_usdt"]) * 100
    rows = await client.app[DB].fetchall("SELECT COUNT(*) FROM ledger_tx WHERE kind='deposit'")
    assert rows[0][0] == 1


async def test_claim_refusals_each_have_their_own_code(claim_only_client):
    client = claim_only_client
    node = client.app[DEVNET]
    gateway = client.app[GATEWAY]
    buyer = await actor(client)
    intent = await new_intent(buyer, "3")

    for bad in ("xyz", "12" * 31, "g" * 64, 42, None):
        resp = await buyer.post("/api/deposits/claim", json={"txid": bad})
        await assert_error(resp, 400, "invalid_txid")
    resp = await buyer.post("/api/deposits/claim", json={"txid": "ab" * 32})
    await assert_error(resp, 404, "tx_not_found")

    wrong_to = await devnet_pay(node.url, OTHER_ADDRESS, usdt=intent["amount_usdt"])
    trx = await devnet_pay(node.url, intent["address"], trx="3")
    failed = await gateway.build_usdt_transfer(node.hot_wallet_key_hex, intent["address"],
                                               usdt_to_musdt(intent["amount_usdt"]), 1_000_000)
    assert (await gateway.broadcast(failed.signed_json)).ok
    for txid in (wrong_to, trx, failed.txid):
        await node.wait_solidified(txid)
    cases = [(wrong_to, 422, "wrong_recipient"), (trx, 422, "not_usdt"),
             (failed.txid, 422, "tx_failed")]
    for txid, status, code in cases:
        resp = await buyer.post("/api/deposits/claim", json={"txid": txid})
        await assert_error(resp, status, code)
    assert await available(buyer) == "0"

    # A transfer that matches no intent (amount without its suffix) is not credited to
    # whoever pastes it.
    plain = await devnet_pay(node.url, intent["address"], usdt="3")
    await node.wait_solidified(plain)
    resp = await buyer.post("/api/deposits/claim", json={"txid": plain})
    await assert_error(resp, 409, "unmatched")
    assert await available(buyer) == "0"


async def test_not_yet_solidified_is_202_confirming_and_the_watcher_finishes_it(
        aiohttp_client, tmp_path):
    cfg = chain_config(tmp_path, devnet={"solidify_depth": 6})
    client = await aiohttp_client(create_app(cfg))
    node = client.app[DEVNET]
    buyer = await actor(client)
    intent = await new_intent(buyer, "4")
    txid = await pay(client, intent)

    async def in_block():
        tx = await client.app[GATEWAY].get_transaction(txid)
        return tx if tx is not None and tx.in_block else None

    tx = await eventually(in_block)
    assert not tx.solidified
    resp = await buyer.post("/api/deposits/claim", json={"txid": txid})
    body = await resp.json()
    assert resp.status == 202, body
    assert body["deposit"]["status"] == "confirming"
    listed = (await (await buyer.get("/api/deposits")).json())["deposits"]
    assert listed == [{"txid": txid, "status": "confirming", "claimed_at": listed[0]["claimed_at"]}]
    await node.wait_solidified(txid)

    async def credited():
        return await available(buyer) != "0"

    await eventually(credited)
    assert Decimal(await available(buyer)) == Decimal(intent["amount_usdt"]) * 100
    listed = (await (await buyer.get("/api/deposits")).json())["deposits"]
    assert [(d["txid"], d["status"]) for d in listed] == [(txid, "credited")]


async def test_two_open_intents_never_share_an_amount(app_client):
    users = [await actor(app_client) for _ in range(12)]  # 5 open intents each at most
    intents = [await new_intent(u, usdt) for u in users
               for usdt in ("10", "10.01", "10", "10.01", "10")]
    amounts = [usdt_to_musdt(i["amount_usdt"]) for i in intents]
    # Neighbouring asked amounts share part of their range, never an exact amount.
    assert len(set(amounts)) == 60
    assert all(10_000_000 < a < 10_110_000 for a in amounts)


async def test_bad_intent_requests_are_refused(app_client):
    buyer = await actor(app_client)
    cases = [("2.99", "amount_too_small"), ("10.001", "invalid_amount"),
             ("abc", "invalid_amount"), ("-5", "amount_too_small"),
             ("1e9", "amount_too_large"), (True, "invalid_type")]
    for usdt, code in cases:
        resp = await buyer.post("/api/deposits/intents", json={"usdt": usdt})
        await assert_error(resp, 422, code)
    resp = await buyer.post("/api/deposits/intents", json={})
    await assert_error(resp, 422, "missing_field")
    app_client.session.cookie_jar.clear()
    resp = await app_client.post("/api/deposits/intents", json={"usdt": "10"})
    await assert_error(resp, 401)


async def test_watcher_credits_a_paid_intent_nobody_claims(app_client):
    buyer = await actor(app_client)
    intent = await new_intent(buyer, "7")
    txid = await pay(app_client, intent)

    async def credited():
        return await available(buyer) != "0"

    await eventually(credited)
    assert Decimal(await available(buyer)) == Decimal(intent["amount_usdt"]) * 100
    resp = await buyer.post("/api/deposits/claim", json={"txid": txid})
    await assert_error(resp, 409, "already_credited")
    row = await app_client.app[DB].fetchone("SELECT source FROM deposits WHERE txid = ?", (txid,))
    assert row[0] == "watcher"


async def test_unmatched_transfer_is_recorded_and_the_operator_assigns_it(app_client):
    client = app_client
    node = client.app[DEVNET]
    buyer = await actor(client)
    await new_intent(buyer, "10")
    txid = await devnet_pay(node.url, client.app[CHAIN_INFO].deposit_address, usdt="10")

    async def recorded():
        return await client.app[DB].fetchone(
            "SELECT status, user_id FROM deposits WHERE txid = ?", (txid,))

    row = await eventually(recorded)
    assert tuple(row) == ("unmatched", None)
    assert await available(buyer) == "0"
    resp = await buyer.post("/api/deposits/claim", json={"txid": txid})
    await assert_error(resp, 409, "unmatched")

    pw = client.app[PASSWORDS]
    admin_user = await client.app[DB].tx(
        accounts.insert_user_tx, "ops@example.com", pw.hash("correct horse battery"), "admin", "ops")
    assert admin_user.role == "admin"
    session = await login(client, "ops@example.com")
    admin = Actor(client, session["user"], session["token"])
    await assert_error(await buyer.get("/api/admin/deposits?status=unmatched"), 403)
    listed = (await (await admin.get("/api/admin/deposits?status=unmatched")).json())["deposits"]
    assert [(d["txid"], d["amount_usdt"], d["status"]) for d in listed] == \
        [(txid, "10", "unmatched")]
    await assert_error(await admin.get("/api/admin/deposits?status=bogus"), 422)

    resp = await admin.post(f"/api/admin/deposits/{txid}/assign", json={"user_id": buyer.id})
    body = await resp.json()
    assert resp.status == 200, body
    assert body["deposit"]["status"] == "credited" and body["deposit"]["user_id"] == buyer.id
    assert await available(buyer) == "1000"
    resp = await admin.post(f"/api/admin/deposits/{txid}/assign", json={"user_id": buyer.id})
    await assert_error(resp, 409, "already_credited")
    resp = await admin.post(f"/api/admin/deposits/{'cd' * 32}/assign", json={"user_id": buyer.id})
    await assert_error(resp, 404, "deposit_not_found")
    assert await available(buyer) == "1000"
    assert (await client.app[DB].read(ledger.audit)).ok


async def test_watcher_resumes_from_its_cursor_after_a_restart(aiohttp_client, tmp_path):
    node = DevnetNode(DevnetSettings(tmp_path / "devnet.sqlite3", block_time_s=0.1,
                                     solidify_depth=2))
    await node.start()
    try:
        cfg = chain_config(tmp_path, chain={"endpoint": node.url})
        app = create_app(cfg)
        client = await aiohttp_client(app)
        assert DEVNET not in client.app  # the app uses the node it was pointed at
        buyer = await actor(client)
        first = await new_intent(buyer, "3")
        second = await new_intent(buyer, "4")
        txid1 = await pay_to(node, first)

        async def credited_first():
            return await available(buyer) != "0"

        await eventually(credited_first)
        cursor_before = await client.app[DB].read(credits.cursor)
        await client.close()  # the server is down ...

        txid2 = await pay_to(node, second)  # ... while the second is paid
        paid_block = await node.wait_solidified(txid2)
        await node.wait_blocks(3)
        assert cursor_before < paid_block

        client2 = await aiohttp_client(create_app(cfg))
        buyer2_headers = buyer.headers

        async def credited_both():
            resp = await client2.get("/api/me", headers=buyer2_headers)
            bal = Decimal((await resp.json())["balance"]["available"])
            return bal if bal > Decimal(first["amount_usdt"]) * 100 else None

        total = await eventually(credited_both)
        assert total == (Decimal(first["amount_usdt"]) + Decimal(second["amount_usdt"])) * 100
        rows = await client2.app[DB].fetchall(
            "SELECT txid, source FROM deposits ORDER BY id")
        assert [tuple(r) for r in rows] == [(txid1, "watcher"), (txid2, "watcher")]
        assert await client2.app[DB].read(credits.cursor) >= paid_block
        await client2.close()
    finally:
        await node.stop()


async def pay_to(node: DevnetNode, intent: dict) -> str:
    return await devnet_pay(node.url, intent["address"], usdt=intent["amount_usdt"])


async def test_watcher_survives_node_errors_with_backoff_and_says_why(tmp_path, caplog):
    from meterchat.core.db import Database

    settings = DevnetSettings(tmp_path / "devnet.sqlite3", block_time_s=0.1, solidify_depth=2)
    node = DevnetNode(settings)
    await node.start()
    port = int(node.url.rsplit(":", 1)[1])
    db = Database(tmp_path / "meterchat.sqlite3")
    await db.open()
    gw = TronClient(ClientSettings(node.url, node.usdt_contract, 1.0))
    watcher = DepositWatcher(db, gw, node.usdt_contract, node.deposit_address, 0.01)
    try:
        await watcher.run_once()
        start = await db.read(credits.cursor)
        await node.stop()
        with caplog.at_level(logging.WARNING, logger="meterchat.deposits.watcher"):
            assert await watcher.run_once() == 0
        assert watcher.failures == 1 and watcher.last_error
        assert any(r.getMessage() == "watcher_node_error" for r in caplog.records)
        assert await watcher.run_once() == 0  # backing off: not even asking
        assert watcher.failures == 1

        node = DevnetNode(DevnetSettings(settings.path, port=port, block_time_s=0.1,
                                         solidify_depth=2))
        await node.start()
        txid = node.transfer(node.deposit_address, usdt_musdt=1_234_567)
        block = await node.wait_solidified(txid)
        watcher.backoff_until = 0.0
        assert await watcher.run_once() > 0
        assert watcher.failures == 0
        assert await db.read(credits.cursor) >= block > start
        row = await db.fetchone("SELECT status, amount_musdt FROM deposits WHERE txid = ?",
                                (txid,))
        assert tuple(row) == ("unmatched", 1_234_567)
    finally:
        await gw.close()
        await db.close()
        await node.stop()


async def test_watcher_is_registered_and_reports_lag(app_client):
    watcher = app_client.app[WATCHER]
    node = app_client.app[DEVNET]
    await node.wait_blocks(5)

    async def caught_up():
        return await app_client.app[DB].read(credits.cursor) not in (None, 0)

    await eventually(caught_up)
    resp = await app_client.get("/metrics")
    assert "meterchat_deposit_watcher_lag_blocks" in await resp.text()
    assert watcher.failures == 0


# ---- shared resources: amounts, claims and the node ---------------------------------------


async def test_one_account_holds_at_most_its_cap_of_open_intents(app_client):
    client = app_client
    hoarder, other = await actor(client), await actor(client)
    mine = [await new_intent(hoarder, "10") for _ in range(5)]
    resp = await hoarder.post("/api/deposits/intents", json={"usdt": "10"})
    await assert_error(resp, 429, "too_many_intents")
    assert 3500 < int(resp.headers["Retry-After"]) <= 3600  # when the first one expires
    await assert_error(await hoarder.post("/api/deposits/intents", json={"usdt": "25"}), 429)
    # Everybody else still gets the popular amount.
    assert Decimal((await new_intent(other, "10"))["amount_usdt"]) > 10
    # A paid intent is not open any more: the hoarder (a buyer after all) may ask again.
    await pay(client, mine[0])

    async def paid():
        listed = (await (await hoarder.get("/api/deposits")).json())["intents"]
        return any(i["status"] == "paid" for i in listed)

    await eventually(paid)
    await new_intent(hoarder, "10")
    rows = await client.app[DB].fetchall(
        "SELECT COUNT(*) FROM deposit_intents WHERE user_id = ?", (int(hoarder.id),))
    assert rows[0][0] == 6


def test_expired_intents_stop_counting_against_the_cap_while_still_reserved(tmp_path):
    from meterchat.core.db import connect_sync, migrate_sync, run_tx
    from meterchat.core.errors import TooManyRequests

    conn = connect_sync(tmp_path / "db.sqlite3")
    migrate_sync(conn)
    conn.execute("INSERT INTO users (id, email, password_hash, role, display_name,"
                 " created_at_ms) VALUES (1, 'a@b.co', 'x', 'buyer', 'a', 0)")
    ttl = 60 * 60_000

    def new(at_ms: int) -> int:
        return run_tx(conn, intents.create_intent_tx, 1, 10_000_000, OTHER_ADDRESS,
                      OTHER_ADDRESS, ttl, at_ms, max_open=5).amount_musdt

    held = {new(i) for i in range(5)}
    with pytest.raises(TooManyRequests) as refused:
        new(10)
    assert refused.value.headers["Retry-After"] == str(ttl // 1000)
    later = new(ttl + 1)  # the first five expired: they keep their amounts, not the cap
    assert later not in held and len(held) == 5
    # The suffix space is 1..99,999 µUSDT.
    assert all(10_000_000 < a <= 10_000_000 + rules.SUFFIX_MAX for a in held | {later})
    assert rules.SUFFIX_MAX == 99_999


async def test_txid_claims_are_limited_per_user_and_per_address(aiohttp_client, tmp_path):
    cfg = chain_config(tmp_path, deposits={"claims_per_user_per_hour": 3,
                                           "claims_per_ip_per_hour": 5},
                       server={"trusted_proxies": ["127.0.0.1"]})
    client = await aiohttp_client(create_app(cfg))
    here, there = {"X-Forwarded-For": "203.0.113.66"}, {"X-Forwarded-For": "198.51.100.7"}
    a, b, c = await actor(client), await actor(client), await actor(client)

    async def claim(user, n: int, headers: dict):
        return await user.post("/api/deposits/claim", json={"txid": f"{n:064x}"},
                               headers=headers)

    for n in range(3):
        await assert_error(await claim(a, n, here), 404, "tx_not_found")
    resp = await claim(a, 3, here)
    await assert_error(resp, 429, "rate_limited")
    assert int(resp.headers["Retry-After"]) > 3000
    await assert_error(await claim(a, 3, there), 429)  # the user's own limit, anywhere
    # A malformed TXID reaches no node and counts nothing.
    await assert_error(await b.post("/api/deposits/claim", json={"txid": "zz"}, headers=here),
                       400, "invalid_txid")
    for n in range(2):
        await assert_error(await claim(b, 10 + n, here), 404, "tx_not_found")
    await assert_error(await claim(b, 12, here), 429)  # the address's limit, whoever asks
    await assert_error(await claim(c, 20, there), 404, "tx_not_found")
    assert (await client.app[DB].read(ledger.audit)).ok


class CountingNode:
    """A TRON node's HTTP API passed through to the devnet node, counting requests by path."""

    def __init__(self, node: DevnetNode) -> None:
        from aiohttp import web

        self.node = node
        self.seen: dict[str, int] = {}
        self.app = web.Application()
        self.app.router.add_route("*", "/{path:.*}", self.forward)

    async def forward(self, request):
        import aiohttp
        from aiohttp import web

        self.seen[request.path] = self.seen.get(request.path, 0) + 1
        async with aiohttp.ClientSession() as http, http.request(
                request.method, self.node.url + request.path_qs, data=await request.read(),
                headers={"Content-Type": request.content_type}) as resp:
            return web.Response(body=await resp.read(), status=resp.status,
                                content_type=resp.content_type)

    def reads(self) -> int:
        return self.seen.get("/wallet/getnodeinfo", 0)


async def test_health_reads_the_node_once_per_cache_period_however_many_ask(
        aiohttp_client, aiohttp_server, tmp_path):
    node = DevnetNode(DevnetSettings(tmp_path / "devnet.sqlite3", block_time_s=0.1,
                                     solidify_depth=2))
    await node.start()
    try:
        counting = CountingNode(node)
        proxy = await aiohttp_server(counting.app)
        cfg = chain_config(tmp_path, chain={"endpoint": str(proxy.make_url(""))},
                           deposits={"watcher_interval_s": 3600},
                           withdrawals={"sender_interval_s": 3600},
                           operator={"health_chain_cache_s": 3600})
        client = await aiohttp_client(create_app(cfg))

        async def watcher_started():  # its first pass reads the node too
            return await client.app[DB].read(credits.cursor) is not None

        await eventually(watcher_started)
        before = counting.reads()
        answers = await asyncio.gather(*(client.get("/api/health") for _ in range(30)))
        bodies = [await r.json() for r in answers]
        assert all(r.status == 200 for r in answers)
        assert len({b["chain"]["solidified_block"] for b in bodies}) == 1
        assert counting.reads() - before == 1
        for _ in range(10):
            await client.get("/api/health")
        assert counting.reads() - before == 1
    finally:
        await node.stop()
