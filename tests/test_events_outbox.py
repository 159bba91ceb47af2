"""The event outbox: each event written in the transaction of the change it reports (a
credited deposit and its event commit together or not at all), with a stable id; threshold
events fire once per crossing; the pure rules alone."""

from __future__ import annotations

import uuid

import pytest

from meterchat.app import create_app
from meterchat.appkeys import DB
from meterchat.chain.client import ClientSettings, TronClient
from meterchat.chain.devnet import DevnetNode, DevnetSettings
from meterchat.chain.gateway import TransferLog
from meterchat.chain_ctx import CHAIN_INFO, DEVNET
from meterchat.core.db import Database, now_ms
from meterchat.deposits import credits
from meterchat.deposits.watcher import DepositWatcher
from meterchat.events import outbox, rules
from tests.conftest import actor, chain_config, devnet_pay, eventually, fund_tokens

DEST = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"


# ---- the pure rules ---------------------------------------------------------------------

@pytest.mark.parametrize(("last", "active", "state"), [
    (None, False, None),  # never started: nothing to clear
    (None, True, "started"),
    ("started", True, None),  # still on: said once already
    ("started", False, "cleared"),
    ("cleared", False, None),
    ("cleared", True, "started"),
])
def test_a_threshold_event_fires_only_when_its_condition_crosses(last, active, state):
    assert rules.crossing(last, active) == state


def test_the_retry_wait_doubles_with_jitter_and_is_capped():
    assert rules.retry_wait_ms(1, 1000, 60_000, 0.0) == 500
    assert rules.retry_wait_ms(1, 1000, 60_000, 0.999) == 999
    assert rules.retry_wait_ms(3, 1000, 60_000, 1.0) == 4000
    assert rules.retry_wait_ms(30, 1000, 60_000, 1.0) == 60_000
    waits = [rules.retry_wait_ms(n, 1000, 10**9, 0.5) for n in range(1, 8)]
    assert waits == sorted(waits) and waits[-1] == 64_000 * 3 // 4


def test_a_signature_checks_body_secret_and_age():
    body = b'{"id":"evt_1"}'
    header = rules.signature_header(b"s3cret", 1_700_000_000, body)
    assert header.startswith("t=1700000000,v1=") and len(header.split("v1=")[1]) == 64
    assert rules.verify(b"s3cret", header, body, 1_700_000_100).ok
    assert not rules.verify(b"other", header, body, 1_700_000_100).ok
    assert not rules.verify(b"s3cret", header, body + b" ", 1_700_000_100).ok
    old = rules.verify(b"s3cret", header, body, 1_700_000_000 + 301)
    assert not old.ok and "replay" in old.reason
    assert not rules.verify(b"s3cret", "v1=abc", body, 1_700_000_000).ok
    assert not rules.verify(b"s3cret", "garbage", body, 1_700_000_000).ok


def test_the_watcher_lags_behind_in_blocks_or_after_failed_passes():
    assert not rules.watcher_lagging(99, 0, 100)
    assert rules.watcher_lagging(100, 0, 100)
    assert rules.watcher_lagging(None, rules.NODE_FAILURES_LAGGING, 100)
    assert not rules.watcher_lagging(10**6, 10, 0)  # off


def test_the_hot_wallet_is_low_below_either_floor():
    assert rules.hot_wallet_low(99, 10**9, 100, 0)
    assert not rules.hot_wallet_low(100, 0, 100, 0)
    assert rules.hot_wallet_low(10**9, 4, 0, 5)
    assert not rules.hot_wallet_low(0, 0, 0, 0)


def test_an_alert_mail_is_due_once_per_batch_period():
    assert rules.alert_due(None, 0, 300_000)
    assert not rules.alert_due(1000, 300_999, 300_000)
    assert rules.alert_due(1000, 301_000, 300_000)


# ---- the outbox in the database ---------------------------------------------------------

@pytest.fixture
async def db(tmp_path):
    d = Database(tmp_path / "meterchat.sqlite3")
    await d.open()
    yield d
    await d.close()


