"""Shared fixtures: a real SQLite file per test, the real app served over real HTTP on a
loopback port, and helpers that act as users through the public API."""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from meterchat.app import create_app
from meterchat.core.config import Config, config_from_dict

# No timed assertions in tests: hypothesis's per-example deadline is one, and a busy machine
# trips it. Speed is measured by the scripts under bench/.
settings.register_profile("meterchat", deadline=None)
settings.load_profile("meterchat")

# Cheap argon2 parameters keep the suite fast; production defaults are tested in
# test_accounts.py::test_default_password_hash_is_argon2id.
FAST_HASH = {"password_hash_time_cost": 1, "password_hash_memory_kib": 1024}
# Every test user signs up from 127.0.0.1; the sign-up limit per address is tested on its own
# (tests/test_accounts.py), with its own config.
MANY_SIGNUPS = {"registrations_per_ip_per_hour": 100_000}

_emails = itertools.count(1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The long files first, the rest in file order: on several workers (make test, which
    hands out whole files in this order) the suite then ends with short tests, not with one
    long file that started last. First the deployment's installs (the longest), then the
    real-time files (marked slow: they mostly wait) taken in turn with the browser files
    (mostly CPU), so that waits overlap work. And a worker refuses tests that share a node
    id: xdist tells tests apart by it and would run one of them only (schemathesis's cases
    do share one: make test runs tests/test_fuzz_api.py in a process of its own)."""
    if hasattr(config, "workerinput"):
        seen: set[str] = set()
        shared = {item.nodeid for item in items if item.nodeid in seen or seen.add(item.nodeid)}
        if shared:
            raise pytest.UsageError("tests sharing a node id cannot run on xdist workers "
                                    f"(run them with -n 0): {sorted(shared)}")

    def kind(item: pytest.Item) -> str:
        if item.get_closest_marker("slow"):
            return "install" if item.get_closest_marker("deploy") else "waits"
        return "browser" if item.get_closest_marker("browser") else "short"

    files: dict[str, str] = {}  # file -> its kind, by its first test, in collection order
    for item in items:
        files.setdefault(item.nodeid.split("::")[0], kind(item))
    turn = {"waits": 0, "browser": 0}
    rank: dict[str, tuple[int, int]] = {}
    for path, k in files.items():
        if k in turn:
            # waits files on even places, browser files on odd ones: one of each in turn
            rank[path] = (1, 2 * turn[k] + (k == "browser"))
            turn[k] += 1
        else:
            rank[path] = (0, 0) if k == "install" else (2, 0)
    items.sort(key=lambda item: rank[item.nodeid.split("::")[0]])  # stable: same on every worker


@pytest.fixture(scope="session", autouse=True)
async def _shared_chromium_closed():
    """The browser tests' one Chromium (tests/browser_pool.py) ends with the session, on the
    session's event loop that started it."""
    yield
    pool = sys.modules.get("tests.browser_pool")
    if pool is not None:
        await pool.close()


def make_config(tmp_path: Path, **sections: dict[str, Any]) -> Config:
    data: dict[str, dict[str, Any]] = {
        "server": {**FAST_HASH, **MANY_SIGNUPS},
        "database": {"path": str(tmp_path / "meterchat.sqlite3")},
        "devnet": {"path": str(tmp_path / "devnet.sqlite3"), "port": 0},
        # The account-security rules of withdrawals (a verified email, the new-address hold)
        # are tested on their own (tests/test_withdrawal_holds.py); other tests withdraw at
        # once.
        "withdrawals": {"new_address_hold_hours": 0, "require_verified_email": False},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return config_from_dict(data, tmp_path)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_config(tmp_path)


@pytest.fixture
async def client(aiohttp_client, config):
    return await aiohttp_client(create_app(config))


def new_email(prefix: str = "user") -> str:
    return f"{prefix}{next(_emails)}@example.com"


async def register(client, role: str = "buyer", email: str | None = None,
                   password: str = "correct horse battery", display_name: str | None = None):
    email = email or new_email(role)
    resp = await client.post("/api/auth/register", json={
        "email": email, "password": password, "role": role,
        "display_name": display_name or email.split("@")[0], "adult": True, "terms": True,
    })
    assert resp.status == 201, await resp.text()
    return (await resp.json())["user"]


async def login(client, email: str, password: str = "correct horse battery") -> dict:
    resp = await client.post("/api/auth/login", json={"email": email, "password": password})
    assert resp.status == 200, await resp.text()
    return await resp.json()


class Actor:
    """A logged-in user talking to the server with a bearer token."""

    def __init__(self, client, user: dict, token: str) -> None:
        self.client = client
        self.user = user
        self.id = user["id"]
        self.token = token
        self.headers = {"Authorization": f"Bearer {token}"}

    async def get(self, path: str, **kw):
        return await self.client.get(path, headers={**self.headers, **kw.pop("headers", {})}, **kw)

    async def post(self, path: str, json: Any = None, **kw):
        return await self.client.post(
            path, json=json, headers={**self.headers, **kw.pop("headers", {})}, **kw
        )

    async def put(self, path: str, json: Any = None, **kw):
        return await self.client.put(
            path, json=json, headers={**self.headers, **kw.pop("headers", {})}, **kw
        )

    async def me(self) -> dict:
        resp = await self.get("/api/me")
        assert resp.status == 200
        return await resp.json()


async def actor(client, role: str = "buyer", **kw) -> Actor:
    user = await register(client, role, **kw)
    session = await login(client, user["email"])
    return Actor(client, session["user"], session["token"])


async def raw_http(client, method: str, path: str, headers: bytes,
                   body: bytes = b"") -> tuple[int, dict]:
    """One request written byte for byte (a client library refuses or re-encodes what is
    not text): its status and JSON body."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
                 f"Content-Length: {len(body)}\r\n".encode() + headers + b"\r\n" + body)
    answer = await reader.read()
    writer.close()
    head, _, payload = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(payload)


async def assert_error(resp, status: int, code: str | None = None) -> dict:
    body = await resp.json()
    assert resp.status == status, body
    assert set(body) == {"error"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    return body


# -- chain and deposits (devnet in-process, real tronpy over real HTTP)

FAST_CHAIN = {
    "devnet": {"block_time_s": 0.1, "solidify_depth": 2},
    "deposits": {"watcher_interval_s": 0.1},
}


def chain_config(tmp_path: Path, **sections: dict[str, Any]) -> Config:
    """A config whose devnet makes a block every 0.1 s, solidified 2 blocks later."""
    merged: dict[str, dict[str, Any]] = {k: dict(v) for k, v in FAST_CHAIN.items()}
    for name, values in sections.items():
        merged.setdefault(name, {}).update(values)
    return make_config(tmp_path, **merged)


async def devnet_pay(node_url: str, to: str, usdt: str | None = None, trx: str | None = None,
                     **extra: Any) -> str:
    """Send USDT (or TRX) from the devnet faucet over its HTTP API; returns the TXID."""
    import aiohttp

    body: dict[str, Any] = {"to": to, **extra}
    if usdt is not None:
        body["usdt"] = usdt
    if trx is not None:
        body["trx"] = trx
    async with aiohttp.ClientSession() as http:
        async with http.post(node_url + "/devnet/transfer", json=body) as resp:
            answer = await resp.json()
            assert resp.status == 200, answer
            return answer["txid"]


async def eventually(check, timeout_s: float = 10.0, interval_s: float = 0.05):
    """Poll an async check until it returns a truthy value."""
    import asyncio

    async with asyncio.timeout(timeout_s):
        while True:
            value = await check()
            if value:
                return value
            await asyncio.sleep(interval_s)


# ---- calls and billing helpers ------------------------------------------------------

def fund_sync(conn, user_id: int | str, tokens: int | str) -> None:
    """Credit a buyer straight through the ledger (deposits are another domain's)."""
    from meterchat.core.db import run_tx
    from meterchat.core.units import tokens_to_musdt
    from meterchat.money import ledger

    amount = tokens_to_musdt(str(tokens))
    run_tx(conn, lambda c: ledger.transfer(c, ledger.CHAIN_DEPOSITS,
                                           ledger.user_account(int(user_id)), amount,
                                           "test_deposit"))


async def fund(client, user_id: int | str, tokens: int | str) -> None:
    await fund_tokens(client.app, user_id, str(tokens))


async def audit_ok(client) -> dict:
    from meterchat.appkeys import DB
    from meterchat.money import ledger

    report = await client.app[DB].read(ledger.audit)
    assert report.ok, report.as_dict()
    return report.as_dict()


# Short timers so call tests run in seconds; the 6-s segment stays (the billing unit).
FAST_CALLS = {
    "billing": {"tick_interval_s": 0.2, "media_timeout_s": 1.5, "reconnect_grace_s": 3,
                "ring_timeout_s": 5, "connect_timeout_s": 20},
    "server": {"presence_grace_s": 2},
}


def fast_calls_config(tmp_path: Path, **sections: dict[str, Any]) -> Config:
    merged: dict[str, dict[str, Any]] = {k: dict(v) for k, v in FAST_CALLS.items()}
    for name, values in sections.items():
        merged.setdefault(name, {}).update(values)
    return make_config(tmp_path, **merged)


async def seller_online(client, rate: int = 600, **profile) -> Actor:
    seller = await actor(client, "seller")
    resp = await seller.put("/api/seller/profile", {"rate": rate, **profile})
    assert resp.status == 200, await resp.text()
    resp = await seller.put("/api/seller/status", {"online": True})
    assert resp.status == 200, await resp.text()
    return seller


# -- funding and operators, for domains that come after deposits


async def fund_tokens(app, user_id: str | int, tokens: str) -> None:
    """Credit tokens to a user's `available` through the ledger, from chain:deposits (as a
    credited deposit does), for tests of what users do with tokens they hold."""
    from meterchat.appkeys import DB
    from meterchat.core.units import tokens_to_musdt
    from meterchat.money import ledger

    amount = tokens_to_musdt(tokens)

    def credit(conn):
        return ledger.transfer(conn, ledger.CHAIN_DEPOSITS, ledger.user_account(int(user_id)),
                               amount, "deposit", ref="test funding")

    await app[DB].tx(credit)


async def admin_actor(client) -> Actor:
    """An operator, created the way `meterchat user create --role admin` does."""
    from meterchat.accounts import users as accounts
    from meterchat.appkeys import DB, PASSWORDS

    email = new_email("ops")
    await client.app[DB].tx(accounts.insert_user_tx, email,
                            client.app[PASSWORDS].hash("correct horse battery"), "admin", "ops")
    session = await login(client, email)
    return Actor(client, session["user"], session["token"])
