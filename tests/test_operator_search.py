"""What the operator finds, over real HTTP and SQLite: users by id, email or display name
(`%` and `_` taken literally), paged and bounded; a user's page with balance, calls,
deposits, withdrawals, reports and audit-log lines; the reports queue with the call a report
is about; the list of calls live now and recent. Only admins, and a ban still asks for a
2FA code."""

from __future__ import annotations

import uuid

import pytest

from meterchat.app import create_app
from meterchat.appkeys import DB
from meterchat.chain.gateway import TransferLog
from meterchat.core.db import now_ms
from meterchat.core.errors import Unprocessable
from meterchat.deposits import credits
from meterchat.operator import finder, search_rules
from tests.calls_helpers import clocked_app, start_live_call
from tests.conftest import actor, admin_actor, assert_error, fund, make_config
from tests.test_accounts_2fa import enable, next_code
from tests.test_operator import DEST, billed_call, config_for


@pytest.fixture
async def app_client(aiohttp_client, tmp_path):
    return await aiohttp_client(create_app(config_for(tmp_path)))


async def search(admin, query: str, **params) -> dict:
    resp = await admin.get("/api/admin/users", params={"q": query, **params})
    body = await resp.json()
    assert resp.status == 200, body
    return body


def ids(body: dict) -> list[str]:
    return [u["id"] for u in body["users"]]


# -- the rules

def test_like_escape_makes_percent_underscore_and_backslash_literal():
    assert search_rules.like_escape("100%_a\\b") == "100\\%\\_a\\\\b"
    q = search_rules.parse_user_query("  Jo_%  ")
    assert q is not None
    assert (q.email_prefix, q.name_part) == ("jo\\_\\%%", "%Jo\\_\\%%")


@pytest.mark.parametrize(("text", "user_id"), [("12", 12), ("#12", 12), ("0012", 12),
                                                ("1" * 18, int("1" * 18)), ("1" * 19, None),
                                                ("١٢", None), ("12a", None), ("#", None)])
def test_an_id_is_digits_as_the_api_writes_them_or_after_a_hash(text, user_id):
    assert search_rules.id_of(text) == user_id


@pytest.mark.parametrize(("raw", "code"), [("", "query_too_short"),
                                           ("   ", "query_too_short"), ("a", "query_too_short"),
                                           ("x" * 255, "query_too_long")])
def test_a_query_too_short_or_too_long_is_refused(raw, code):
    with pytest.raises(Unprocessable) as exc:
        search_rules.parse_user_query(raw)
    assert exc.value.code == code


def test_one_digit_is_a_query_an_id():
    q = search_rules.parse_user_query("7")
    assert q is not None and q.user_id == 7


def test_no_query_at_all_is_every_user():
    assert search_rules.parse_user_query(None) is None


# -- search over HTTP

async def test_search_by_email_exact_or_prefix_in_any_case(app_client):
    admin = await admin_actor(app_client)
    anna = await actor(app_client, email="anna.k@example.com", display_name="Anna K")
    annabel = await actor(app_client, email="annabel@example.org", display_name="Bel")
    await actor(app_client, email="hanna@example.com", display_name="H")

    body = await search(admin, "ANNA.K@Example.COM")
    assert ids(body) == [anna.id]
    assert body["users"][0]["matched"] == "email"
    # A prefix matches the beginning only (hanna@ holds "anna" inside, not at the start);
    # the exact address comes first.
    body = await search(admin, "Anna")
    assert set(ids(body)) == {anna.id, annabel.id}
    assert {u["matched"] for u in body["users"]} <= {"email_prefix", "display_name"}
    assert ids(await search(admin, "annabel@")) == [annabel.id]


async def test_search_by_part_of_a_display_name_in_any_case(app_client):
    admin = await admin_actor(app_client)
    olga = await actor(app_client, "seller", display_name="Olga the Great")
    await actor(app_client, display_name="Someone Else")
    body = await search(admin, "THE gr")
    assert ids(body) == [olga.id]
    hit = body["users"][0]
    assert hit["matched"] == "display_name"
    assert (hit["role"], hit["display_name"], hit["banned"]) == ("seller", "Olga the Great",
                                                                False)
    assert hit["balance"] == {"available": "0", "held": "0", "pending": "0"}


