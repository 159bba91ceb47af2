"""Withdrawals and account security (issue 15): a verified email first, a 2FA code with every
request (otp_required, otp_invalid, each code once), the hold of a withdrawal to a new
address (and after a password reset or 2FA change), released after its time, cancelled
before it by the user with the tokens back, and a mail on every request."""

from __future__ import annotations

import time
import uuid

import pyotp
import pytest

from meterchat.accounts import users
from meterchat.app import create_app
from meterchat.appkeys import DB
from meterchat.core.db import now_ms
from meterchat.core.units import HOUR_MS
from meterchat.mail import outbox
from meterchat.money import ledger
from meterchat.withdrawals import holds, sending
from tests.conftest import actor, assert_error, chain_config, fund_tokens

DEST = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
OTHER = "TJRabPrwbZy45sbavfcjinPJC18kjpRTv8"
SECURE = {"sender_interval_s": 3600, "new_address_hold_hours": 24,
          "require_verified_email": True}


def test_hold_until_rule():
    h = 24 * HOUR_MS
    assert holds.hold_until(1000, h, True, None, True) == 1000 + h
    assert holds.hold_until(1000, h, False, None, True) is None
    assert holds.hold_until(1000, 0, True, 900, True) is None  # 0 = off
    # Soon after a security change: held until the change plus the hold, new address or not.
    assert holds.hold_until(1000, h, False, 500, True) == 500 + h
    assert holds.hold_until(1000, h, False, 500, False) is None
    assert holds.hold_until(h + 600, h, False, 500, True) is None  # long after it
    assert holds.hold_until(1000, h, True, 900, True) == 1000 + h  # the later of the two


@pytest.fixture
async def app_client(aiohttp_client, tmp_path):
    return await aiohttp_client(create_app(chain_config(tmp_path, withdrawals=SECURE)))


async def withdraw(user, tokens: str = "400", address: str = DEST, key: str | None = None,
                   otp: str | None = None):
    body = {"tokens": tokens, "address": address}
    if otp is not None:
        body["otp"] = otp
    return await user.post("/api/withdrawals", json=body,
                           headers={"Idempotency-Key": key or uuid.uuid4().hex})


async def verified_seller(client, tokens: str = "2000"):
    seller = await actor(client, "seller")
    await fund_tokens(client.app, seller.id, tokens)
    await client.app[DB].tx(users.mark_email_verified_tx, int(seller.id), now_ms())
    return seller


async def available(user) -> str:
    return (await user.me())["balance"]["available"]


async def test_an_unverified_email_cannot_withdraw(app_client):
    seller = await actor(app_client, "seller")
    await fund_tokens(app_client.app, seller.id, "750")
    await assert_error(await withdraw(seller), 403, "email_not_verified")
    assert await available(seller) == "750"


async def test_the_first_withdrawal_to_a_new_address_is_held_and_mailed(app_client):
    seller = await verified_seller(app_client)
    db = app_client.app[DB]
    resp = await withdraw(seller)
    assert resp.status == 201, await resp.text()
    w = (await resp.json())["withdrawal"]
    assert w["status"] == "queued" and w["reason"] == "new_address_hold"
    until = await db.read(holds.held_until, int(w["id"]))
    assert 23.9 * HOUR_MS < until - now_ms() <= 24 * HOUR_MS
    assert await db.read(sending.queued) == []  # the sender leaves it alone
    [mail] = [m for m in await db.read(outbox.listing) if m.kind == "withdrawal_requested"]
    assert mail.to_address == seller.user["email"]
    assert DEST in mail.body_text and "400 tokens" in mail.body_text
    assert "held until" in mail.body_text and "cancel" in mail.body_text

    # Its time passes: the sender may take it.
    await db.tx(lambda c: c.execute("UPDATE withdrawals SET hold_until_ms = ?",
                                    (now_ms() - 1,)))
    assert [x.id for x in await db.read(sending.queued)] == [int(w["id"])]


