"""Security: one user can never read or change another's calls, deposits, withdrawals or
profile (every described operation with a path id is classified and tried with the wrong
user); every /api/admin/ operation refuses non-admins and changes nothing; and secrets (the
hot wallet key, passwords, session tokens) never reach the log of a real server run, and the
key and passwords never reach any response."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import uuid
from pathlib import Path

import aiohttp
import pytest

from meterchat.app import create_app
from meterchat.web.openapi import OPERATIONS
from tests.conftest import (
    actor,
    admin_actor,
    audit_ok,
    chain_config,
    fund,
    seller_online,
)

ROOT = Path(__file__).resolve().parent.parent
DEST = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"

# Every operation with an id in its path, by whose the thing behind the id is.
CALL_PARTIES_ONLY = {
    ("get", "/api/calls/{id}"), ("post", "/api/calls/{id}/accept"),
    ("post", "/api/calls/{id}/decline"), ("post", "/api/calls/{id}/end"),
    ("post", "/api/calls/{id}/rating"), ("get", "/api/calls/{id}/tips"),
    ("get", "/api/calls/{id}/messages"), ("post", "/api/calls/{id}/messages/{mid}/report"),
    ("get", "/api/calls/{id}/receipt"),
}
# Only the call's buyer may dispute it: another buyer learns nothing (404), a seller or an
# operator is refused by role.
BUYER_OF_THE_CALL_ONLY = {("post", "/api/calls/{id}/dispute"), ("post", "/api/calls/{id}/tip")}
# A seller's public card, and the supporters who opted in to be shown (display names only).
PUBLIC = {("get", "/api/sellers/{id}"), ("get", "/api/sellers/{id}/supporters")}
# The id names the other user; what changes is the caller's own block list or reports.
ON_THE_CALLERS_OWN_LISTS = {
    ("post", "/api/users/{id}/block"), ("delete", "/api/users/{id}/block"),
    ("post", "/api/users/{id}/report"),
    ("put", "/api/favourites/{id}"), ("delete", "/api/favourites/{id}"),
}


# A seller photo's file: public once approved, before that its seller's and the operator's
# only (tests/test_sellers_photos.py).
PHOTO_FILES = {("get", "/api/photos/{name}")}
# The id names one of the caller's own things; anybody else's is 404 (tests below).
CALLERS_OWN = {("post", "/api/withdrawals/{id}/cancel"), ("delete", "/api/me/sessions/{id}")}


def _admin_ops() -> list[tuple[str, str]]:
    return sorted(op for op in OPERATIONS if op[1].startswith("/api/admin/"))


def test_every_operation_with_a_path_id_is_classified():
    with_id = {op for op in OPERATIONS if "{" in op[1]}
    admin = {op for op in with_id if op[1].startswith("/api/admin/")}
    unclassified = (with_id - admin - CALL_PARTIES_ONLY - BUYER_OF_THE_CALL_ONLY - PUBLIC
                    - ON_THE_CALLERS_OWN_LISTS - CALLERS_OWN - PHOTO_FILES)
    assert unclassified == set(), "say whose the id is, and add it to a test below"
    assert len(_admin_ops()) >= 5


@pytest.fixture
async def app_client(aiohttp_client, tmp_path):
    cfg = chain_config(tmp_path, withdrawals={"sender_interval_s": 3600,
                                              "manual_review_above_usdt": 3},
                       billing={"ring_timeout_s": 60})
    return await aiohttp_client(create_app(cfg))


async def _state(who, call_id: str) -> dict:
    resp = await who.get(f"/api/calls/{call_id}")
    assert resp.status == 200
    return (await resp.json())["call"]


async def test_strangers_cannot_read_or_change_a_call(app_client):
    seller = await seller_online(app_client, 100)
    buyer = await actor(app_client)
    await fund(app_client, buyer.id, 1000)
    call_id = (await (await buyer.post("/api/calls", {"seller_id": seller.id, "rate": 100}))
               .json())["call"]["id"]
    before = await _state(buyer, call_id)
    other_buyer, other_seller = await actor(app_client), await seller_online(app_client, 100)
    admin = await admin_actor(app_client)
    bodies = {"rating": {"stars": 1, "comment": "x"}, "dispute": {"reason": "x"}}
    for who in (other_buyer, other_seller, admin):
        for method, path in sorted(CALL_PARTIES_ONLY):
            if who is admin and method == "get":
                continue  # an operator reads any call (disputes); changes none
            url = path.replace("{id}", call_id).replace("{mid}", "1")
            body = bodies.get(path.rsplit("/", 1)[-1])
            resp = await (who.get(url) if method == "get" else who.post(url, body))
            data = await resp.json()
            # 404, never 403: a stranger does not even learn that the call exists.
            assert resp.status == 404, (who.user["role"], method, url, data)
            assert data["error"]["code"] == "call_not_found"
    for _method, path in sorted(BUYER_OF_THE_CALL_ONLY):
        url = path.replace("{id}", call_id)
        for who, status, code in ((other_buyer, 404, "call_not_found"),
                                  (other_seller, 403, "wrong_role"),
                                  (seller, 403, "wrong_role"), (admin, 403, "wrong_role")):
            resp = await who.post(url, {"reason": "not mine", "tokens": 1},
                                  headers={"Idempotency-Key": "not-mine"})
            data = await resp.json()
            assert (resp.status, data["error"]["code"]) == (status, code), (who.user, data)
    assert await _state(buyer, call_id) == before  # still ringing, nothing charged
    assert (await admin.get(f"/api/calls/{call_id}")).status == 200
    assert (await buyer.me())["balance"]["held"] == "100"
    # The parties' own lists hold it; nobody else's does.
    for who, sees in ((buyer, True), (seller, True), (other_buyer, False),
                      (other_seller, False)):
        listed = [c["id"] for c in (await (await who.get("/api/calls")).json())["calls"]]
        assert (call_id in listed) is sees
    await audit_ok(app_client)


async def test_public_seller_card_shows_nothing_private(app_client):
    seller = await seller_online(app_client, 100)
    stranger = await actor(app_client)
    for client_get in (stranger.get, app_client.get):
        resp = await client_get(f"/api/sellers/{seller.id}")
        assert resp.status == 200
        text = await resp.text()
        assert seller.user["email"] not in text
        card = json.loads(text)["seller"]
        assert not {"email", "balance", "available", "token"} & set(card)


async def test_block_and_report_change_only_the_callers_own_lists(app_client):
    seller = await seller_online(app_client, 100)
    buyer, other = await actor(app_client), await actor(app_client)
    await fund(app_client, buyer.id, 1000)
    await fund(app_client, other.id, 1000)
    # `other` blocks and reports the seller: `buyer` may still call them.
    assert (await other.post(f"/api/users/{seller.id}/block", {"reason": "x"})).status == 204
    assert (await other.post(f"/api/users/{seller.id}/report", {"reason": "x"})).status == 204
    resp = await buyer.post("/api/calls", {"seller_id": seller.id, "rate": 100})
    assert resp.status == 201
    call_id = (await resp.json())["call"]["id"]
    await buyer.post(f"/api/calls/{call_id}/end")
    # `buyer` unblocking the seller (whom they never blocked) undoes nothing of `other`'s.
    resp = await app_client.delete(f"/api/users/{seller.id}/block", headers=buyer.headers)
    assert resp.status == 204
    resp = await other.post("/api/calls", {"seller_id": seller.id, "rate": 100})
    assert resp.status == 403 and (await resp.json())["error"]["code"] == "blocked"


async def test_deposits_withdrawals_and_ledger_are_each_users_own(app_client):
    a, b = await actor(app_client), await actor(app_client)
    sa, sb = await actor(app_client, "seller"), await actor(app_client, "seller")
    resp = await a.post("/api/deposits/intents", {"usdt": "10"})
    assert resp.status == 201
    intent = (await resp.json())["intent"]
    await fund(app_client, sa.id, 800)
    resp = await sa.post("/api/withdrawals", {"tokens": "400", "address": DEST},
                         headers={"Idempotency-Key": uuid.uuid4().hex})
    assert resp.status == 201
    withdrawal = (await resp.json())["withdrawal"]
    assert withdrawal["status"] == "review"
    for who, mine in ((a, True), (b, False), (sa, False), (sb, False)):
        text = await (await who.get("/api/deposits")).text()
        assert (intent["amount_usdt"] in text) is mine, (who.user["role"], text)
    for who, mine in ((sa, True), (sb, False), (a, False)):
        found = [w["id"] for w in (await (await who.get("/api/withdrawals")).json())
                 ["withdrawals"]]
        assert (withdrawal["id"] in found) is mine
    for who, mine in ((sa, True), (sb, False), (a, False), (b, False)):
        entries = (await (await who.get("/api/ledger")).json())["entries"]
        assert bool(entries) is mine, entries
        me = (await who.me())["user"]
        assert me["id"] == who.id and me["email"] == who.user["email"]
    # Nobody else cancels the withdrawal, nor revokes another user's session (CALLERS_OWN).
    for who in (sb, a):
        resp = await who.post(f"/api/withdrawals/{withdrawal['id']}/cancel")
        assert resp.status == 404, await resp.text()
    [session] = (await (await sa.get("/api/me/sessions")).json())["sessions"]
    for who in (sb, a):
        resp = await who.client.delete(f"/api/me/sessions/{session['id']}", headers=who.headers)
        assert resp.status == 404
    assert (await sa.get("/api/withdrawals")).status == 200  # still logged in


async def test_admin_operations_refuse_everyone_else_and_change_nothing(app_client):
    seller = await actor(app_client, "seller")
    buyer = await actor(app_client)
    await fund(app_client, seller.id, 800)
    resp = await seller.post("/api/withdrawals", {"tokens": "400", "address": DEST},
                             headers={"Idempotency-Key": "one"})
    wid = (await resp.json())["withdrawal"]["id"]
    before = (await seller.me())["balance"]
    ids = {"id": wid, "txid": "ab" * 32}
    for method, path in _admin_ops():
        url = re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], path)
        body = {"user_id": buyer.id, "reason": "x", "refund_tokens": "1"}
        for who in (buyer, seller, None):
            headers = who.headers if who else {}
            # A session of its own: no cookie from the test client's earlier logins.
            async with aiohttp.ClientSession() as http, http.request(
                    method.upper(), str(app_client.make_url(url)), json=body,
                    headers=headers) as resp:
                data = await resp.json()
            expected = 401 if who is None else 403
            assert resp.status == expected, (method, url, data)
            assert set(data) == {"error"} and data["error"]["code"]
    w = (await (await seller.get("/api/withdrawals")).json())["withdrawals"][0]
    assert w["status"] == "review"
    assert (await seller.me())["balance"] == before
    admin = await admin_actor(app_client)
    for method, path in _admin_ops():
        if method == "get":
            resp = await admin.get(re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], path))
            if "{" in path and resp.status == 404:
                # The withdrawal's id names no call or dispute: not found, but not refused.
                assert (await resp.json())["error"]["code"].endswith("not_found"), path
                continue
            assert resp.status == 200, path
    await audit_ok(app_client)


async def test_seller_profile_is_changed_only_by_its_seller(app_client):
    seller = await seller_online(app_client, 100)
    buyer = await actor(app_client)
    resp = await buyer.put("/api/seller/profile", {"rate": 1})
    assert resp.status == 403
    resp = await buyer.put("/api/seller/status", {"online": False})
    assert resp.status == 403
    other = await seller_online(app_client, 500)
    card = (await (await buyer.get(f"/api/sellers/{seller.id}")).json())["seller"]
    assert card["rate"] == 100 and card["online"] is True
    assert (await (await buyer.get(f"/api/sellers/{other.id}")).json())["seller"]["rate"] == 500


# ---- secrets in logs and responses, on a real server process ---------------------------

PASSWORDS = {"buyer": "buyer secret passphrase 1", "seller": "seller secret passphrase 2",
             "admin": "admin secret passphrase 3"}


class Recorder:
    """Every response body and header seen by the test, to grep for secrets."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http = http
        self.base = base
        self.seen: list[str] = []

    async def __call__(self, method: str, path: str, body=None, token: str | None = None,
                       headers: dict | None = None, base: str | None = None):
        h = {**(headers or {})}
        if token:
            h["Authorization"] = f"Bearer {token}"
        async with self.http.request(method, (base or self.base) + path, json=body,
                                     headers=h) as resp:
            text = await resp.text()
            self.seen.append(text)
            self.seen.append(json.dumps(dict(resp.headers)))
            is_json = resp.content_type == "application/json"
            return resp.status, (json.loads(text) if text and is_json else {})


