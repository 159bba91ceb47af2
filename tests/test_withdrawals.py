"""Withdrawal requests over real HTTP with real SQLite (the sender asleep, so nothing goes on
chain here; tests/test_withdrawal_sender.py covers the chain): every refusal with its own
code and nothing moved, the Idempotency-Key, concurrent requests against one balance,
review past the threshold and the daily limit, the operator's approve and reject (over
HTTP and the CLI) and the ledger after each."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from meterchat.app import create_app
from meterchat.appkeys import DB
from meterchat.chain_ctx import CHAIN_INFO
from meterchat.money import ledger
from tests.conftest import (
    actor,
    admin_actor,
    assert_error,
    chain_config,
    fund_tokens,
)

DEST = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
ROOT = Path(__file__).resolve().parent.parent
ASLEEP = {"sender_interval_s": 3600}


@pytest.fixture
async def app_client(aiohttp_client, tmp_path):
    return await aiohttp_client(create_app(chain_config(tmp_path, withdrawals=ASLEEP)))


async def withdraw(user, tokens: str, address: str = DEST, key: str | None = None):
    return await user.post("/api/withdrawals", json={"tokens": tokens, "address": address},
                           headers={"Idempotency-Key": key or uuid.uuid4().hex})


async def balance(user) -> dict:
    return (await user.me())["balance"]


async def audit_ok(client) -> dict:
    report = (await client.app[DB].read(ledger.audit)).as_dict()
    assert report["ok"], report
    return report


async def test_request_takes_the_tokens_into_clearing_and_is_listed(app_client):
    seller = await actor(app_client, "seller")
    await fund_tokens(app_client.app, seller.id, "750")
    resp = await withdraw(seller, "400")
    body = await resp.json()
    assert resp.status == 201, body
    w = body["withdrawal"]
    assert w["status"] == "queued"
    assert (w["tokens"], w["fee_usdt"], w["net_usdt"], w["address"]) == \
        ("400", "1.5", "2.5", DEST)
    assert w["txid"] is None and isinstance(w["id"], str)
    assert await balance(seller) == {"available": "350", "held": "0", "pending": "0"}
    listed = (await (await seller.get("/api/withdrawals")).json())["withdrawals"]
    assert [x["id"] for x in listed] == [w["id"]]
    report = await audit_ok(app_client)
    assert report["clearing_musdt"] == 4_000_000
    entries = (await (await seller.get("/api/ledger")).json())["entries"]
    assert entries[0]["kind"] == "withdrawal" and entries[0]["amount"] == "-400"


async def test_each_refusal_has_its_own_code_and_moves_nothing(app_client):
    seller = await actor(app_client, "seller")
    await fund_tokens(app_client.app, seller.id, "750")
    info = app_client.app[CHAIN_INFO]
    await assert_error(await withdraw(seller, "400", "TNotAnAddress"), 422, "invalid_address")
    await assert_error(await withdraw(seller, "400", DEST[:-1] + "u"), 422, "invalid_address")
    for own in (info.deposit_address, info.hot_wallet_address, info.usdt_contract):
        await assert_error(await withdraw(seller, "400", own), 422, "platform_address")
    await assert_error(await withdraw(seller, "299.9999"), 422, "below_minimum")
    await assert_error(await withdraw(seller, "750.0001"), 402, "insufficient_funds")
    await assert_error(await withdraw(seller, "12.34567"), 422, "invalid_amount")
    await assert_error(await withdraw(seller, "abc"), 422, "invalid_amount")
    resp = await seller.post("/api/withdrawals", json={"tokens": "400", "address": DEST})
    await assert_error(resp, 400, "idempotency_key_required")
    resp = await seller.post("/api/withdrawals", data=b"{not json",
                             headers={"Idempotency-Key": "k1"})
    await assert_error(resp, 400, "malformed_json")
    resp = await seller.post("/api/withdrawals", json={"address": DEST},
                             headers={"Idempotency-Key": "k2"})
    await assert_error(resp, 422, "missing_field")
    buyer = await actor(app_client, "buyer")
    await fund_tokens(app_client.app, buyer.id, "750")
    await assert_error(await withdraw(buyer, "400"), 403, "withdrawals_not_allowed")
    app_client.session.cookie_jar.clear()  # anonymous: no session cookie from the logins
    await assert_error(await app_client.post("/api/withdrawals", json={}), 401)
    assert await balance(seller) == {"available": "750", "held": "0", "pending": "0"}
    assert (await (await seller.get("/api/withdrawals")).json())["withdrawals"] == []
    report = await audit_ok(app_client)
    assert report["clearing_musdt"] == 0


async def test_buyers_withdraw_when_the_operator_allows_it(aiohttp_client, tmp_path):
    cfg = chain_config(tmp_path, withdrawals={**ASLEEP, "buyer_withdrawals": True})
    client = await aiohttp_client(create_app(cfg))
    buyer = await actor(client, "buyer")
    await fund_tokens(client.app, buyer.id, "300")
    resp = await withdraw(buyer, "300")
    assert resp.status == 201, await resp.text()


async def test_same_idempotency_key_returns_the_same_withdrawal_and_moves_nothing(app_client):
    seller = await actor(app_client, "seller")
    await fund_tokens(app_client.app, seller.id, "750")
    first = await withdraw(seller, "400", key="retry-1")
    again = await withdraw(seller, "400", key="retry-1")
    assert first.status == again.status == 201
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert "Idempotent-Replayed" not in first.headers
    a, b = (await first.json())["withdrawal"], (await again.json())["withdrawal"]
    assert a == b
    assert await balance(seller) == {"available": "350", "held": "0", "pending": "0"}
    # The same key for something else is a mistake, not a new withdrawal.
    await assert_error(await withdraw(seller, "300", key="retry-1"), 409,
                       "idempotency_key_reused")
    # Keys are per user: another seller's "retry-1" is their own.
    other = await actor(app_client, "seller")
    await fund_tokens(app_client.app, other.id, "400")
    resp = await withdraw(other, "400", key="retry-1")
    assert resp.status == 201 and (await resp.json())["withdrawal"]["id"] != a["id"]
    assert len((await (await seller.get("/api/withdrawals")).json())["withdrawals"]) == 1
    await audit_ok(app_client)


async def test_twenty_concurrent_requests_never_overdraw(app_client):
    seller = await actor(app_client, "seller")
    await fund_tokens(app_client.app, seller.id, "1000")
    answers = await asyncio.gather(*(withdraw(seller, "300") for _ in range(20)))
    statuses = sorted(r.status for r in answers)
    assert statuses == [201] * 3 + [402] * 17
    assert await balance(seller) == {"available": "100", "held": "0", "pending": "0"}
    # The same key sent 20 times at once makes one withdrawal.
    await fund_tokens(app_client.app, seller.id, "300")
    answers = await asyncio.gather(*(withdraw(seller, "400", key="same") for _ in range(20)))
    assert {r.status for r in answers} == {201}
    assert len({(await r.json())["withdrawal"]["id"] for r in answers}) == 1
    assert await balance(seller) == {"available": "0", "held": "0", "pending": "0"}
    report = await audit_ok(app_client)
    assert report["clearing_musdt"] == 13_000_000


async def test_large_and_past_daily_limit_wait_for_review_then_approve_or_reject(app_client):
    seller = await actor(app_client, "seller")
    admin = await admin_actor(app_client)
    await fund_tokens(app_client.app, seller.id, "200000")
    big = (await (await withdraw(seller, "20000.0001")).json())["withdrawal"]
    assert big["status"] == "review" and big["review_reason"] == "above_review_threshold"
    assert "operator" in big["reason"]
    ok = [(await (await withdraw(seller, t)).json())["withdrawal"]
          for t in ("20000", "20000", "20000", "19999.9999")]
    # Under review still counts: 20,000.0001 + 79,999.9999 is exactly the daily limit.
    assert [w["status"] for w in ok] == ["queued"] * 4
    past = (await (await withdraw(seller, "300")).json())["withdrawal"]
    assert past["status"] == "review" and past["review_reason"] == "daily_limit"

    listed = (await (await admin.get("/api/admin/withdrawals?status=review")).json())
    assert [w["id"] for w in listed["withdrawals"]] == [big["id"], past["id"]]
    assert listed["withdrawals"][0]["user_id"] == seller.id
    await assert_error(await seller.get("/api/admin/withdrawals"), 403)
    await assert_error(await admin.get("/api/admin/withdrawals?status=nope"), 422,
                       "invalid_status")

    resp = await admin.post(f"/api/admin/withdrawals/{big['id']}/approve")
    assert resp.status == 200
    assert (await resp.json())["withdrawal"]["status"] == "queued"
    before = await balance(seller)
    resp = await admin.post(f"/api/admin/withdrawals/{past['id']}/reject",
                            json={"reason": "limit reached today"})
    rejected = (await resp.json())["withdrawal"]
    assert resp.status == 200 and rejected["status"] == "rejected"
    assert rejected["reason"] == "limit reached today"
    after = await balance(seller)
    assert float(after["available"]) == float(before["available"]) + 300
    # Replayed reject returns the same answer and returns nothing twice.
    resp = await admin.post(f"/api/admin/withdrawals/{past['id']}/reject")
    assert resp.status == 200 and await balance(seller) == after
    await assert_error(await admin.post(f"/api/admin/withdrawals/{past['id']}/approve"), 409,
                       "withdrawal_not_approvable")
    await assert_error(await admin.post("/api/admin/withdrawals/999999/approve"), 404)
    await assert_error(await admin.post("/api/admin/withdrawals/abc/reject"), 404)
    await assert_error(await seller.post(f"/api/admin/withdrawals/{big['id']}/reject"), 403)
    entries = (await (await seller.get("/api/ledger")).json())["entries"]
    assert entries[0]["kind"] == "withdrawal_return" and entries[0]["amount"] == "300"
    await audit_ok(app_client)


def cli(config_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "meterchat.cli", *args, "--config",
                           str(config_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


async def test_cli_lists_approves_and_rejects(app_client, tmp_path):
    seller = await actor(app_client, "seller")
    await fund_tokens(app_client.app, seller.id, "50000")
    a = (await (await withdraw(seller, "25000")).json())["withdrawal"]
    b = (await (await withdraw(seller, "25000")).json())["withdrawal"]
    assert a["status"] == b["status"] == "review"
    config_path = tmp_path / "meterchat.toml"
    config_path.write_text(f'[database]\npath = "{tmp_path / "meterchat.sqlite3"}"\n')

    out = cli(config_path, "withdrawals", "list")
    assert out.returncode == 0, out.stderr
    assert [w["id"] for w in json.loads(out.stdout)["withdrawals"]] == [a["id"], b["id"]]
    out = cli(config_path, "withdrawals", "approve", a["id"])
    assert out.returncode == 0 and json.loads(out.stdout)["withdrawal"]["status"] == "queued"
    out = cli(config_path, "withdrawals", "reject", b["id"], "--reason", "not today")
    assert out.returncode == 0 and json.loads(out.stdout)["withdrawal"]["status"] == "rejected"
    out = cli(config_path, "withdrawals", "approve", b["id"])
    assert out.returncode == 1 and "cannot be approved" in out.stderr
    out = cli(config_path, "withdrawals", "list", "--status", "all")
    assert [w["status"] for w in json.loads(out.stdout)["withdrawals"]] == \
        ["rejected", "queued"]
    assert await balance(seller) == {"available": "25000", "held": "0", "pending": "0"}
    await audit_ok(app_client)