async def test_search_by_id_as_digits_or_with_a_hash_comes_first(app_client):
    admin = await admin_actor(app_client)
    buyer = await actor(app_client)
    await fund(app_client, buyer.id, 250)
    for query in (buyer.id, f"#{buyer.id}"):
        body = await search(admin, query)
        assert body["users"][0]["id"] == buyer.id
        assert body["users"][0]["matched"] == "id"
        assert body["users"][0]["balance"]["available"] == "250"
    assert (await search(admin, "999999"))["users"] == []


async def test_a_hit_says_banned(app_client):
    admin = await admin_actor(app_client)
    buyer = await actor(app_client, display_name="Banned Bob")
    assert (await admin.post(f"/api/admin/users/{buyer.id}/ban",
                             {"reason": "spam"})).status == 200
    hit = (await search(admin, "banned bob"))["users"][0]
    assert hit["banned"] is True and hit["ban_reason"] == "spam"


async def test_percent_and_underscore_in_a_query_match_only_themselves(app_client):
    admin = await admin_actor(app_client)
    percent = await actor(app_client, display_name="100% real")
    await actor(app_client, display_name="1000 real")
    under = await actor(app_client, email="j_doe@example.com", display_name="J Doe")
    await actor(app_client, email="jxdoe@example.com", display_name="Jx Doe")
    slash = await actor(app_client, display_name="back\\slash")
    await actor(app_client, display_name="backXslash")

    assert ids(await search(admin, "0% r")) == [percent.id]
    assert ids(await search(admin, "j_d")) == [under.id]
    assert ids(await search(admin, "k\\s")) == [slash.id]
    # A lone wildcard is a character like any other: no user is named with it.
    assert (await search(admin, "%%"))["users"] == []
    assert (await search(admin, "__"))["users"] == []


async def test_search_pages_through_the_hits_with_limit_and_offset(app_client):
    admin = await admin_actor(app_client)
    made = [(await actor(app_client, display_name=f"Pager {i}")).id for i in range(5)]
    seen: list[str] = []
    offset: int | None = 0
    pages = 0
    while offset is not None:
        body = await search(admin, "pager", limit="2", offset=str(offset))
        assert len(body["users"]) <= 2 and body["limit"] == 2
        seen += ids(body)
        offset = body["next_offset"]
        pages += 1
    assert pages == 3
    assert seen == sorted(made, key=int, reverse=True)  # newest first, each once
    assert len((await search(admin, "pager"))["users"]) == 5  # the default limit is 20
    # Without q: every user, newest first (the operator included), paged the same way.
    resp = await admin.get("/api/admin/users", params={"limit": "3"})
    body = await resp.json()
    assert ids(body) == sorted(made, key=int, reverse=True)[:3] and body["next_offset"] == 3
    assert "matched" not in body["users"][0]


@pytest.mark.parametrize(("params", "code"), [
    ({"q": ""}, "query_too_short"),
    ({"q": "x"}, "query_too_short"),
    ({"q": "x" * 255}, "query_too_long"),
    ({"q": "ab", "limit": "0"}, "invalid_value"),
    ({"q": "ab", "limit": "101"}, "invalid_value"),
    ({"q": "ab", "limit": "ten"}, "invalid_value"),
    ({"q": "ab", "offset": "-1"}, "invalid_value"),
    ({"q": "ab", "offset": "10001"}, "invalid_value"),
])
async def test_bad_search_queries_get_a_clear_422(app_client, params, code):
    admin = await admin_actor(app_client)
    body = await assert_error(await admin.get("/api/admin/users", params=params), 422, code)
    assert body["error"]["message"]