def _transfer(amount: int = 5_000_000) -> TransferLog:
    return TransferLog(txid=uuid.uuid4().hex * 2, log_index=0, contract="TContract",
                       from_address=DEST, to_address="TDeposit", amount=amount)


async def test_an_event_has_a_stable_id_and_the_row_orders_them(db):
    first = await db.tx(outbox.emit_tx, "report.opened", {"report_id": "1"}, 1000)
    second = await db.tx(outbox.emit_tx, "report.opened", {"report_id": "2"}, 1000)
    assert first.id.startswith("evt_") and first.id != second.id and first.row < second.row
    again = await db.read(outbox.by_id, first.id)
    assert again == first
    assert again.document() == {"id": first.id, "type": "report.opened",
                                "at": "1970-01-01T00:00:01.000Z",
                                "data": {"report_id": "1"}}
    with pytest.raises(ValueError):
        await db.tx(outbox.emit_tx, "made.up", {}, 1)


async def test_a_deposit_whose_transaction_rolls_back_leaves_no_event(db):
    def record_then_fail(conn):
        credits.record_transfer_tx(conn, _transfer(), 1, 1000, "watcher", 1000)
        assert [e.type for e in outbox.newest(conn)] == ["deposit.unmatched"]
        raise RuntimeError("the block's transaction failed")

    with pytest.raises(RuntimeError):
        await db.tx(record_then_fail)
    assert await db.read(outbox.newest) == []
    assert (await db.fetchone("SELECT COUNT(*) AS n FROM deposits"))["n"] == 0

    await db.tx(credits.record_transfer_tx, _transfer(), 1, 1000, "watcher", 1000)
    [unmatched] = await db.read(outbox.newest)
    assert unmatched.type == "deposit.unmatched"
    assert unmatched.data["amount_usdt"] == "5" and unmatched.data["source"] == "watcher"


async def test_threshold_events_fire_once_per_crossing_and_keep_the_last_state(db):
    seen = []
    for active in (False, True, True, True, False, False, True):
        e = await db.tx(outbox.threshold_tx, "hot_wallet.low", active, {"trx": "1"}, now_ms())
        seen.append(e.data["state"] if e else None)
    assert seen == [None, "started", None, None, "cleared", None, "started"]
    assert await db.read(outbox.threshold_state, "hot_wallet.low") == "started"
    assert [e.data["state"] for e in await db.read(outbox.newest)] == [
        "started", "cleared", "started"]
    with pytest.raises(ValueError):
        await db.tx(outbox.threshold_tx, "deposit.credited", True, {}, 1)


async def test_a_watcher_that_cannot_read_the_node_lags_once_and_clears_once(tmp_path, db):
    settings = DevnetSettings(tmp_path / "devnet.sqlite3", block_time_s=0.1, solidify_depth=2)
    node = DevnetNode(settings)
    await node.start()
    port = int(node.url.rsplit(":", 1)[1])
    gw = TronClient(ClientSettings(node.url, node.usdt_contract, 1.0))
    watcher = DepositWatcher(db, gw, node.usdt_contract, node.deposit_address, 0.01,
                             lag_alert_blocks=50)
    try:
        await watcher.run_once()
        await node.stop()
        for _ in range(rules.NODE_FAILURES_LAGGING + 3):
            watcher.backoff_until = 0.0
            await watcher.run_once()
        [started] = await db.read(outbox.newest)
        assert started.type == "watcher.lagging" and started.data["state"] == "started"
        assert started.data["failed_passes"] == rules.NODE_FAILURES_LAGGING
        node = DevnetNode(DevnetSettings(settings.path, port=port, block_time_s=0.1,
                                         solidify_depth=2))
        await node.start()
        for _ in range(3):
            watcher.backoff_until = 0.0
            await watcher.run_once()
        assert [e.data["state"] for e in await db.read(outbox.newest)] == ["cleared",
                                                                           "started"]
    finally:
        await gw.close()
        await node.stop()


# ---- the changes that write them, over the real API --------------------------------------

