"""Shared fixtures: a real SQLite file per test, the real app served over real HTTP on a
loopback port, and helpers that act as users through the public API."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from server.app import create_app
from server.config import Config, config_from_dict

# Cheap argon2 parameters keep the suite fast; production defaults are tested in
# test_accounts.py::test_default_password_hash_is_argon2id.
FAST_HASH = {"password_hash_time_cost": 1, "password_hash_memory_kib": 1024}

_emails = itertools.count(1)


def make_config(tmp_path: Path, **sections: dict[str, Any]) -> Config:
    data: dict[str, dict[str, Any]] = {
        "server": dict(FAST_HASH),
        "database": {"path": str(tmp_path / "meterchat.sqlite3")},
        "devnet": {"path": str(tmp_path / "devnet.sqlite3"), "port": 0},
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
        "display_name": display_name or email.split("@")[0],
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


async def assert_error(resp, status: int, code: str | None = None) -> dict:
    body = await resp.json()
    assert resp.status == status, body
    assert set(body) == {"error"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    return body