async def test_an_address_withdrawn_to_before_is_not_held(app_client):
    seller = await verified_seller(app_client)
    db = app_client.app[DB]
    first = (await (await withdraw(seller)).json())["withdrawal"]
    await db.tx(lambda c: c.execute("UPDATE withdrawals SET status = 'sent' WHERE id = ?",
                                    (int(first["id"]),)))
    again = (await (await withdraw(seller)).json())["withdrawal"]
    assert again["reason"] is None and await db.read(holds.held_until, int(again["id"])) is None
    other = (await (await withdraw(seller, address=OTHER)).json())["withdrawal"]
    assert other["reason"] == "new_address_hold"
    kinds = [m.kind for m in await db.read(outbox.listing)]
    assert kinds.count("withdrawal_requested") == 3  # a mail on every request


async def test_after_a_password_reset_every_withdrawal_is_held(app_client):
    seller = await verified_seller(app_client)
    db = app_client.app[DB]
    first = (await (await withdraw(seller)).json())["withdrawal"]
    await db.tx(lambda c: c.execute("UPDATE withdrawals SET status = 'sent' WHERE id = ?",
                                    (int(first["id"]),)))
    await db.tx(users.set_password_tx, int(seller.id), "x", now_ms(), reset=True)
    held = (await (await withdraw(seller)).json())["withdrawal"]  # a known address
    assert held["reason"] == "new_address_hold"


async def test_the_user_cancels_a_held_withdrawal_and_gets_the_tokens_back(app_client):
    seller = await verified_seller(app_client, "750")
    w = (await (await withdraw(seller)).json())["withdrawal"]
    assert await available(seller) == "350"
    other = await verified_seller(app_client)
    resp = await other.post(f"/api/withdrawals/{w['id']}/cancel")
    await assert_error(resp, 404, "withdrawal_not_found")
    resp = await seller.post(f"/api/withdrawals/{w['id']}/cancel")
    assert resp.status == 200, await resp.text()
    done = (await resp.json())["withdrawal"]
    assert done["status"] == "rejected" and "cancelled" in done["reason"]
    assert await available(seller) == "750"
    await assert_error(await seller.post(f"/api/withdrawals/{w['id']}/cancel"), 409,
                       "withdrawal_not_cancellable")
    await assert_error(await seller.post("/api/withdrawals/999999/cancel"), 404)
    await assert_error(await seller.post("/api/withdrawals/x1/cancel"), 404)
    report = (await app_client.app[DB].read(ledger.audit)).as_dict()
    assert report["ok"] and report["clearing_musdt"] == 0


async def test_a_2fa_user_withdraws_only_with_a_fresh_code(app_client):
    seller = await verified_seller(app_client, "2000")
    setup = await (await seller.post("/api/auth/2fa/setup")).json()
    totp = pyotp.TOTP(setup["secret"])
    assert (await seller.post("/api/auth/2fa/enable", json={"code": totp.now()})).status == 200
    await assert_error(await withdraw(seller), 403, "otp_required")
    await assert_error(await withdraw(seller, otp="000000" if totp.now() != "000000"
                                      else "111111"), 403, "otp_invalid")
    assert await available(seller) == "2000"  # nothing moved
    code = totp.at(time.time() + 30)
    key = uuid.uuid4().hex
    resp = await withdraw(seller, otp=code, key=key)
    assert resp.status == 201, await resp.text()
    await assert_error(await withdraw(seller, otp=code), 403, "otp_invalid")  # used once
    replay = await withdraw(seller, key=key)  # a retry of the same request needs no new code
    assert replay.status == 201 and replay.headers.get("Idempotent-Replayed") == "true"
    assert await available(seller) == "1600"


async def test_a_failed_withdrawal_does_not_use_up_the_code(app_client):
    seller = await verified_seller(app_client, "500")
    setup = await (await seller.post("/api/auth/2fa/setup")).json()
    totp = pyotp.TOTP(setup["secret"])
    assert (await seller.post("/api/auth/2fa/enable", json={"code": totp.now()})).status == 200
    code = totp.at(time.time() + 30)
    await assert_error(await withdraw(seller, "900", otp=code), 402)
    resp = await withdraw(seller, "400", otp=code)
    assert resp.status == 201, await resp.text()
