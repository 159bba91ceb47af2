"""Text chat in a call over real sockets and real SQLite (calls/chat.py, calls/ws.py): only
the two parties of a call under way, 1..1000 characters, a limit per socket, stored with the
call as the same text, read back by the parties and in the operator's record, and a party's
report of a message to the reports queue."""

from __future__ import annotations

import pytest

from meterchat.appkeys import DB
from meterchat.calls import chat as chat_store
from meterchat.calls.chat import PAGE, ChatTextError, chat_text
from tests.calls_helpers import LiveCall, clocked_app, start_live_call, ws_client
from tests.conftest import (
    actor,
    admin_actor,
    assert_error,
    fast_calls_config,
    fund,
    seller_online,
)

MARKUP = '<b>hi</b><img src=x onerror=alert(1)> & "quotes" \'too\''


async def app_with(aiohttp_client, tmp_path, **calls):
    cfg = fast_calls_config(tmp_path, calls=calls) if calls else fast_calls_config(tmp_path)
    return (await clocked_app(aiohttp_client, cfg)).client


@pytest.fixture
async def app_client(aiohttp_client, tmp_path):
    return await app_with(aiohttp_client, tmp_path)


async def chat(client, call_id: str, text) -> None:
    await client.send({"type": "chat", "call_id": call_id, "text": text})


async def nothing_more(client, type_: str, after: int) -> None:
    """The socket got no `type_` message since index `after`: a ping sent now is answered
    after anything the server had queued for this socket before it."""
    await client.send({"type": "ping"})
    pong_at = len(client.messages)
    await client.next("pong", after=pong_at - 1 if pong_at else 0)
    assert [m for m in client.messages[after:] if m.get("type") == type_] == []


async def messages(who, call_id: str) -> list[dict]:
    resp = await who.get(f"/api/calls/{call_id}/messages")
    assert resp.status == 200, await resp.text()
    return (await resp.json())["messages"]


# ---- the text rule (pure) -----------------------------------------------------------

def test_text_is_trimmed_and_counted_in_characters_not_bytes():
    assert chat_text("  hello \n") == "hello"
    assert chat_text("a\r\nb\rc\td") == "a\nb\nc\td"
    assert chat_text("é" * 1000) == "é" * 1000  # 2000 bytes of UTF-8, 1000 characters
    assert chat_text("😀" * 1000) == "😀" * 1000
    assert chat_text(" " * 50 + "x" * 1000 + " " * 50) == "x" * 1000
    assert chat_text(MARKUP) == MARKUP  # markup is text like any other


@pytest.mark.parametrize(("raw", "code"), [
    ("x" * 1001, "chat_too_long"), ("😀" * 1001, "chat_too_long"),
    ("", "chat_empty"), (" \n\t ", "chat_empty"),
    ("bell\x07", "chat_invalid_text"), ("nul\x00", "chat_invalid_text"),
    ("esc\x1b[31m", "chat_invalid_text"), ("c1\x85 inside", "chat_invalid_text"),
    ("lone \ud800", "chat_invalid_text"),
    (None, "chat_invalid_text"), (12, "chat_invalid_text"), (["hi"], "chat_invalid_text"),
])
def test_bad_text_is_refused_with_a_clear_code(raw, code):
    with pytest.raises(ChatTextError) as err:
        chat_text(raw)
    assert err.value.code == code


# ---- over the socket ----------------------------------------------------------------

async def test_markup_reaches_the_other_party_unchanged_and_both_read_it_back(app_client):
    call = await start_live_call(app_client)
    try:
        await chat(call.bc, call.call_id, MARKUP)
        got = await call.sc.next("chat", call.call_id)
        echo = await call.bc.next("chat", call.call_id)
        assert got == echo
        msg = got["message"]
        assert (msg["text"], msg["from"]) == (MARKUP, call.buyer.id)
        assert msg["id"] and msg["at"].endswith("Z")
        await chat(call.sc, call.call_id, "  I can't hear you  ")
        reply = (await call.bc.next("chat", call.call_id))["message"]
        assert (reply["text"], reply["from"]) == ("I can't hear you", call.seller.id)
        await call.end()
        # After the call both parties read the same messages, oldest first.
        for who in (call.buyer, call.seller):
            assert await messages(who, call.call_id) == [msg, reply]
            resp = await who.get(f"/api/calls/{call.call_id}/messages")
            assert (await resp.json())["more"] is False
        stranger = await actor(app_client)
        await assert_error(await stranger.get(f"/api/calls/{call.call_id}/messages"), 404,
                           "call_not_found")
        await assert_error(await stranger.get("/api/calls/999999/messages"), 404,
                           "call_not_found")
        await assert_error(await stranger.get("/api/calls/x1/messages"), 404,
                           "call_not_found")
        # The operator reads them in the call's record, on which a dispute is decided.
        admin = await admin_actor(app_client)
        resp = await admin.get(f"/api/admin/calls/{call.call_id}/record")
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["messages"] == [msg, reply]
    finally:
        await call.close()