async def test_hot_wallet_key_and_passwords_never_leak(tmp_path):
    from tronpy.keys import PrivateKey

    key = PrivateKey.random()
    key_hex = key.hex()
    hot_address = key.public_key.to_base58check_address()
    cfg = tmp_path / "m.toml"
    cfg.write_text(
        '[server]\nport = 0\nlog_level = "debug"\npassword_hash_time_cost = 1\n'
        "password_hash_memory_kib = 1024\n"
        '[chain]\nhot_wallet_key_env = "MC_TEST_HOT_KEY"\n'
        '[database]\npath = "db.sqlite3"\n'
        '[devnet]\nport = 0\npath = "devnet.sqlite3"\nblock_time_s = 0.1\nsolidify_depth = 2\n'
        "[deposits]\nwatcher_interval_s = 0.1\n[withdrawals]\nsender_interval_s = 0.1\n"
        "new_address_hold_hours = 0\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MC_TEST_HOT_KEY": key_hex}
    create = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "meterchat.cli", "user", "create", "--config", str(cfg),
        "--email", "op@example.com", "--role", "admin", "--password-stdin",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL, env=env, cwd=ROOT)
    await create.communicate((PASSWORDS["admin"] + "\n").encode())
    assert create.returncode == 0
    log_path, out_path = tmp_path / "server.log", tmp_path / "server.out"
    with log_path.open("w") as log, out_path.open("w") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "meterchat.cli", "serve", "--config", str(cfg), stdout=out,
            stderr=log, env=env, cwd=ROOT)
    tokens: list[str] = []
    try:
        for _ in range(300):
            text = out_path.read_text()
            if "devnet node on" in text:
                break
            assert proc.returncode is None, log_path.read_text()
            await asyncio.sleep(0.1)
        base = text.split("serving on ")[1].split()[0]
        node = text.split("devnet node on ")[1].split()[0]
        deposit_address = text.split("deposit address ")[1].split(")")[0]
        async with aiohttp.ClientSession() as http:
            api = Recorder(http, base)
            users = {}
            for role in ("buyer", "seller"):
                status, _ = await api("POST", "/api/auth/register", {
                    "email": f"{role}@example.com", "password": PASSWORDS[role], "role": role,
                    "display_name": role, "adult": True, "terms": True})
                assert status == 201
            # The seller verifies the email with the link in the outbox (no SMTP server).
            listed = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "meterchat.cli", "mail", "list", "--config", str(cfg),
                stdout=asyncio.subprocess.PIPE, env=env, cwd=ROOT)
            mails = [json.loads(line) for line in (await listed.communicate())[0].splitlines()]
            [verify] = [m for m in mails if m["to"] == "seller@example.com"]
            link = verify["text"].split("#/verify?token=")[1].split()[0]
            status, _ = await api("POST", "/api/auth/email/verify", {"token": link})
            assert status == 204
            # A wrong password too: it must not be logged either.
            status, _ = await api("POST", "/api/auth/login", {
                "email": "buyer@example.com", "password": PASSWORDS["buyer"] + "x"})
            assert status == 401
            for role, email in (("buyer", "buyer@example.com"), ("seller", "seller@example.com"),
                                ("admin", "op@example.com")):
                status, data = await api("POST", "/api/auth/login",
                                         {"email": email, "password": PASSWORDS[role]})
                assert status == 200
                users[role] = data["token"]
                tokens.append(data["token"])
            # The hot wallet gets USDT and TRX; the seller tops up and withdraws, so the
            # key signs a real transfer.
            for body in ({"to": hot_address, "usdt": "100"}, {"to": hot_address, "trx": "500"}):
                status, _ = await api("POST", "/devnet/transfer", body, base=node)
                assert status == 200
            status, data = await api("POST", "/api/deposits/intents", {"usdt": "10"},
                                     users["seller"])
            assert status == 201
            status, data = await api("POST", "/devnet/transfer", {
                "to": deposit_address, "usdt": data["intent"]["amount_usdt"]}, base=node)
            txid = data["txid"]
            for _ in range(100):
                status, data = await api("POST", "/api/deposits/claim", {"txid": txid},
                                         users["seller"])
                if status == 200 or data.get("error", {}).get("code") == "already_credited":
                    break
                await asyncio.sleep(0.1)
            status, data = await api("POST", "/api/withdrawals",
                                     {"tokens": "400", "address": DEST}, users["seller"],
                                     headers={"Idempotency-Key": "k1"})
            assert status == 201, data
            for _ in range(200):
                status, data = await api("GET", "/api/withdrawals", token=users["seller"])
                if data["withdrawals"][0]["status"] == "confirmed":
                    break
                await asyncio.sleep(0.1)
            assert data["withdrawals"][0]["status"] == "confirmed", data
            # The operator's views, the socket with its token in the query string.
            for path in ("/api/admin/withdrawals", "/api/admin/deposits", "/api/admin/audit",
                         "/api/health", "/metrics", "/api/client-config", "/api/me"):
                await api("GET", path, token=users["admin"])
            ws = await http.ws_connect(base.replace("http", "ws", 1) + "/ws",
                                       params={"token": users["buyer"]})
            await ws.send_str('{"type": "ping"}')
            await ws.receive()
            await ws.close()
            await api("POST", "/api/auth/logout", token=users["buyer"])
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)
    logged = log_path.read_text() + out_path.read_text()
    assert "withdrawal_confirmed" in logged or "confirmed" in logged
    secrets = {"hot wallet key": key_hex, **{f"{r} password": p for r, p in PASSWORDS.items()}}
    for name, secret in secrets.items():
        assert secret.lower() not in logged.lower(), f"the {name} is in the server's log"
        for text in api.seen:
            assert secret not in text, f"the {name} is in a response"
    for token in tokens:
        assert token not in logged, "a session token is in the server's log"


