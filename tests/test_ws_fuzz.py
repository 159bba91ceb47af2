"""WebSocket fuzzing: malformed JSON, wrong types, oversized and unknown messages, messages
out of order (a signal before any call, media for someone else's call, accepting twice)
and floods, sent by an attacker who is also a party to a call of their own. Throughout,
the server stays up, every bad message is answered with an `error` and the socket stays
open, nothing is logged as a server error, and a bystander's live call goes on untouched:
its state, its billing and its sockets see nothing of the attack."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meterchat.app import create_app
from tests.calls_helpers import start_live_call, ws_client
from tests.conftest import actor, audit_ok, fast_calls_config

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12,
)

# Real time on purpose (sockets, timers, child processes): tests/conftest.py starts these
# files first, so their waits overlap the other files' work.
pytestmark = pytest.mark.slow
CALL_IDS = st.one_of(st.integers(), st.text(max_size=30), st.floats(allow_nan=True),
                     st.none(), st.booleans(), st.lists(st.integers(), max_size=2),
                     st.sampled_from(["1", "2", "-1", "0", "01", " 1", "1e3", "9" * 5000]))


def _message(call_ids: st.SearchStrategy) -> st.SearchStrategy:
    typed = st.fixed_dictionaries(
        {"type": st.sampled_from(["signal", "media", "ping", "call.accept", "", "SIGNAL"]),
         "call_id": call_ids},
        optional={"data": JSON, "state": st.one_of(st.sampled_from(["connected",
                                                                    "disconnected"]), JSON),
                  "stats": st.one_of(JSON, st.fixed_dictionaries(
                      {"bytes_received": st.one_of(st.integers(), JSON),
                       "frames_decoded": st.one_of(st.integers(), JSON)}))},
    )
    return st.one_of(typed, JSON, st.dictionaries(st.text(max_size=10), JSON, max_size=5))


CALM_TIMERS = {"media_timeout_s": 10, "reconnect_grace_s": 30}


@pytest.fixture
async def app_client(aiohttp_client, tmp_path):
    # The bystander's heartbeats share this process with the attack and its answers: on a
    # machine busy with the rest of the suite they may lag more than the tests' 1.5-s media
    # timeout. The timers are not what this file tests; an attack that touched the call
    # would still show in its state and in its sockets' messages.
    cfg = fast_calls_config(tmp_path, server={"ws_messages_per_10s": 100_000,
                                              "ws_max_message_bytes": 4096},
                            billing=CALM_TIMERS)
    return await aiohttp_client(create_app(cfg))


class Scene:
    """A bystander's live call, an attacker in a live call of their own, and a stranger."""

    def __init__(self, app_client, bystander, attacker, stranger, sc) -> None:
        self.app_client = app_client
        self.bystander = bystander
        self.attacker = attacker
        self.stranger = stranger
        self.sc = sc

    @property
    def ids(self) -> list[str]:
        return [self.bystander.call_id, self.attacker.call_id]


@pytest.fixture
async def scene(app_client, caplog):
    bystander = await start_live_call(app_client, rate=600, funds=1000)
    attacker = await start_live_call(app_client, rate=300, funds=1000)
    stranger = await actor(app_client)
    sc = await ws_client(app_client, stranger)
    yield Scene(app_client, bystander, attacker, stranger, sc)
    await sc.close()
    for live in (bystander, attacker):
        await live.close()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


async def _answers_ping(client) -> None:
    await client.send({"type": "ping"})
    await client.next("pong", within=5)
    assert not client.ws.closed


async def _unaffected(scene: Scene) -> None:
    """The bystander's call is live, billed as usual, and saw no foreign message."""
    b = scene.bystander
    call = (await (await b.buyer.get(f"/api/calls/{b.call_id}")).json())["call"]
    assert call["state"] == "live", (call.get("end_reason"), call.get("paused_by"), call)
    for c in (b.bc, b.sc):
        assert [m for m in c.seen("signal")] == []
        assert all(m.get("call_id", b.call_id) == b.call_id for m in c.messages
                   if m["type"] in ("meter", "call.state", "call.ended")), c.messages
        assert c.seen("call.ended") == []
        assert not c.ws.closed


async def test_fuzzed_messages_get_errors_and_change_nothing(scene):
    attacker = scene.attacker

    batches: list[list] = []

    # hypothesis generates the messages (it cannot drive a coroutine itself); they are
    # all sent afterwards, over the same sockets, so the attack accumulates.
    @settings(max_examples=60, suppress_health_check=list(HealthCheck), derandomize=True,
              database=None)
    @given(batch=st.lists(_message(st.one_of(CALL_IDS, st.sampled_from(scene.ids))),
                          min_size=1, max_size=20))
    def collect(batch):
        batches.append(batch)

    collect()
    for batch in batches:
        for c in (attacker.bc, attacker.sc, scene.sc):
            for m in batch:
                await c.ws.send_str(json.dumps(m))
            await _answers_ping(c)
    await _unaffected(scene)
    # The bystander's billing goes on through the attack.
    b = scene.bystander
    meter = await b.bc.next("meter", b.call_id, within=10)
    assert meter["billed_tenths"] >= 1
    await audit_ok(scene.app_client)


