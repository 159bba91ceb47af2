"""Webhooks against a real HTTP receiver on loopback: every event signed with the configured
secret; a receiver answering 500, then down, then up gets every event in order with the same
ids; a slow receiver delays no other webhook; an event past its age is dead, shown, and sent
again by the operator; a secret that is not set stops start-up."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from meterchat.app import create_app
from meterchat.appkeys import DB
from meterchat.core.config import ConfigError
from meterchat.core.db import now_ms
from meterchat.events import outbox, rules
from tests.conftest import admin_actor, assert_error, eventually, make_config
from tests.events_helpers import FAST_EVENTS, SECRET, SECRET_ENV, Receiver, webhook

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _secret(monkeypatch):
    monkeypatch.setenv(SECRET_ENV, SECRET)


@pytest.fixture
async def receiver():
    r = await Receiver().start()
    yield r
    await r.stop()


def hooked_config(tmp_path, *hooks, **events):
    return make_config(tmp_path, events={**FAST_EVENTS, **events}).replace(
        webhooks=list(hooks))


async def emit(app, n: int, type: str = "report.opened") -> list[outbox.Event]:
    out = []
    for i in range(n):
        out.append(await app[DB].tx(outbox.emit_tx, type, {"report_id": str(i)}, now_ms()))
    return out


async def test_every_event_arrives_signed_with_the_configured_secret(aiohttp_client, tmp_path,
                                                                    receiver):
    client = await aiohttp_client(create_app(hooked_config(tmp_path, webhook(receiver.url))))
    sent = await emit(client.app, 3)
    await eventually(lambda: _count(receiver, 3))
    for got, e in zip(receiver.delivered(), sent, strict=True):
        assert got.event_id == e.id and got.event_type == "report.opened"
        assert got.event == {"id": e.id, "type": "report.opened", "at": e.document()["at"],
                             "data": {"report_id": e.data["report_id"]}}
        assert rules.verify(SECRET.encode(), got.signature, got.body, int(time.time())).ok
        assert not rules.verify(b"another secret", got.signature, got.body,
                                int(time.time())).ok
        t = int(got.signature.split(",")[0].removeprefix("t="))
        assert abs(t - time.time()) < 60


async def _count(receiver: Receiver, n: int) -> bool:
    return len(receiver.delivered()) >= n


async def _unique(receiver: Receiver, n: int) -> bool:
    return len(set(receiver.delivered_ids())) >= n


async def test_a_receiver_failing_then_down_then_up_gets_every_event_in_order_same_ids(
        aiohttp_client, tmp_path, receiver):
    receiver.answer = lambda got, event_id: 500
    client = await aiohttp_client(create_app(hooked_config(tmp_path, webhook(receiver.url))))
    sent = await emit(client.app, 5)
    await eventually(lambda: _attempts(client.app, "failed", 3))
    # Only the first event is tried while it fails: the later ones wait behind it.
    assert {r.event_id for r in receiver.got} == {sent[0].id}
    await receiver.stop()
    before = await _attempt_rows(client.app)

    async def refused_while_down():
        rows = await _attempt_rows(client.app)
        return any(r["http_status"] is None and r["error"] for r in rows[len(before):])

    await eventually(refused_while_down)
    receiver.answer = lambda got, event_id: 200
    await receiver.start()
    await eventually(lambda: _count(receiver, 5))
    await asyncio.sleep(0.2)  # a few more passes: nothing is delivered twice
    assert receiver.delivered_ids() == [e.id for e in sent]
    assert {r.event_id for r in receiver.got} == {e.id for e in sent}
    rows = await _attempt_rows(client.app)
    assert [r["outcome"] for r in rows if r["event_row"] != sent[0].row] == ["delivered"] * 4


async def _attempt_rows(app) -> list:
    return await app[DB].fetchall("SELECT event_row, outcome, http_status, error FROM"
                                  " event_attempts ORDER BY id")


async def _attempts(app, outcome: str, n: int) -> bool:
    return sum(r["outcome"] == outcome for r in await _attempt_rows(app)) >= n


async def test_a_slow_receiver_delays_no_other_webhook(aiohttp_client, tmp_path, receiver):
    slow = Receiver(hold=asyncio.Event())
    await slow.start()
    try:
        cfg = hooked_config(tmp_path, webhook(slow.url), webhook(receiver.url),
                            webhook_timeout_s=0.5)
        client = await aiohttp_client(create_app(cfg))
        sent = await emit(client.app, 4)
        await eventually(lambda: _count(receiver, 4))
        assert receiver.delivered_ids() == [e.id for e in sent]
        assert slow.delivered() == []

        async def timed_out():
            rows = await client.app[DB].fetchall(
                "SELECT error FROM event_attempts WHERE webhook = ?", (slow.url,))
            return any("no answer within" in (r["error"] or "") for r in rows)

        await eventually(timed_out)
        slow.hold.set()
        await eventually(lambda: _count(slow, 4))
        # The POSTs our side gave up on were answered late: at least once, the same ids, so
        # the receiver drops the repeats.
        assert list(dict.fromkeys(slow.delivered_ids())) == [e.id for e in sent][
            :len(set(slow.delivered_ids()))]
        await eventually(lambda: _unique(slow, 4))
        assert list(dict.fromkeys(slow.delivered_ids())) == [e.id for e in sent]
    finally:
        await slow.stop()


async def test_a_webhook_gets_only_the_types_it_names(aiohttp_client, tmp_path, receiver):
    cfg = hooked_config(tmp_path, webhook(receiver.url, ["dispute.opened"]))
    client = await aiohttp_client(create_app(cfg))
    await emit(client.app, 2)
    [wanted] = await emit(client.app, 1, "dispute.opened")
    await eventually(lambda: _count(receiver, 1))
    await asyncio.sleep(0.2)
    assert receiver.delivered_ids() == [wanted.id]


async def test_an_event_past_its_age_is_dead_shown_and_resent_by_the_operator(
        aiohttp_client, tmp_path, receiver):
    receiver.answer = lambda got, event_id: 503
    # Dead 0.36 s after it happened.
    cfg = hooked_config(tmp_path, webhook(receiver.url), max_age_hours=0.0001)
    client = await aiohttp_client(create_app(cfg))
    admin = await admin_actor(client)
    first, second = await emit(client.app, 2)

    async def both_dead():
        body = await (await admin.get("/api/admin/events?status=dead")).json()
        return body if len(body["events"]) == 2 else None

    body = await both_dead() or await eventually(both_dead)
    # The dead first one no longer held the second: it was tried too.
    assert {r.event_id for r in receiver.got} == {first.id, second.id}
    shown = {e["id"]: e for e in body["events"]}
    d = shown[first.id]["deliveries"][0]
    assert d["status"] == "dead" and d["webhook"] == receiver.url
    assert d["last_http_status"] == 503 and d["attempts"] >= 1
    assert shown[first.id]["attempts"][0]["http_status"] == 503
    assert body["webhooks"] == [{"url": receiver.url, "events": list(rules.TYPES)}]
    # /metrics counts them (deploy/meterchat-alerts.yml's WebhookEventsDead reads it).
    metrics = await (await client.get("/metrics")).text()
    assert 'meterchat_event_deliveries{status="dead"} 2.0' in metrics

    receiver.answer = lambda got, event_id: 200
    resp = await admin.post(f"/api/admin/events/{first.id}/resend", {})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["resent_to"] == [receiver.url]
    await eventually(lambda: _count(receiver, 1))
    assert receiver.delivered_ids() == [first.id]
    listed = await (await admin.get("/api/admin/events")).json()
    assert [e["id"] for e in listed["events"]] == [second.id, first.id]
    assert listed["events"][1]["deliveries"][0]["status"] == "delivered"
    assert listed["deliveries"] == {"pending": 0, "delivered": 1, "dead": 1}

    await assert_error(await admin.post("/api/admin/events/evt_00/resend", {}), 404,
                       "event_not_found")
    await assert_error(await admin.post("/api/admin/events/nonsense/resend", {}), 404,
                       "event_not_found")
    await assert_error(await admin.get("/api/admin/events?type=nope"), 422, "invalid_type")
    await assert_error(await admin.get("/api/admin/events?status=nope"), 422,
                       "invalid_status")
    log = await (await admin.get("/api/admin/audit-log")).json()
    assert any(line["action"] == "event.resend" for line in log["entries"])


async def test_a_webhook_secret_that_is_not_set_stops_start_up(tmp_path, monkeypatch):
    from meterchat.events.sender import hooks_from_config

    monkeypatch.delenv(SECRET_ENV)
    cfg = hooked_config(tmp_path, webhook("http://127.0.0.1:9/hook"))
    with pytest.raises(ConfigError, match=r"webhooks\[0\]\.secret_env.*" + SECRET_ENV):
        hooks_from_config(cfg)
    hooks = hooks_from_config(cfg, {SECRET_ENV: "x" * 8})
    assert "x" * 8 not in repr(hooks) and "x" * 8 not in str(hooks)


def test_meterchat_events_verify_checks_a_signature(tmp_path):
    body = json.dumps({"id": "evt_1", "type": "deposit.credited"}).encode()
    header = rules.signature_header(SECRET.encode(), int(time.time()), body)

    def verify(header: str, data: bytes) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "meterchat.cli", "events", "verify", "--secret-env",
             SECRET_ENV, "--header", header], input=data, capture_output=True, cwd=ROOT,
            env={"PATH": "/usr/bin:/bin", SECRET_ENV: SECRET, "PYTHONPATH": str(ROOT)},
            timeout=60)

    ok = verify(header, body)
    assert ok.returncode == 0 and "valid" in ok.stdout.decode()
    assert verify(header, body + b"x").returncode == 1
    old = rules.signature_header(SECRET.encode(), int(time.time()) - 3600, body)
    bad = verify(old, body)
    assert bad.returncode == 1 and "replay" in bad.stderr.decode()


def test_the_readmes_few_lines_of_python_verify_a_signature():
    text = (ROOT / "README.md").read_text()
    code = text.split("Verifying a signature on the receiving side")[1].split("```python")[1]
    scope: dict = {}
    exec(code.split("```")[0], scope)  # noqa: S102 - our own README's example
    body = b'{"id":"evt_1","type":"deposit.credited"}'
    now = int(time.time())
    assert scope["verify"](SECRET.encode(), rules.signature_header(SECRET.encode(), now, body),
                           body)
    assert not scope["verify"](b"wrong", rules.signature_header(SECRET.encode(), now, body),
                               body)
    old = rules.signature_header(SECRET.encode(), now - 3600, body)
    assert not scope["verify"](SECRET.encode(), old, body)


async def test_meterchat_events_list_shows_events_and_their_deliveries(aiohttp_client,
                                                                       tmp_path, receiver):
    client = await aiohttp_client(create_app(hooked_config(tmp_path, webhook(receiver.url))))
    [e] = await emit(client.app, 1)
    await eventually(lambda: _count(receiver, 1))
    cfg = tmp_path / "m.toml"
    cfg.write_text(f'[database]\npath = "{tmp_path / "meterchat.sqlite3"}"\n')
    out = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "meterchat.cli", "events", "list", "--config",
                         str(cfg)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    [line] = [json.loads(x) for x in out.stdout.splitlines()]
    assert line["id"] == e.id and line["type"] == "report.opened"
    assert [(d["webhook"], d["status"]) for d in line["deliveries"]] == [
        (receiver.url, "delivered")]
