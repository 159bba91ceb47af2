"""TOTP two-factor (issue 15): setup, enable with a code (ten recovery codes, stored hashed),
disable with password and code; login needs `otp` (otp_required, otp_invalid); a code is
accepted once; one step of clock skew each way; recovery codes used once;
security.require_2fa_for_admins; `meterchat user disable-2fa` (audited)."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pyotp
import pytest

from meterchat.accounts import totp, two_factor
from meterchat.app import create_app
from meterchat.appkeys import DB
from meterchat.core.config import config_from_dict
from meterchat.core.db import connect_sync, migrate_sync, now_ms, run_tx
from tests.conftest import actor, admin_actor, assert_error, login, make_config, raw_http
from tests.test_cli import config_file, meterchat

PW = "correct horse battery"


# -- the rules


def test_a_code_matches_its_step_and_one_step_either_side_only():
    secret = totp.new_secret()
    now = 1_800_000_015.0
    step = totp.step_at(now)
    for delta in (-1, 0, 1):
        assert totp.matching_step(secret, totp.code_at(secret, step + delta), now, None) == \
            step + delta
    for delta in (-2, 2, 10):
        assert totp.matching_step(secret, totp.code_at(secret, step + delta), now, None) is None
    assert totp.code_at(secret, step) == pyotp.TOTP(secret).at(now)  # RFC 6238 as pyotp


def test_a_code_at_or_before_the_last_accepted_step_is_refused():
    secret = totp.new_secret()
    now = 1_800_000_015.0
    step = totp.step_at(now)
    code = totp.code_at(secret, step)
    assert totp.matching_step(secret, code, now, step - 1) == step
    assert totp.matching_step(secret, code, now, step) is None  # replay
    assert totp.matching_step(secret, totp.code_at(secret, step - 1), now, step) is None


@pytest.mark.parametrize("bad", ["", "12345", "1234567", "abcdef", "12 34 5x", "١٢٣٤٥٦", "12345６"])
def test_malformed_codes_match_nothing(bad):
    secret = totp.new_secret()
    assert totp.matching_step(secret, bad, time.time(), None) is None


def test_recovery_codes_are_ten_distinct_and_read_loosely():
    codes = totp.new_recovery_codes()
    assert len(codes) == len(set(codes)) == 10
    assert all(totp.is_recovery_code(c) for c in codes)
    c = codes[0]
    assert totp.recovery_sha256(c.upper().replace("-", " ")) == totp.recovery_sha256(c)
    assert not totp.is_recovery_code("123456")


def test_require_2fa_for_admins_defaults_to_true_on_mainnet_only():
    assert config_from_dict({}, Path(".")).security.require_2fa_for_admins is False
    main = config_from_dict({"chain": {"network": "mainnet"}}, Path("."))
    assert main.security.require_2fa_for_admins is True
    off = config_from_dict({"chain": {"network": "mainnet"},
                            "security": {"require_2fa_for_admins": False}}, Path("."))
    assert off.security.require_2fa_for_admins is False


# -- the endpoints


async def enable(a) -> tuple[str, list[str]]:
    """Set up and enable 2FA for an actor; returns (secret, recovery codes)."""
    resp = await a.post("/api/auth/2fa/setup")
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["otpauth_uri"].startswith("otpauth://totp/")
    assert body["qr"].startswith("data:image/svg+xml")
    secret = body["secret"]
    resp = await a.post("/api/auth/2fa/enable", json={"code": "000000"
                                                      if pyotp.TOTP(secret).now() != "000000"
                                                      else "111111"})
    await assert_error(resp, 403, "otp_invalid")
    resp = await a.post("/api/auth/2fa/enable", json={"code": pyotp.TOTP(secret).now()})
    assert resp.status == 200, await resp.text()
    codes = (await resp.json())["recovery_codes"]
    assert len(codes) == 10
    return secret, codes


def next_code(secret: str) -> str:
    """The code of the next step (accepted through the one step of skew)."""
    return pyotp.TOTP(secret).at(time.time() + 30)


async def test_enable_then_login_needs_a_code_once(client):
    a = await actor(client)
    await assert_error(await a.post("/api/auth/2fa/enable", json={"code": "123456"}), 409,
                       "2fa_not_set_up")
    secret, codes = await enable(a)
    assert (await a.me())["user"]["two_factor"] is True
    await assert_error(await a.post("/api/auth/2fa/setup"), 409, "2fa_already_enabled")
    stored = await client.server.app[DB].read(
        lambda c: [r[0] for r in c.execute("SELECT code_sha256 FROM recovery_codes")])
    assert len(stored) == 10 and not set(codes) & set(stored)  # hashed, never the codes

    email = a.user["email"]
    resp = await client.post("/api/auth/login", json={"email": email, "password": PW})
    await assert_error(resp, 401, "otp_required")
    resp = await client.post("/api/auth/login", json={"email": email, "password": PW,
                                                      "otp": "000000"})
    await assert_error(resp, 401, "otp_invalid")
    resp = await client.post("/api/auth/login", json={"email": email, "password": "wrong one!",
                                                      "otp": next_code(secret)})
    await assert_error(resp, 401, "invalid_credentials")
    code = next_code(secret)
    resp = await client.post("/api/auth/login", json={"email": email, "password": PW,
                                                      "otp": code})
    assert resp.status == 200, await resp.text()
    resp = await client.post("/api/auth/login", json={"email": email, "password": PW,
                                                      "otp": code})
    await assert_error(resp, 401, "otp_invalid")  # the same code again: a replay


async def test_a_recovery_code_logs_in_once(client):
    a = await actor(client)
    _, codes = await enable(a)
    body = {"email": a.user["email"], "password": PW, "otp": codes[3].upper()}
    assert (await client.post("/api/auth/login", json=body)).status == 200
    await assert_error(await client.post("/api/auth/login", json=body), 401, "otp_invalid")
    body["otp"] = codes[4]
    assert (await client.post("/api/auth/login", json=body)).status == 200


async def test_clock_skew_of_one_step_each_way(client):
    a = await actor(client)
    secret, _ = await enable(a)
    db = client.server.app[DB]
    email = a.user["email"]
    for offset in (-30, 30):
        await db.tx(lambda c: c.execute("UPDATE users SET totp_last_step = NULL"))
        resp = await client.post("/api/auth/login", json={
            "email": email, "password": PW, "otp": pyotp.TOTP(secret).at(time.time() + offset)})
        assert resp.status == 200, (offset, await resp.text())
    for offset in (-90, 90):
        await db.tx(lambda c: c.execute("UPDATE users SET totp_last_step = NULL"))
        resp = await client.post("/api/auth/login", json={
            "email": email, "password": PW, "otp": pyotp.TOTP(secret).at(time.time() + offset)})
        await assert_error(resp, 401, "otp_invalid")


async def test_disable_needs_the_password_and_a_code(client):
    a = await actor(client)
    secret, codes = await enable(a)
    resp = await a.post("/api/auth/2fa/disable", json={"password": "wrong password",
                                                       "code": codes[0]})
    await assert_error(resp, 403, "wrong_password")
    resp = await a.post("/api/auth/2fa/disable", json={"password": PW, "code": "000000"})
    await assert_error(resp, 403, "otp_invalid")
    resp = await a.post("/api/auth/2fa/disable", json={"password": PW})
    await assert_error(resp, 422, "invalid_code")
    resp = await a.post("/api/auth/2fa/disable", json={"password": PW, "code": codes[0]})
    assert resp.status == 204
    assert (await a.me())["user"]["two_factor"] is False
    await login(client, a.user["email"])  # no code needed any more
    resp = await a.post("/api/auth/2fa/disable", json={"password": PW, "code": codes[1]})
    await assert_error(resp, 422, "2fa_not_enabled")


async def test_wrong_codes_are_limited(aiohttp_client, tmp_path):
    client = await aiohttp_client(create_app(make_config(
        tmp_path, security={"otp_attempts_per_account": 3})))
    a = await actor(client)
    await enable(a)
    body = {"email": a.user["email"], "password": PW, "otp": "000001"}
    for _ in range(3):
        assert (await client.post("/api/auth/login", json=body)).status == 401
    await assert_error(await client.post("/api/auth/login", json=body), 429, "rate_limited")


async def test_admin_writes_need_2fa_when_required_and_a_code(aiohttp_client, tmp_path):
    cfg = make_config(tmp_path, security={"require_2fa_for_admins": True,
                                          "admin_otp_fresh_minutes": 0})
    client = await aiohttp_client(create_app(cfg))
    admin = await admin_actor(client)
    write = "/api/admin/withdrawals/999999/reject"
    assert (await admin.get("/api/admin/withdrawals")).status == 200  # reads stay open
    await assert_error(await admin.post(write, json={}), 403, "2fa_required")
    secret, codes = await enable(admin)
    await assert_error(await admin.post(write, json={}), 403, "otp_required")
    await assert_error(await admin.post(write, json={"otp": "000000"}), 403, "otp_invalid")
    resp = await admin.post(write, json={"otp": next_code(secret)})
    await assert_error(resp, 404, "withdrawal_not_found")  # past the check, to the handler
    resp = await admin.post(write, headers={"X-OTP": codes[0]})
    await assert_error(resp, 404, "withdrawal_not_found")
    # A code header with bytes that are not UTF-8: not a code (never a 500).
    status, body = await raw_http(client, "POST", write,
                                  f"Authorization: Bearer {admin.token}\r\n".encode()
                                  + b"X-OTP: \x80\x81\x82\x83\x84\x85\r\n")
    assert (status, body["error"]["code"]) == (422, "invalid_code"), body
    buyer = await actor(client)
    await assert_error(await buyer.post(write, json={}), 403)  # not an admin: the handler


async def test_an_admin_code_keeps_the_session_fresh_for_a_while(aiohttp_client, tmp_path):
    cfg = make_config(tmp_path, security={"require_2fa_for_admins": True})
    client = await aiohttp_client(create_app(cfg))
    admin = await admin_actor(client)
    await enable(admin)  # enabling took a code on this session
    for _ in range(3):
        resp = await admin.post("/api/admin/withdrawals/999999/reject", json={})
        await assert_error(resp, 404, "withdrawal_not_found")


def test_operator_disables_2fa_audited(tmp_path):
    cfg = config_file(tmp_path)
    r = meterchat("user", "create", "--config", str(cfg), "--email", "lost@example.com",
                  "--role", "seller", "--password-stdin", input="first password 1\n")
    assert r.returncode == 0, r.stderr
    conn = connect_sync(tmp_path / "m.sqlite3")
    migrate_sync(conn)
    secret = run_tx(conn, two_factor.setup_tx, 1)
    assert run_tx(conn, two_factor.enable_tx, 1, pyotp.TOTP(secret).now(), time.time(),
                  now_ms())
    r = meterchat("user", "disable-2fa", "--config", str(cfg), "--email", "lost@example.com",
                  "--reason", "lost phone, identity checked")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["changed"] is True
    c = sqlite3.connect(tmp_path / "m.sqlite3")
    assert c.execute("SELECT totp_enabled_at_ms, totp_secret FROM users").fetchone() == (None,
                                                                                        None)
    assert c.execute("SELECT COUNT(*) FROM recovery_codes").fetchone()[0] == 0
    [(action, reason)] = c.execute("SELECT action, reason FROM audit_log").fetchall()
    assert action == "user.disable_2fa" and reason == "lost phone, identity checked"
    kinds = [json.loads(line)["kind"] for line in
             meterchat("mail", "list", "--config", str(cfg)).stdout.splitlines()]
    assert kinds == ["2fa_changed"]
