"""My sessions (issue 15): the list (created, last seen, client address, user agent), revoking
one, and logging out everywhere."""

from __future__ import annotations

from tests.conftest import assert_error, login, register


def bearer(token: str, ua: str | None = None) -> dict:
    h = {"Authorization": f"Bearer {token}"}
    if ua:
        h["User-Agent"] = ua
    return h


async def test_sessions_are_listed_and_one_can_be_revoked(client):
    user = await register(client)
    resp = await client.post("/api/auth/login", json={"email": user["email"],
                                                      "password": "correct horse battery"},
                             headers={"User-Agent": "PhoneApp/2.1"})
    phone = (await resp.json())["token"]
    laptop = (await login(client, user["email"]))["token"]
    resp = await client.get("/api/me/sessions", headers=bearer(laptop))
    assert resp.status == 200
    listed = (await resp.json())["sessions"]
    assert len(listed) == 2
    assert {s["client_address"] for s in listed} == {"127.0.0.1"}
    current = [s for s in listed if s["current"]]
    other = [s for s in listed if not s["current"]]
    assert len(current) == len(other) == 1
    assert other[0]["user_agent"] == "PhoneApp/2.1"
    for s in listed:
        assert s["created_at"].endswith("Z") and s["last_seen_at"] and s["expires_at"]
        assert set(s) == {"id", "current", "created_at", "last_seen_at", "expires_at",
                          "client_address", "user_agent"}

    resp = await client.delete(f"/api/me/sessions/{other[0]['id']}", headers=bearer(laptop))
    assert resp.status == 204
    await assert_error(await client.get("/api/me", headers=bearer(phone)), 401)
    assert (await client.get("/api/me", headers=bearer(laptop))).status == 200
    resp = await client.delete(f"/api/me/sessions/{other[0]['id']}", headers=bearer(laptop))
    await assert_error(resp, 404, "session_not_found")  # revoked already


async def test_nobody_revokes_another_users_session(client):
    ann = await register(client)
    bob = await register(client)
    ann_token = (await login(client, ann["email"]))["token"]
    bob_token = (await login(client, bob["email"]))["token"]
    [bob_session] = (await (await client.get("/api/me/sessions",
                                             headers=bearer(bob_token))).json())["sessions"]
    resp = await client.delete(f"/api/me/sessions/{bob_session['id']}",
                               headers=bearer(ann_token))
    await assert_error(resp, 404, "session_not_found")
    assert (await client.get("/api/me", headers=bearer(bob_token))).status == 200
    for bad in ("abc", "-1", "1e3", "99999999999999999999"):
        resp = await client.delete(f"/api/me/sessions/{bad}", headers=bearer(ann_token))
        await assert_error(resp, 404)


async def test_log_out_everywhere(client):
    user = await register(client)
    tokens = [(await login(client, user["email"]))["token"] for _ in range(3)]
    resp = await client.post("/api/auth/logout-everywhere", headers=bearer(tokens[0]))
    assert resp.status == 204
    for t in tokens:
        await assert_error(await client.get("/api/me", headers=bearer(t)), 401)
    await assert_error(await client.get("/api/me/sessions"), 401)