async def test_malformed_and_oversized_frames(scene):
    c = scene.sc
    cases = [
        ("{not json", "invalid_json"),
        ("", "invalid_json"),
        ("\x00\x01", "invalid_json"),
        ("null", "invalid_message"),
        ("[]", "invalid_message"),
        ('"signal"', "invalid_message"),
        ("1e999", "invalid_message"),
        ("{}", "unknown_type"),
        ('{"type": null}', "unknown_type"),
        ('{"type": ["signal"]}', "unknown_type"),
        ("[" * 4000, "invalid_json"),  # nesting deeper than the JSON parser recurses
        ('{"type": "media", "call_id": Infinity, "state": "connected"}', "invalid_message"),
        ('{"type": "signal", "call_id": -Infinity, "data": 1}', "invalid_message"),
        ('{"type": "signal", "call_id": NaN, "data": 1}', "invalid_message"),
        ('{"type": "signal", "call_id": 1.5, "data": 1}', "invalid_message"),
        ('{"type": "signal", "call_id": true, "data": 1}', "invalid_message"),
        ('{"type": "media", "call_id": "' + "9" * 5000 + '"}', "message_too_large"),
        ('{"type": "media", "call_id": "' + "9" * 3000 + '"}', "invalid_message"),
        ("x" * 5000, "message_too_large"),
    ]
    for text, code in cases:
        await c.ws.send_str(text)
        got = await c.next("error", within=5)
        assert got["code"] == code, (text[:60], got)
        assert isinstance(got["message"], str) and got["message"]
    await c.ws.send_bytes(b"\xff" * 10)
    assert (await c.next("error", within=5))["code"] == "invalid_message"
    await _answers_ping(c)
    await _unaffected(scene)


async def test_out_of_order_messages(scene):
    a, b = scene.attacker, scene.bystander
    x = scene.sc
    # A signal and media before being in any call, and for someone else's call.
    for msg in ({"type": "signal", "call_id": b.call_id, "data": {"sdp": "evil"}},
                {"type": "media", "call_id": b.call_id, "state": "disconnected"},
                {"type": "media", "call_id": b.call_id, "state": "connected",
                 "stats": {"bytes_received": 0, "frames_decoded": 0}}):
        for c in (x, a.bc, a.sc):
            await c.send(msg)
            assert (await c.next("error", within=5))["code"] == "not_your_call"
    # Signal without data, media with a bad state or counters, for one's own call.
    for msg, code in (({"type": "signal", "call_id": a.call_id}, "invalid_message"),
                      ({"type": "media", "call_id": a.call_id, "state": "up"},
                       "invalid_message"),
                      ({"type": "media", "call_id": a.call_id, "state": "connected",
                        "stats": {"bytes_received": -1}}, "invalid_message"),
                      ({"type": "media", "call_id": a.call_id, "state": "connected",
                        "stats": [1, 2]}, "invalid_message")):
        await a.bc.send(msg)
        assert (await a.bc.next("error", within=5))["code"] == code
    # Accepting twice, accepting someone else's call, ending someone else's call.
    resp = await a.seller.post(f"/api/calls/{a.call_id}/accept")
    assert resp.status == 409
    for who in (a.buyer, a.seller, scene.stranger):
        for action in ("accept", "decline", "end"):
            resp = await who.post(f"/api/calls/{b.call_id}/{action}")
            assert resp.status == 404, (action, await resp.text())
    await _unaffected(scene)


async def test_floods_are_limited_and_the_bystander_goes_on(aiohttp_client, tmp_path, caplog):
    cfg = fast_calls_config(tmp_path, server={"ws_messages_per_10s": 50}, billing=CALM_TIMERS)
    app_client = await aiohttp_client(create_app(cfg))
    bystander = await start_live_call(app_client, rate=600, funds=1000)
    attacker = await actor(app_client)
    sockets = [await ws_client(app_client, attacker) for _ in range(3)]
    try:
        big = json.dumps({"type": "signal", "call_id": bystander.call_id,
                          "data": "x" * 70_000})
        for _ in range(100):
            for c in sockets:
                await c.ws.send_str(big)
                await c.ws.send_str('{"type": "ping"}')
        await asyncio.sleep(0.5)
        for c in sockets:
            codes = {m["code"] for m in c.seen("error")}
            assert "rate_limited" in codes and "message_too_large" in codes, codes
            assert not c.ws.closed
        scene = Scene(app_client, bystander, None, attacker, None)
        await _unaffected(scene)
        first = await bystander.bc.next("meter", bystander.call_id, within=10)
        later = await bystander.bc.next("meter", bystander.call_id, within=10)
        assert later["billed_tenths"] > first["billed_tenths"]
        resp = await bystander.buyer.get("/api/health")
        assert resp.status == 200
    finally:
        for c in sockets:
            await c.close()
        await bystander.close()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
    await audit_ok(app_client)