async def test_only_an_admin_searches_and_reads_a_user(app_client):
    buyer = await actor(app_client)
    seller = await actor(app_client, "seller")
    for who in (buyer, seller):
        await assert_error(await who.get("/api/admin/users", params={"q": "ab"}), 403,
                           "wrong_role")
        await assert_error(await who.get(f"/api/admin/users/{buyer.id}"), 403, "wrong_role")
        await assert_error(await who.get("/api/admin/calls"), 403, "wrong_role")
    app_client.session.cookie_jar.clear()  # no session: the cookie of the last login goes
    await assert_error(await app_client.get("/api/admin/users", params={"q": "ab"}), 401)
    await assert_error(await app_client.get("/api/admin/calls"), 401)


async def test_markup_in_a_display_name_comes_back_as_text(app_client):
    admin = await admin_actor(app_client)
    name = '<img src=x onerror="alert(1)">'
    await actor(app_client, display_name=name)
    assert (await search(admin, "<img"))["users"][0]["display_name"] == name


# -- a user's page

def _transfer(txid: str, amount_musdt: int) -> TransferLog:
    return TransferLog(txid=txid, log_index=0, contract="TContract", from_address="TFrom",
                       to_address="TDeposit", amount=amount_musdt)


async def test_a_users_page_shows_balance_calls_deposits_withdrawals_reports_and_audit(
        app_client):
    admin = await admin_actor(app_client)
    buyer, seller, call_id = await billed_call(app_client)
    other = await actor(app_client)
    assert (await buyer.post(f"/api/users/{seller.id}/report",
                             {"reason": "rude"})).status == 204
    assert (await seller.post(f"/api/users/{other.id}/report",
                              {"reason": "spam"})).status == 204
    resp = await seller.post("/api/withdrawals", {"tokens": "400", "address": DEST},
                             headers={"Idempotency-Key": uuid.uuid4().hex})
    assert resp.status in (201, 202), await resp.text()
    wid = (await resp.json())["withdrawal"]["id"]
    txid = "ab" * 32
    await app_client.app[DB].tx(credits.record_transfer_tx, _transfer(txid, 5_000_000), 1,
                                now_ms(), "watcher", now_ms())
    resp = await admin.post(f"/api/admin/deposits/{txid}/assign", {"user_id": seller.id})
    assert resp.status == 200, await resp.text()
    assert (await admin.post(f"/api/admin/withdrawals/{wid}/reject")).status == 200

    resp = await admin.get(f"/api/admin/users/{seller.id}")
    page = await resp.json()
    assert resp.status == 200, page
    user = page["user"]
    assert (user["id"], user["role"], user["banned"], user["withdrawals_blocked"]) == (
        seller.id, "seller", False, False)
    # 450 earned, 400 withdrawn and given back on the rejection, 500 assigned by hand.
    assert user["balance"] == {"available": "950", "held": "0", "pending": "0"}
    [call] = page["calls"]
    assert (call["id"], call["as"], call["charged"], call["state"]) == (
        call_id, "seller", "600", "ended")
    assert call["buyer"]["id"] == buyer.id and call["seller"]["id"] == seller.id
    assert [d["txid"] for d in page["deposits"]] == [txid]
    assert [(w["id"], w["status"]) for w in page["withdrawals"]] == [(wid, "rejected")]
    [about] = page["reports_about"]
    assert (about["reporter"]["id"], about["reason"], about["call_id"]) == (
        buyer.id, "rude", call_id)
    [by] = page["reports_by"]
    assert (by["reported"]["id"], by["reason"], by["call_id"]) == (other.id, "spam", None)
    assert [e["action"] for e in page["audit_log"]] == ["withdrawal.reject", "deposit.assign"]
    assert page["list_limit"] == finder.USER_LIST_LIMIT
    assert not any(page["more"].values())

    # The buyer's side of the same call.
    page = await (await admin.get(f"/api/admin/users/{buyer.id}")).json()
    assert [(c["id"], c["as"]) for c in page["calls"]] == [(call_id, "buyer")]
    assert page["user"]["balance"]["available"] == "400"  # 1000 funded, 600 charged

    # A ban from the user's page is in its audit lines, newest first.
    assert (await admin.post(f"/api/admin/users/{seller.id}/ban",
                             {"reason": "fraud"})).status == 200
    page = await (await admin.get(f"/api/admin/users/{seller.id}")).json()
    assert page["user"]["banned"] is True
    assert page["audit_log"][0]["action"] == "user.ban"
    assert page["audit_log"][0]["reason"] == "fraud"
    await assert_error(await admin.get("/api/admin/users/999999"), 404, "user_not_found")


