"""The issue's Bar, tried as a new operator would: a webhook receiver that answers 500 to each
event's first delivery; a credited and an unmatched deposit (devnet, the real tronpy client)
both arrive, signed with the configured secret, each retried with the same id until a 2xx.
And the real server killed with SIGKILL mid-delivery delivers after its restart (at least
once, never lost)."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from meterchat.app import create_app
from meterchat.chain_ctx import CHAIN_INFO, DEVNET
from meterchat.events import rules
from tests.conftest import actor, admin_actor, chain_config, devnet_pay, eventually
from tests.events_helpers import FAST_EVENTS, SECRET, SECRET_ENV, Receiver, webhook

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import crash  # noqa: E402


@pytest.fixture(autouse=True)
def _secret(monkeypatch):
    monkeypatch.setenv(SECRET_ENV, SECRET)


def _first_time_500(got, event_id: str) -> int:
    return 200 if any(r.event_id == event_id for r in got) else 500


async def test_bar_credited_and_unmatched_deposits_arrive_signed_after_a_500(aiohttp_client,
                                                                            tmp_path):
    receiver = await Receiver(answer=_first_time_500).start()
    try:
        cfg = chain_config(tmp_path, events=FAST_EVENTS).replace(webhooks=[
            webhook(receiver.url, ["deposit.credited", "deposit.unmatched"])])
        client = await aiohttp_client(create_app(cfg))
        buyer = await actor(client)
        admin = await admin_actor(client)
        resp = await buyer.post("/api/deposits/intents", json={"usdt": "10"})
        intent = (await resp.json())["intent"]
        node = client.app[DEVNET]
        paid = await devnet_pay(node.url, intent["address"], usdt=intent["amount_usdt"])
        stray = await devnet_pay(node.url, client.app[CHAIN_INFO].deposit_address, usdt="7")

        async def both_delivered():
            return len(receiver.delivered()) >= 2

        await eventually(both_delivered, timeout_s=30)
        by_txid = {r.event["data"]["txid"]: r for r in receiver.delivered()}
        credited, unmatched = by_txid[paid], by_txid[stray]
        assert credited.event_type == "deposit.credited"
        assert credited.event["data"]["user_id"] == buyer.id
        assert credited.event["data"]["amount_usdt"] == intent["amount_usdt"]
        assert unmatched.event_type == "deposit.unmatched"
        assert unmatched.event["data"]["amount_usdt"] == "7"
        for ok in (credited, unmatched):
            tries = [r for r in receiver.got if r.event_id == ok.event_id]
            assert [r.status for r in tries] == [500, 200]
            assert {r.event["id"] for r in tries} == {ok.event_id}
            assert tries[0].body == tries[1].body  # the same event, only the signature's t
            for r in tries:
                assert rules.verify(SECRET.encode(), r.signature, r.body, int(time.time())).ok
        listed = await (await admin.get("/api/admin/events")).json()
        shown = {e["id"]: e for e in listed["events"]}
        for ok in (credited, unmatched):
            [d] = shown[ok.event_id]["deliveries"]
            assert d["status"] == "delivered" and d["attempts"] == 2
            assert [a["http_status"] for a in shown[ok.event_id]["attempts"]] == [200, 500]
    finally:
        await receiver.stop()


def _events(db: Path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(db)
    try:
        return [(r[0], r[1]) for r in conn.execute("SELECT event_id, type FROM events"
                                                    " ORDER BY id")]
    finally:
        conn.close()


async def test_server_killed_mid_delivery_delivers_after_restart(tmp_path):
    hold = asyncio.Event()
    receiver = await Receiver(hold=hold).start()
    workdir = tmp_path / "server"
    cfg = crash.write_config(workdir)
    cfg.write_text(cfg.read_text()
                   + "[events]\ndeliver_interval_s = 0.05\nretry_first_s = 0.05\n"
                     "retry_max_s = 0.2\nwebhook_timeout_s = 60\n"
                     f'[[webhooks]]\nurl = "{receiver.url}"\nsecret_env = "{SECRET_ENV}"\n'
                     'events = ["deposit.unmatched"]\n')
    server = crash.Server(workdir, cfg)
    await server.start()
    try:
        txids = [await devnet_pay(server.devnet_url, server.deposit_address, usdt=f"{n}.5")
                 for n in (3, 4, 5)]

        async def three_events_and_one_in_flight():
            found = _events(workdir / "meterchat.sqlite3")
            return len(found) >= 3 and receiver.started

        await eventually(three_events_and_one_in_flight, timeout_s=30)
        await server.kill()  # SIGKILL while the first POST waits for its answer
        events = _events(workdir / "meterchat.sqlite3")
        assert [t for _, t in events] == ["deposit.unmatched"] * 3
        assert receiver.delivered() == []

        receiver.hold = None
        hold.set()  # the cut-off request is answered now, to nobody
        await server.start()

        async def all_delivered():
            return set(receiver.delivered_ids()) >= {i for i, _ in events}

        await eventually(all_delivered, timeout_s=30)
        firsts = list(dict.fromkeys(receiver.delivered_ids()))
        assert firsts == [i for i, _ in events]  # in order, each at least once
        got = {r.event["data"]["txid"] for r in receiver.delivered()}
        assert got == set(txids)
        assert all(rules.verify(SECRET.encode(), r.signature, r.body, int(time.time())).ok
                   for r in receiver.delivered())
    finally:
        await server.stop()
        await receiver.stop()