@pytest.fixture
async def app_client(aiohttp_client, tmp_path):
    cfg = chain_config(tmp_path, withdrawals={"sender_interval_s": 3600,
                                               "manual_review_above_usdt": 100})
    return await aiohttp_client(create_app(cfg))


async def test_a_credited_and_an_unmatched_deposit_each_write_their_event(app_client):
    buyer = await actor(app_client)
    resp = await buyer.post("/api/deposits/intents", json={"usdt": "10"})
    intent = (await resp.json())["intent"]
    node = app_client.app[DEVNET]
    paid = await devnet_pay(node.url, intent["address"], usdt=intent["amount_usdt"])
    stray = await devnet_pay(node.url, app_client.app[CHAIN_INFO].deposit_address, usdt="7")

    async def both():
        found = {e.data["txid"]: e for e in await app_client.app[DB].read(outbox.newest)
                 if e.type.startswith("deposit.")}
        return found if len(found) == 2 else None

    found = await eventually(both)
    assert found[paid].type == "deposit.credited"
    assert found[paid].data["user_id"] == buyer.id
    assert found[paid].data["amount_usdt"] == intent["amount_usdt"]
    assert found[stray].type == "deposit.unmatched" and "user_id" not in found[stray].data


async def test_a_withdrawal_for_review_and_a_report_write_their_events(app_client):
    seller = await actor(app_client, "seller")
    buyer = await actor(app_client)
    await fund_tokens(app_client.app, seller.id, "50000")
    resp = await seller.post("/api/withdrawals", json={"tokens": "20000", "address": DEST},
                             headers={"Idempotency-Key": uuid.uuid4().hex})
    w = (await resp.json())["withdrawal"]
    assert w["status"] == "review"
    resp = await seller.post("/api/withdrawals", json={"tokens": "500", "address": DEST},
                             headers={"Idempotency-Key": uuid.uuid4().hex})
    assert (await resp.json())["withdrawal"]["status"] == "queued"  # no event
    assert (await seller.post(f"/api/users/{buyer.id}/report", {"reason": "spam"})).status \
        in (200, 201, 204)
    report, review = await app_client.app[DB].read(outbox.newest)
    assert review.type == "withdrawal.review" and review.data["withdrawal_id"] == w["id"]
    assert review.data["reason"] == "above_review_threshold"
    assert review.data["amount_usdt"] == "200"
    assert report.type == "report.opened" and report.data["reported_id"] == buyer.id
    assert report.data["reason"] == "spam"


async def test_the_hot_wallet_running_low_fires_once_and_clears_once(aiohttp_client, tmp_path):
    from meterchat.withdrawals.sender import SENDER

    # The devnet's hot wallet starts with 10,000 TRX: below 10,050.
    cfg = chain_config(tmp_path, withdrawals={"sender_interval_s": 0.05},
                       events={"hot_wallet_low_trx": 10_050, "hot_wallet_check_s": 0.05})
    client = await aiohttp_client(create_app(cfg))
    db, sender = client.app[DB], client.app[SENDER]

    async def low_events():
        return [e for e in await db.read(outbox.newest) if e.type == "hot_wallet.low"]

    async def readings_after(n: int) -> None:
        for _ in range(n):
            at = sender._wallet_read_at
            await eventually(lambda at=at: _later(sender, at))

    [started] = await eventually(low_events)
    assert started.data["state"] == "started" and started.data["min_trx"] == "10050"
    assert started.data["address"] == sender.hot_wallet_address
    await readings_after(3)
    assert len(await low_events()) == 1
    node = client.app[DEVNET]
    await node.wait_solidified(await devnet_pay(node.url, sender.hot_wallet_address,
                                                trx="100"))

    async def cleared():
        found = await low_events()
        return found if found[0].data["state"] == "cleared" else None

    found = await eventually(cleared)
    await readings_after(3)
    assert [e.data["state"] for e in await low_events()] == ["cleared", "started"]
    assert found[0].data["trx"].startswith("10100")


async def _later(sender, at: float) -> bool:
    return sender._wallet_read_at > at