async def test_a_strangers_chat_gets_an_error_and_reaches_nobody(app_client):
    call = await start_live_call(app_client)
    stranger = await actor(app_client)
    other_seller = await seller_online(app_client)
    sx = await ws_client(app_client, stranger)
    ox = await ws_client(app_client, other_seller)
    try:
        b0, s0 = len(call.bc.messages), len(call.sc.messages)
        for who in (sx, ox):
            await chat(who, call.call_id, "hello from outside")
            err = await who.next("error")
            assert err["code"] == "not_your_call"
        await nothing_more(call.bc, "chat", b0)
        await nothing_more(call.sc, "chat", s0)
        assert await messages(call.buyer, call.call_id) == []
    finally:
        for c in (sx, ox):
            await c.close()
        await call.close()


async def test_too_long_empty_or_binary_chat_is_refused_and_nothing_is_stored(app_client):
    call = await start_live_call(app_client)
    try:
        s0 = len(call.sc.messages)
        for text, code in (("x" * 1001, "chat_too_long"), ("   ", "chat_empty"),
                           ("a\x00b", "chat_invalid_text"), (None, "chat_invalid_text")):
            at = len(call.bc.messages)
            await chat(call.bc, call.call_id, text)
            assert (await call.bc.next("error", after=at))["code"] == code
        for bad_id in (None, "abc", 1.5):
            at = len(call.bc.messages)
            await chat(call.bc, bad_id, "hi")
            assert (await call.bc.next("error", after=at))["code"] == "invalid_message"
        at = len(call.bc.messages)
        assert call.bc.ws is not None
        await call.bc.ws.send_bytes(b'{"type": "chat", "call_id": "1", "text": "hi"}')
        assert (await call.bc.next("error", after=at))["code"] == "invalid_message"
        await nothing_more(call.sc, "chat", s0)
        assert await messages(call.buyer, call.call_id) == []
        # 1000 characters of two bytes each are within the limit.
        await chat(call.bc, call.call_id, "é" * 1000)
        assert (await call.sc.next("chat", call.call_id))["message"]["text"] == "é" * 1000
    finally:
        await call.close()


async def test_past_the_limit_per_socket_chat_is_refused(aiohttp_client, tmp_path):
    client = await app_with(aiohttp_client, tmp_path, chat_messages_per_10s=3)
    call = await start_live_call(client)
    try:
        for i in range(3):
            await chat(call.bc, call.call_id, f"m{i}")
            await call.sc.next("chat", call.call_id, after=0)
        at, s0 = len(call.bc.messages), len(call.sc.messages)
        await chat(call.bc, call.call_id, "one too many")
        assert (await call.bc.next("error", after=at))["code"] == "chat_rate_limited"
        await nothing_more(call.sc, "chat", s0)
        assert [m["text"] for m in await messages(call.buyer, call.call_id)] == [
            "m0", "m1", "m2"]
        # The limit is the socket's: the other party still writes.
        at = len(call.bc.messages)
        await chat(call.sc, call.call_id, "I still can")
        got = await call.bc.next("chat", call.call_id, after=at)
        assert got["message"]["text"] == "I still can"
    finally:
        await call.close()