# ---- numbers at the HTTP edge ----------------------------------------------------------

# Not an id: floats (even whole ones), bools, numbers SQLite cannot hold, other scripts'
# digits, signs, spaces, exponents, containers.
BAD_BODY_IDS = [1e20, 1.9, 1.0, True, False, 2**63, 10**18, -1, "1e20", "1.9", "+1", " 1",
                "1 ", "-1", "1_0", "\u0661", "100000000000000000000", "", [1], {"id": 1}]
BAD_QUERY_INTS = ["1e20", "100000000000000000000", "9223372036854775808", "1.5", "-1", "+5",
                  " 5", "0x10", "\u0663", "5\u0663", "1_000", "nan", "inf"]


async def test_numbers_at_the_http_edge_are_refused_in_json_and_move_nothing(app_client):
    from decimal import Decimal

    from meterchat.appkeys import DB
    from meterchat.chain_ctx import CHAIN_INFO, DEVNET
    from tests.conftest import assert_error, devnet_pay, eventually

    seller = await seller_online(app_client, 10)
    buyer = await actor(app_client)
    await fund(app_client, buyer.id, 1000)
    admin = await admin_actor(app_client)
    # A float just above the seller's id must never call that seller.
    near_seller = [float(seller.id) + 0.9, float(seller.id), int(seller.id) + 2**64]

    for value in BAD_QUERY_INTS:
        resp = await buyer.get("/api/sellers", params={"max_rate": value})
        await assert_error(resp, 422, "invalid_value")
        resp = await buyer.get("/api/me/spending", params={"days": value})
        await assert_error(resp, 422, "invalid_value")
        resp = await admin.get("/api/admin/audit-log", params={"before": value})
        await assert_error(resp, 422, "invalid_value")
    listed = (await (await buyer.get("/api/sellers?max_rate=10")).json())["sellers"]
    assert [s["id"] for s in listed] == [seller.id]

    for value in BAD_BODY_IDS + near_seller:
        resp = await buyer.post("/api/calls", {"seller_id": value, "rate": 10})
        body = await assert_error(resp, 422)
        assert body["error"]["code"] in ("invalid_type", "invalid_value"), (value, body)
    for rate in (2**63, 10.0, 1e20, "10", True):
        resp = await buyer.post("/api/calls", {"seller_id": seller.id, "rate": rate})
        await assert_error(resp, 422)
    assert (await (await buyer.get("/api/calls")).json())["calls"] == []
    assert (await buyer.me())["balance"] == {"available": "1000", "held": "0", "pending": "0"}

    # An unmatched transfer for the operator to assign: no bad user_id assigns it.
    txid = await devnet_pay(app_client.app[DEVNET].url,
                            app_client.app[CHAIN_INFO].deposit_address, usdt="7")

    async def recorded():
        return await app_client.app[DB].fetchone(
            "SELECT status FROM deposits WHERE txid = ?", (txid,))

    assert tuple(await eventually(recorded)) == ("unmatched",)
    url = f"/api/admin/deposits/{txid}/assign"
    for value in BAD_BODY_IDS + [float(buyer.id), float(buyer.id) + 0.9]:
        body = await assert_error(await admin.post(url, {"user_id": value}), 422)
        assert body["error"]["code"] in ("invalid_type", "invalid_value"), (value, body)
    for log_index in (2**63, 1.0, "0", -1, True):
        resp = await admin.post(url, {"user_id": buyer.id, "log_index": log_index})
        await assert_error(resp, 422)
    assert tuple(await recorded()) == ("unmatched",)
    assert (await buyer.me())["balance"]["available"] == "1000"

    # The same parsers take what a client really sends: an id as a string or an integer.
    resp = await admin.post(url, {"user_id": int(buyer.id)})
    assert resp.status == 200, await resp.text()
    assert Decimal((await buyer.me())["balance"]["available"]) == Decimal(1700)
    resp = await buyer.post("/api/calls", {"seller_id": seller.id, "rate": 10})
    assert resp.status == 201, await resp.text()
    await audit_ok(app_client)