async def test_each_list_of_a_users_page_is_bounded_and_says_more_exist(app_client):
    admin = await admin_actor(app_client)
    target = await actor(app_client)
    for _ in range(3):
        reporter = await actor(app_client)
        assert (await reporter.post(f"/api/users/{target.id}/report",
                                    {"reason": "x"})).status == 204
    page = await app_client.app[DB].read(finder.user_page, int(target.id), 2)
    assert len(page.reports_about) == 2 and page.more["reports_about"] is True
    assert page.more["reports_by"] is False and page.more["calls"] is False
    body = await (await admin.get(f"/api/admin/users/{target.id}")).json()
    assert len(body["reports_about"]) == 3 and body["more"]["reports_about"] is False


# -- the reports queue

async def test_the_reports_queue_names_both_users_and_the_call(app_client):
    admin = await admin_actor(app_client)
    buyer, seller, call_id = await billed_call(app_client)
    stranger = await actor(app_client, display_name="<b>Stranger</b>")
    assert (await buyer.post(f"/api/users/{seller.id}/report",
                             {"reason": "asked for money off the site"})).status == 204
    assert (await stranger.post(f"/api/users/{buyer.id}/report",
                                {"reason": "odd"})).status == 204
    queue = (await (await admin.get("/api/admin/reports?status=open")).json())["reports"]
    by_reason = {r["reason"]: r for r in queue}
    first = by_reason["asked for money off the site"]
    assert (first["reporter_id"], first["reported_id"], first["call_id"]) == (
        buyer.id, seller.id, call_id)
    assert first["reported_display_name"] == seller.user["display_name"]
    second = by_reason["odd"]
    assert (second["reporter_display_name"], second["call_id"]) == ("<b>Stranger</b>", None)


# -- the calls list

async def test_calls_list_shows_live_calls_and_recent_ones_with_their_parties(
        aiohttp_client, tmp_path):
    clocked = await clocked_app(aiohttp_client, config_for(tmp_path))
    client = clocked.client
    admin = await admin_actor(client)
    _, _, ended_id = await billed_call(client)
    live = await start_live_call(client, 600, funds=1000)
    try:
        await live.run(13)
        body = await (await admin.get("/api/admin/calls?status=live")).json()
        [call] = body["calls"]
        assert (call["id"], call["state"]) == (live.call_id, "live")
        assert call["live_seconds"] >= 12  # the runtime's live time, not the row's lag
        assert call["charged"] != "0"
        assert call["buyer"]["id"] == live.buyer.id
        assert call["seller"]["display_name"] == live.seller.user["display_name"]
        assert body["next_before"] is None

        recent = (await (await admin.get("/api/admin/calls?status=recent")).json())["calls"]
        assert [c["id"] for c in recent] == [ended_id]
        assert (recent[0]["state"], recent[0]["charged"]) == ("ended", "600")
        every = (await (await admin.get("/api/admin/calls")).json())["calls"]
        assert [c["id"] for c in every] == [live.call_id, ended_id]

        # One a page: the next page starts before the last id shown.
        first = await (await admin.get("/api/admin/calls?limit=1")).json()
        assert [c["id"] for c in first["calls"]] == [live.call_id]
        assert first["next_before"] == live.call_id
        nxt = await (await admin.get(f"/api/admin/calls?limit=1&before={live.call_id}")).json()
        assert [c["id"] for c in nxt["calls"]] == [ended_id] and nxt["next_before"] is None
        # Each opens its record.
        resp = await admin.get(f"/api/admin/calls/{live.call_id}/record")
        assert resp.status == 200
    finally:
        await live.close()
    for query in ("status=ended", "limit=0", "limit=201", "before=x", "before=0"):
        await assert_error(await admin.get(f"/api/admin/calls?{query}"), 422)