async def test_no_chat_in_a_ringing_call_nor_once_the_call_has_ended(app_client):
    seller = await seller_online(app_client)
    sc = await ws_client(app_client, seller)
    buyer = await actor(app_client)
    await fund(app_client, buyer.id, 1000)
    bc = await ws_client(app_client, buyer)
    try:
        resp = await buyer.post("/api/calls", {"seller_id": seller.id, "rate": 600})
        ringing = (await resp.json())["call"]["id"]
        await chat(bc, ringing, "pick up!")
        assert (await bc.next("error"))["code"] == "invalid_state"
        await buyer.post(f"/api/calls/{ringing}/end")
        from tests.calls_helpers import call_between
        call: LiveCall = await call_between(app_client, buyer, seller, bc, sc)
        await call.end()
        s0, b0 = len(sc.messages), len(bc.messages)
        await chat(bc, call.call_id, "are you still there?")
        assert (await bc.next("error", after=b0))["code"] == "not_your_call"
        await nothing_more(sc, "chat", s0)
        assert await messages(buyer, call.call_id) == []
        assert await messages(buyer, ringing) == []
    finally:
        for c in (bc, sc):
            await c.close()


async def test_a_paused_call_still_chats(app_client):
    call = await start_live_call(app_client)
    try:
        call.buyer_beats = False  # the buyer's media stops: the call pauses
        await call.run(2.5)
        paused = await call.wait_state("paused", client=call.sc)
        assert paused["paused_by"] == "buyer"
        await chat(call.bc, call.call_id, "my video froze, wait")
        got = await call.sc.next("chat", call.call_id)
        assert got["message"]["text"] == "my video froze, wait"
    finally:
        await call.close()


async def test_the_history_comes_in_pages_of_500(app_client):
    call = await start_live_call(app_client)
    try:
        def many(conn):
            for i in range(PAGE + 1):
                chat_store.add_message_tx(conn, int(call.call_id), int(call.buyer.id),
                                          f"line {i}", 1_000 + i)
        await app_client.app[DB].tx(many)
    finally:
        await call.close()
    path = f"/api/calls/{call.call_id}/messages"
    first = await (await call.seller.get(path)).json()
    assert len(first["messages"]) == PAGE and first["more"] is True
    assert first["messages"][0]["text"] == "line 0"
    last = first["messages"][-1]["id"]
    rest = await (await call.seller.get(f"{path}?after={last}")).json()
    assert [m["text"] for m in rest["messages"]] == [f"line {PAGE}"] and rest["more"] is False
    for bad in ("abc", "-1", "1.5"):
        await assert_error(await call.seller.get(f"{path}?after={bad}"), 422, "invalid_value")


# ---- reporting a message ------------------------------------------------------------

async def test_a_party_reports_the_other_partys_message_to_the_reports_queue(app_client):
    call = await start_live_call(app_client)
    try:
        await chat(call.bc, call.call_id, MARKUP)
        mid = (await call.sc.next("chat", call.call_id))["message"]["id"]
    finally:
        await call.close()
    path = f"/api/calls/{call.call_id}/messages/{mid}/report"
    # Not one's own message, not a message of another call, not as a stranger.
    await assert_error(await call.buyer.post(path, {"reason": "me"}), 422, "invalid_target")
    stranger = await actor(app_client)
    await assert_error(await stranger.post(path, {"reason": "x"}), 404, "call_not_found")
    await assert_error(await call.seller.post(
        f"/api/calls/{call.call_id}/messages/999999/report", {}), 404, "message_not_found")
    await assert_error(await call.seller.post(
        f"/api/calls/{call.call_id}/messages/abc/report", {}), 404, "message_not_found")
    await assert_error(await call.seller.post(path, {"reason": 5}), 422)
    resp = await call.seller.post(path, {"reason": "abusive"})
    assert resp.status == 204, await resp.text()
    resp = await call.seller.post(path, {"reason": "again"})  # once is enough
    assert resp.status == 204, await resp.text()
    admin = await admin_actor(app_client)
    resp = await admin.get("/api/admin/reports?status=open")
    reports = [r for r in (await resp.json())["reports"] if r["reporter_id"] == call.seller.id]
    assert len(reports) == 1
    r = reports[0]
    assert (r["reported_id"], r["reason"]) == (call.buyer.id, "abusive")
    assert r["message"]["id"] == mid and r["message"]["text"] == MARKUP
    assert r["message"]["call_id"] == call.call_id
    # A report about a user alone carries no message.
    resp = await call.buyer.post(f"/api/users/{call.seller.id}/report", {"reason": "rude"})
    assert resp.status == 204
    resp = await admin.get("/api/admin/reports?status=open")
    plain = [x for x in (await resp.json())["reports"] if x["reporter_id"] == call.buyer.id]
    assert plain[0]["message"] is None
