"""Register, login, logout, me over real HTTP, and every bad input the API names."""

from __future__ import annotations

from argon2 import PasswordHasher

from server.accounts import Passwords
from server.appkeys import DB, PASSWORDS
from tests.conftest import actor, assert_error, login, new_email, register


async def test_register_login_me_logout(client):
    email = new_email("Buyer")
    resp = await client.post("/api/auth/register", json={
        "email": email.upper(), "password": "correct horse battery", "role": "buyer",
        "display_name": "  Ann   Buyer ", "adult": True, "terms": True,
    })
    assert resp.status == 201
    user = (await resp.json())["user"]
    assert user["email"] == email.lower()
    assert user["role"] == "buyer"
    assert user["display_name"] == "Ann Buyer"
    assert isinstance(user["id"], str)

    session = await login(client, email.lower())
    assert session["user"] == user
    token = session["token"]
    resp = await client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    body = await resp.json()
    assert body == {"user": user, "balance": {"available": "0", "held": "0", "pending": "0"},
                    "bonus": {"unspent": "0", "withdrawable": "0"}}

    resp = await client.post("/api/auth/logout", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 204
    resp = await client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    await assert_error(resp, 401)


async def test_login_sets_httponly_lax_cookie_and_cookie_auth_works(client):
    user = await register(client, "seller")
    resp = await client.post("/api/auth/login", json={
        "email": user["email"], "password": "correct horse battery"})
    assert resp.status == 200
    cookie = resp.cookies["mc_session"]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert not cookie["secure"]  # plain http in tests; https sets Secure
    resp = await client.get("/api/me")  # the client's cookie jar sends it
    assert resp.status == 200
    assert (await resp.json())["user"]["id"] == user["id"]


async def test_cookie_write_without_csrf_header_is_refused(client):
    user = await register(client)
    session = await login(client, user["email"])
    resp = await client.post("/api/auth/logout")
    await assert_error(resp, 403, "csrf_failed")
    resp = await client.post("/api/auth/logout", headers={"X-CSRF-Token": "wrong"})
    await assert_error(resp, 403, "csrf_failed")
    resp = await client.post("/api/auth/logout", headers={"X-CSRF-Token": session["csrf_token"]})
    assert resp.status == 204
    resp = await client.get("/api/me", headers={"Authorization": f"Bearer {session['token']}"})
    await assert_error(resp, 401)


async def test_duplicate_email_is_409(client):
    email = new_email()
    await register(client, email=email)
    resp = await client.post("/api/auth/register", json={
        "email": email.upper(), "password": "another long one", "role": "seller",
        "display_name": "x", "adult": True, "terms": True})
    await assert_error(resp, 409, "email_taken")


async def test_bad_registrations_are_refused(client):
    good = {"email": new_email(), "password": "correct horse battery", "role": "buyer",
            "display_name": "Ann", "adult": True, "terms": True}
    cases = [
        ({"email": "not-an-email"}, 422, "invalid_email"),
        ({"email": "a@b"}, 422, "invalid_email"),
        ({"password": "short"}, 422, "weak_password"),
        ({"role": "admin"}, 403, "role_not_allowed"),
        ({"role": "wizard"}, 422, "invalid_role"),
        ({"display_name": "   "}, 422, "invalid_display_name"),
        ({"email": 42}, 422, "invalid_type"),
        ({"password": ["x" * 12]}, 422, "invalid_type"),
        ({"adult": False}, 422, "adult_confirmation_required"),
        ({"terms": False}, 422, "terms_required"),
        ({"adult": "yes"}, 422, "invalid_type"),
    ]
    for change, status, code in cases:
        resp = await client.post("/api/auth/register", json={**good, **change})
        await assert_error(resp, status, code)
    own_code = {"adult": "adult_confirmation_required", "terms": "terms_required"}
    for missing in good:
        body = {k: v for k, v in good.items() if k != missing}
        resp = await client.post("/api/auth/register", json=body)
        await assert_error(resp, 422, own_code.get(missing, "missing_field"))


async def test_malformed_json_is_400(client):
    for raw in (b"{", b"[1, 2]", b"\xff\xfe", b'"text"'):
        resp = await client.post("/api/auth/register", data=raw,
                                 headers={"Content-Type": "application/json"})
        await assert_error(resp, 400, "malformed_json")
    resp = await client.post("/api/auth/login", data=b"{nope",
                             headers={"Content-Type": "application/json"})
    await assert_error(resp, 400, "malformed_json")


async def test_wrong_password_is_401_and_no_auth_is_401(client):
    user = await register(client)
    resp = await client.post("/api/auth/login", json={"email": user["email"],
                                                      "password": "wrong password!"})
    await assert_error(resp, 401, "invalid_credentials")
    resp = await client.post("/api/auth/login", json={"email": "nobody@example.com",
                                                      "password": "wrong password!"})
    await assert_error(resp, 401, "invalid_credentials")
    await assert_error(await client.get("/api/me"), 401)
    await assert_error(await client.get("/api/me", headers={"Authorization": "Bearer nope"}), 401)


async def test_login_attempts_are_rate_limited_per_account(aiohttp_client, tmp_path):
    from server.app import create_app
    from tests.conftest import make_config

    cfg = make_config(tmp_path, server={"login_attempts_per_account": 3})
    client = await aiohttp_client(create_app(cfg))
    user = await register(client)
    for _ in range(3):
        resp = await client.post("/api/auth/login", json={"email": user["email"],
                                                          "password": "wrong password!"})
        await assert_error(resp, 401)
    resp = await client.post("/api/auth/login", json={"email": user["email"],
                                                      "password": "correct horse battery"})
    await assert_error(resp, 429, "rate_limited")
    assert int(resp.headers["Retry-After"]) > 0


async def test_login_attempts_are_rate_limited_per_ip(aiohttp_client, tmp_path):
    from server.app import create_app
    from tests.conftest import make_config

    cfg = make_config(tmp_path, server={"login_attempts_per_ip": 4})
    client = await aiohttp_client(create_app(cfg))
    for i in range(4):
        resp = await client.post("/api/auth/login", json={"email": f"nobody{i}@example.com",
                                                          "password": "wrong password!"})
        await assert_error(resp, 401)
    resp = await client.post("/api/auth/login", json={"email": "other@example.com",
                                                      "password": "wrong password!"})
    await assert_error(resp, 429)


async def test_tokens_and_passwords_are_stored_hashed(client):
    user = await register(client, password="my secret password")
    session = await login(client, user["email"], "my secret password")
    rows = await client.app[DB].fetchall("SELECT password_hash FROM users")
    assert all(r[0].startswith("$argon2id$") for r in rows)
    dump = "\n".join(str(tuple(r)) for r in await client.app[DB].fetchall("SELECT * FROM sessions"))
    assert session["token"] not in dump


def test_default_password_hash_is_argon2id():
    pw = Passwords()
    h = pw.hash("correct horse battery")
    assert h.startswith("$argon2id$")
    params = PasswordHasher().check_needs_rehash  # noqa: F841 - the API exists
    assert pw.verify(h, "correct horse battery")
    assert not pw.verify(h, "wrong")
    assert not pw.verify(None, "anything")


async def test_unknown_route_and_method_use_json_error_shape(client):
    await assert_error(await client.get("/api/nope"), 404, "not_found")
    await assert_error(await client.get("/api/auth/login"), 405, "method_not_allowed")


async def test_health(client):
    resp = await client.get("/api/health")
    assert resp.status == 200
    assert (await resp.json())["ok"] is True


async def test_admin_audit_requires_admin(client):
    buyer = await actor(client)
    await assert_error(await buyer.get("/api/admin/audit"), 403, "wrong_role")


async def test_admin_sees_audit_figures(client):
    from server import accounts as accounts_mod

    pw = client.app[PASSWORDS]
    await client.app[DB].tx(accounts_mod.insert_user, "op@example.com",
                            pw.hash("operator password"), "admin", "Operator")
    session = await login(client, "op@example.com", "operator password")
    resp = await client.get("/api/admin/audit",
                            headers={"Authorization": f"Bearer {session['token']}"})
    body = await resp.json()
    assert resp.status == 200, body
    assert body["ok"] is True and body["sum_of_all_postings_musdt"] == 0


async def test_banned_user_token_stops_working(client):
    buyer = await actor(client)
    await client.app[DB].call(
        lambda c: c.execute("UPDATE users SET banned_at_ms = 1 WHERE id = ?", (int(buyer.id),)))
    await assert_error(await buyer.get("/api/me"), 403, "banned")


async def test_logs_carry_no_passwords_or_tokens(client, caplog):
    import logging

    from server.logs import JsonFormatter

    caplog.set_level(logging.DEBUG)
    user = await register(client, password="a very secret password")
    session = await login(client, user["email"], "a very secret password")
    await client.get("/api/me", headers={"Authorization": f"Bearer {session['token']}"})
    await client.get(f"/api/me?token={session['token']}")
    lines = [JsonFormatter().format(r) for r in caplog.records]
    text = "\n".join(lines)
    assert any('"event": "request"' in ln for ln in lines)
    assert "a very secret password" not in text
    assert session["token"] not in text
    assert session["csrf_token"] not in text
