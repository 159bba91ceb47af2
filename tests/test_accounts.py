"""Register, login, logout, me over real HTTP, and every bad input the API names."""

from __future__ import annotations

import json

from argon2 import PasswordHasher

from meterchat.accounts.passwords import Passwords
from meterchat.appkeys import DB, PASSWORDS
from tests.conftest import actor, assert_error, login, new_email, raw_http, register


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
    # /api/me adds the account's security state to the user.
    me_user = {**user, "email_verified": False, "two_factor": False}
    assert body == {"user": me_user, "balance": {"available": "0", "held": "0", "pending": "0"},
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


async def test_text_that_is_not_unicode_is_a_clear_error_never_a_500(client):
    """A token or CSRF header holding a byte that is not UTF-8, and JSON text with a lone
    surrogate (valid JSON, not Unicode text), are refused like any other bad input."""
    user = await register(client)
    session = await login(client, user["email"])
    for path in ("/api/me", "/api/calls", "/api/withdrawals"):
        status, body = await raw_http(client, "GET", path, b"Authorization: Bearer \x80\r\n")
        assert status == 401 and body["error"]["code"] == "unauthorized", (path, body)
    cookie = f"Cookie: mc_session={session['token']}\r\n".encode()
    status, body = await raw_http(client, "POST", "/api/auth/logout",
                                  cookie + b"X-CSRF-Token: \xff\r\n")
    assert status == 403 and body["error"]["code"] == "csrf_failed", body
    lone = '"\\ud800 horse battery staple"'
    for path, raw in (
            ("/api/auth/register", f'{{"email": "{new_email("x")}", "password": {lone},'
             ' "role": "buyer", "display_name": "x", "adult": true, "terms": true}'),
            ("/api/auth/register", f'{{"email": "{new_email("x")}", "password": "correct'
             f' horse battery", "role": "buyer", "display_name": {lone}, "adult": true,'
             ' "terms": true}'),
            ("/api/auth/login", f'{{"email": "{user["email"]}", "password": {lone}}}')):
        resp = await client.post(path, data=raw.encode(),
                                 headers={"Content-Type": "application/json"})
        await assert_error(resp, 400, "malformed_json")
    # A browser name that is not UTF-8 is kept as text, bytes it cannot read replaced.
    credentials = json.dumps({"email": user["email"],
                              "password": "correct horse battery"}).encode()
    status, body = await raw_http(client, "POST", "/api/auth/login",
                                  b"Content-Type: application/json\r\n"
                                  b"User-Agent: caf\xc3\xa9 \x80\xff\r\n", credentials)
    assert status == 200, body
    resp = await client.get("/api/me/sessions",
                            headers={"Authorization": f"Bearer {body['token']}"})
    agents = {s["user_agent"] for s in (await resp.json())["sessions"]}
    assert any(a is not None and a.startswith("caf\u00e9 \ufffd") for a in agents), agents
    # A surrogate pair is a character like any other.
    resp = await client.post("/api/auth/register", json={
        "email": new_email("pair"), "password": "correct horse battery \U0001f600",
        "role": "buyer", "display_name": "smile \U0001f600", "adult": True, "terms": True})
    assert resp.status == 201, await resp.text()
    # The session still works: nothing above logged it out.
    resp = await client.get("/api/me", headers={"Authorization": f"Bearer {session['token']}"})
    assert resp.status == 200


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
    from meterchat.app import create_app
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
    from meterchat.app import create_app
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


def test_unknown_email_costs_a_hash_of_the_configured_cost():
    """The hash verified for an unknown email is written out, not computed, but it has the
    configured parameters, so verifying against it is the same work as a real one."""
    from argon2 import extract_parameters

    pw = Passwords(time_cost=2, memory_kib=4096)
    assert extract_parameters(pw._dummy) == extract_parameters(pw.hash("a real password"))
    assert not pw.verify(None, "anything at all")


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
    from meterchat.accounts import users as accounts_mod

    pw = client.app[PASSWORDS]
    await client.app[DB].tx(accounts_mod.insert_user_tx, "op@example.com",
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

    from meterchat.core.logs import JsonFormatter

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


# ---- the client address behind a proxy, and the limits that count it -------------------

BEHIND_CADDY = {"trusted_proxies": ["127.0.0.1"]}


def via(address: str, **headers: str) -> dict:
    """Headers as the shipped Caddy sends them for a client at `address`."""
    return {"X-Forwarded-For": address, **headers}


async def _login_as(client, email: str, password: str, headers: dict):
    return await client.post("/api/auth/login", json={"email": email, "password": password},
                             headers=headers)


async def test_forty_failed_logins_from_one_forwarded_address_leave_another_user_able_to_log_in(
        aiohttp_client, tmp_path):
    from meterchat.app import create_app
    from tests.conftest import make_config

    client = await aiohttp_client(create_app(make_config(tmp_path, server=BEHIND_CADDY)))
    victim = await register(client)
    bystander = await register(client)
    attacker = via("203.0.113.66")
    statuses = []
    for i in range(40):
        # The victim's account and made-up ones, as a guesser would.
        email = victim["email"] if i % 2 else f"made-up-{i}@example.com"
        resp = await _login_as(client, email, "wrong password!", attacker)
        statuses.append(resp.status)
        await resp.release()
    assert set(statuses) == {401, 429} and statuses[-1] == 429
    # The attacker's address is held; everybody else logs in, the victim included.
    resp = await _login_as(client, victim["email"], "correct horse battery", attacker)
    await assert_error(resp, 429, "rate_limited")
    for user, address in ((victim, "198.51.100.7"), (bystander, "192.0.2.44"),
                          (victim, "2001:db8:1::5")):
        resp = await _login_as(client, user["email"], "correct horse battery", via(address))
        assert resp.status == 200, await resp.text()


async def test_forged_forwarded_for_from_an_untrusted_peer_is_ignored(aiohttp_client, tmp_path):
    from meterchat.app import create_app
    from tests.conftest import make_config

    # The default trusts no proxy; a listed proxy that is not this peer changes nothing.
    for n, server in enumerate(({}, {"trusted_proxies": ["10.9.9.9", "192.168.0.0/16"]})):
        cfg = make_config(tmp_path / str(n), server={**server, "login_attempts_per_ip": 5})
        client = await aiohttp_client(create_app(cfg))
        for i in range(5):
            resp = await _login_as(client, f"nobody{i}@example.com", "wrong password!",
                                   via(f"198.51.100.{i}"))
            await assert_error(resp, 401)
        # A new forged address each time: still the same peer, so still held.
        resp = await _login_as(client, "other@example.com", "wrong password!",
                               via("192.0.2.200"))
        await assert_error(resp, 429, "rate_limited")
        assert int(resp.headers["Retry-After"]) > 0


async def test_a_client_cannot_forge_its_address_through_the_trusted_proxy(aiohttp_client,
                                                                           tmp_path):
    """Caddy appends the address it saw to whatever X-Forwarded-For the client sent: the
    right-most address that is not a trusted proxy is the client, never one further left."""
    from meterchat.app import create_app
    from tests.conftest import make_config

    cfg = make_config(tmp_path, server={**BEHIND_CADDY, "login_attempts_per_ip": 3})
    client = await aiohttp_client(create_app(cfg))
    for i in range(3):
        resp = await _login_as(client, f"nobody{i}@example.com", "wrong password!",
                               via(f"10.0.0.{i}, 203.0.113.66"))
        await assert_error(resp, 401)
    resp = await _login_as(client, "x@example.com", "wrong password!",
                           via("10.0.0.99, 203.0.113.66"))
    await assert_error(resp, 429)
    # Two headers (two proxies that each added one) read as one list.
    resp = await client.post("/api/auth/login",
                             json={"email": "x@example.com", "password": "wrong password!"},
                             headers=[("X-Forwarded-For", "10.0.0.98"),
                                      ("X-Forwarded-For", "203.0.113.66")])
    await assert_error(resp, 429)


async def test_https_from_a_trusted_proxy_makes_cookies_secure(aiohttp_client, tmp_path):
    from meterchat.app import create_app
    from tests.conftest import make_config

    for n, (server, secure) in enumerate(((BEHIND_CADDY, True), ({}, False))):
        client = await aiohttp_client(create_app(make_config(tmp_path / str(n), server=server)))
        user = await register(client)
        resp = await _login_as(client, user["email"], "correct horse battery",
                               via("198.51.100.7", **{"X-Forwarded-Proto": "https"}))
        assert resp.status == 200
        cookies = resp.headers.getall("Set-Cookie")
        assert len(cookies) == 2
        assert all(("; Secure" in c) is secure for c in cookies), cookies
        resp = await _login_as(client, user["email"], "correct horse battery",
                               via("198.51.100.7", **{"X-Forwarded-Proto": "http"}))
        assert not any("; Secure" in c for c in resp.headers.getall("Set-Cookie"))


async def test_request_log_names_the_forwarded_client(aiohttp_client, tmp_path, caplog):
    import logging

    from meterchat.app import create_app
    from tests.conftest import make_config

    caplog.set_level(logging.INFO)
    client = await aiohttp_client(create_app(make_config(tmp_path, server=BEHIND_CADDY)))
    await client.get("/api/health", headers=via("198.51.100.7"))
    await client.get("/api/health")
    clients = [r.fields["client"] for r in caplog.records
               if r.getMessage() == "request" and r.fields["path"] == "/api/health"]
    assert clients == ["198.51.100.7", "127.0.0.1"]


async def test_signups_are_limited_per_client_address(aiohttp_client, tmp_path):
    from meterchat.app import create_app
    from tests.conftest import make_config

    cfg = make_config(tmp_path, server={**BEHIND_CADDY, "registrations_per_ip_per_hour": 3})
    client = await aiohttp_client(create_app(cfg))

    async def sign_up(address: str):
        email = new_email()
        return await client.post("/api/auth/register", headers=via(address), json={
            "email": email, "password": "correct horse battery", "role": "buyer",
            "display_name": "x", "adult": True, "terms": True})

    for _ in range(3):
        assert (await sign_up("203.0.113.66")).status == 201
    resp = await sign_up("203.0.113.66")
    await assert_error(resp, 429, "rate_limited")
    assert int(resp.headers["Retry-After"]) > 3000
    # One IPv6 customer line is one /64, whatever address in it.
    for i in range(3):
        assert (await sign_up(f"2001:db8:7:1::{i + 1}")).status == 201
    await assert_error(await sign_up("2001:db8:7:1:ffff::1"), 429, "rate_limited")
    assert (await sign_up("198.51.100.7")).status == 201
    rows = await client.app[DB].fetchall("SELECT COUNT(*) FROM users")
    assert rows[0][0] == 7


async def test_forwarded_requests_from_an_untrusted_local_proxy_are_pointed_out_once(
        client, caplog, monkeypatch):
    import logging

    from meterchat.accounts import auth

    monkeypatch.setattr(auth, "_warned_untrusted_proxy", False)
    caplog.set_level(logging.WARNING)
    for _ in range(3):
        await client.get("/api/health", headers=via("198.51.100.7"))
    warned = [r for r in caplog.records if r.getMessage() == "proxy_not_trusted"]
    assert len(warned) == 1 and warned[0].fields["peer"] == "127.0.0.1"