# -- bans stay behind the operator's second factor

async def test_a_ban_from_a_search_still_needs_the_admins_2fa_code(aiohttp_client, tmp_path):
    cfg = make_config(tmp_path, security={"require_2fa_for_admins": True,
                                          "admin_otp_fresh_minutes": 0})
    client = await aiohttp_client(create_app(cfg))
    admin = await admin_actor(client)
    target = await actor(client, display_name="Spammy Sam")
    hit = (await search(admin, "spammy"))["users"][0]  # reads stay open without 2FA
    ban = f"/api/admin/users/{hit['id']}/ban"
    await assert_error(await admin.post(ban, {"reason": "spam"}), 403, "2fa_required")
    secret, _ = await enable(admin)
    await assert_error(await admin.post(ban, {"reason": "spam"}), 403, "otp_required")
    await assert_error(await admin.post(ban, {"reason": "spam", "otp": "000000"}), 403,
                       "otp_invalid")
    assert (await search(admin, "spammy"))["users"][0]["banned"] is False
    resp = await admin.post(ban, {"reason": "spam", "otp": next_code(secret)})
    assert resp.status == 200, await resp.text()
    assert (await search(admin, target.id))["users"][0]["banned"] is True


@pytest.mark.parametrize("raw", ["%00ab", "%ff%fe", "ab%00", "'%3B DROP TABLE users%3B --",
                                 "%5C%5C", "%5C%25%5C_", "%F0%9F%98%80%F0%9F%98%80",
                                 "a%0Ab", "12%2034", "-1", "%2B1", "1e3", "99999999999999999999"])
async def test_odd_queries_answer_200_or_a_clear_422_never_a_500(app_client, raw):
    admin = await admin_actor(app_client)
    resp = await admin.get(f"/api/admin/users?q={raw}")
    if resp.status != 200:
        await assert_error(resp, 422)
    else:
        assert isinstance((await resp.json())["users"], list)
    assert (await admin.get("/api/admin/users?q=ab")).status == 200  # the table is still there


async def test_an_email_prefix_is_read_from_the_case_free_index(app_client):
    """Migration 0017: the beginning of an address is a range of users_email_nocase, not a
    scan of every user (the display name part has to scan: it matches anywhere)."""
    q = search_rules.parse_user_query("Anna.K")
    assert q is not None
    where = dict(finder._KEYS)["email_prefix"]

    def plan(conn):
        return [r["detail"] for r in conn.execute(
            f"EXPLAIN QUERY PLAN SELECT u.id FROM users u WHERE {where}"
            " ORDER BY u.id DESC LIMIT 21",
            {"id": -1, "email": q.email, "prefix": q.email_prefix})]

    steps = await app_client.app[DB].read(plan)
    assert any("users_email_nocase" in s for s in steps), steps


async def test_pages_run_across_the_keys_each_user_once(app_client):
    admin = await admin_actor(app_client)
    by_email = [(await actor(app_client, email=f"pagex{i}@example.com",
                             display_name=f"Pagex {i}")).id for i in range(2)]
    by_name = [(await actor(app_client, display_name=f"The Pagex {i}")).id for i in range(3)]
    seen: list[str] = []
    matched: list[str] = []
    offset: int | None = 0
    while offset is not None:
        body = await search(admin, "pagex", limit="2", offset=str(offset))
        seen += ids(body)
        matched += [u["matched"] for u in body["users"]]
        offset = body["next_offset"]
    # Emails beginning with it first (their names match too: listed once), then names.
    assert seen == by_email[::-1] + by_name[::-1]
    assert matched == ["email_prefix"] * 2 + ["display_name"] * 3


def test_the_operator_page_never_writes_html_from_strings():
    """Display names and reasons reach the operator's page as text nodes (ui.js h()); no
    code of the operator's page parses a string as HTML."""
    from pathlib import Path

    pages = Path(__file__).resolve().parent.parent / "static" / "js" / "pages"
    for name in ("admin.js", "admin_find.js"):
        source = (pages / name).read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"):
            assert sink not in source, f"{name} uses {sink}"
