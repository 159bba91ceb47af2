"""Alert mails to operator.alert_emails through the mail outbox and a real SMTP server
(aiosmtpd): the first event of a type goes at once, later ones of that type wait for the
batch period and then come in one mail; another type is not held by it."""

from __future__ import annotations

import asyncio

from meterchat.app import create_app
from meterchat.appkeys import DB
from meterchat.core.db import Database, now_ms
from meterchat.events import alerts, outbox
from meterchat.mail import messages
from meterchat.mail import outbox as mail_outbox
from tests.conftest import make_config
from tests.mail_helpers import SmtpServer

OPS = ("ops@example.com", "oncall@example.com")
BASE = "https://chat.example.com"


def test_an_alert_lists_each_event_of_its_type():
    m = messages.event_alert("deposit.unmatched", [
        ("evt_1", "2026-01-01T00:00:00.000Z", "amount_usdt: 7, txid: <abc>"),
        ("evt_2", "2026-01-01T00:01:00.000Z", "amount_usdt: 8, txid: def")],
        "https://chat.example.com")
    assert m.subject == "[meterchat] deposit.unmatched (2)"
    assert "evt_1" in m.text and "evt_2" in m.text and "txid: <abc>" in m.text
    assert "&lt;abc&gt;" in m.html and "<abc>" not in m.html
    assert "https://chat.example.com/#/admin" in m.text


async def test_alerts_at_most_one_mail_per_type_per_period_by_the_clock(tmp_path):
    db = Database(tmp_path / "meterchat.sqlite3")
    await db.open()
    try:
        period, t0 = 5 * 60_000, 1_000_000_000
        await db.tx(outbox.start_cursors_tx, [alerts.START], t0)
        first = await db.tx(outbox.emit_tx, "deposit.unmatched", {"txid": "a"}, t0)
        assert await db.tx(alerts.mail_due_tx, OPS, period, t0, BASE) == 2
        later = [await db.tx(outbox.emit_tx, "deposit.unmatched", {"txid": t}, t0 + 1)
                 for t in "bcd"]
        for at in (t0 + 1, t0 + period - 1):
            assert await db.read(alerts.due_types, at, period) == []
            assert await db.tx(alerts.mail_due_tx, OPS, period, at, BASE) == 0
        assert await db.tx(alerts.mail_due_tx, OPS, period, t0 + period, BASE) == 2
        mails = await db.read(mail_outbox.listing)
        assert [m.subject for m in mails] == ["[meterchat] deposit.unmatched (3)"] * 2 + [
            "[meterchat] deposit.unmatched (1)"] * 2
        assert all(e.id in mails[0].body_text for e in later)
        assert first.id not in mails[0].body_text
    finally:
        await db.close()


async def test_alert_mails_are_batched_per_type(aiohttp_client, tmp_path):
    smtp = SmtpServer().start()
    try:
        cfg = make_config(tmp_path, mail=smtp.mail_config,
                          operator={"alert_emails": list(OPS), "alert_batch_minutes": 0.02},
                          events={"deliver_interval_s": 0.05})
        client = await aiohttp_client(create_app(cfg))
        db = client.app[DB]

        async def emit(type: str, n: int) -> list[outbox.Event]:
            return [await db.tx(outbox.emit_tx, type, {"n": str(i)}, now_ms())
                    for i in range(n)]

        [first] = await emit("report.opened", 1)
        got = await asyncio.to_thread(smtp.inbox.wait_for, OPS[0])
        assert got[0]["Subject"] == "[meterchat] report.opened (1)"
        assert first.id in got[0].get_body(("plain",)).get_content()
        held = await emit("report.opened", 3)
        [other] = await emit("dispute.opened", 1)
        got = await asyncio.to_thread(smtp.inbox.wait_for, OPS[1], 3)
        subjects = sorted(m["Subject"] for m in got)
        assert subjects == ["[meterchat] dispute.opened (1)", "[meterchat] report.opened (1)",
                            "[meterchat] report.opened (3)"]
        batch = next(m for m in got if m["Subject"] == "[meterchat] report.opened (3)")
        text = batch.get_body(("plain",)).get_content()
        assert all(e.id in text for e in held) and first.id not in text
        reports = [m for m in await db.read(mail_outbox.listing)
                   if m.to_address == OPS[1] and m.subject.startswith("[meterchat] report")]
        assert reports[0].created_at_ms - reports[1].created_at_ms >= 0.02 * 60_000
        assert other.id in next(m for m in got if "dispute" in m["Subject"]).get_body(
            ("plain",)).get_content()
    finally:
        smtp.stop()
