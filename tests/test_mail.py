"""Mail: the outbox written in the transaction of the change, the SMTP sender job with
retries (delivered after the server comes back), plain-text and HTML parts, links on
mail.public_url, `meterchat mail list`. A real SMTP server on loopback (aiosmtpd) receives."""

from __future__ import annotations

import asyncio
import json

import pytest

from meterchat.app import create_app
from meterchat.appkeys import DB
from meterchat.core.config import config_from_dict
from meterchat.core.db import connect_sync, migrate_sync, now_ms, run_read, run_tx
from meterchat.core.jobs import JOBS
from meterchat.mail import messages, outbox
from meterchat.mail.sender import MAIL_SENDER, MailSender
from tests.conftest import make_config
from tests.mail_helpers import (
    Login,
    SmtpServer,
    free_port,
    html_part,
    link_in,
    self_signed_cert,
    text_part,
)


@pytest.fixture
def smtp():
    server = SmtpServer().start()
    yield server
    server.stop()


def test_messages_have_text_and_html_with_escaped_values_and_public_links():
    m = messages.verify_email("https://chat.example.com/", "<b>Ann</b>", "t/k+n", 72)
    assert "Hello <b>Ann</b>" in m.text
    assert "&lt;b&gt;Ann&lt;/b&gt;" in m.html and "<b>Ann</b>" not in m.html
    assert "https://chat.example.com/#/verify?token=t%2Fk%2Bn" in m.text
    assert 'href="https://chat.example.com/#/verify?token=t%2Fk%2Bn"' in m.html
    r = messages.password_reset("https://x.test", "abc", 60)
    assert "https://x.test/#/reset?token=abc" in r.text and "60 minutes" in r.text


def test_public_base_url_falls_back_to_server_then_listen_address():
    assert messages.public_base_url("https://m.test/", "https://s.test", "h", 1) == "https://m.test"
    assert messages.public_base_url("", "https://s.test", "h", 1) == "https://s.test"
    assert messages.public_base_url("", "", "127.0.0.1", 8080) == "http://127.0.0.1:8080"


def test_retry_wait_doubles_up_to_the_cap():
    assert [outbox.retry_wait_ms(n, 1000, 5000) for n in (1, 2, 3, 4, 50)] == [
        1000, 2000, 4000, 5000, 5000]


def _db(tmp_path):
    conn = connect_sync(tmp_path / "m.sqlite3")
    migrate_sync(conn)
    return conn


def _enqueue(conn, to, n=1):
    ids = []
    for i in range(n):
        msg = messages.password_changed(f"changed #{i}")
        ids.append(run_tx(conn, outbox.enqueue_tx, to, msg, now_ms()))
    return ids


def _mail_cfg(**keys):
    return config_from_dict({"mail": keys}, __import__("pathlib").Path(".")).mail


class _SyncDb:
    """The Database interface over one sqlite3 connection (read/tx), for the sender alone."""

    def __init__(self, conn):
        self.conn = conn

    async def read(self, fn, *a):
        return run_read(self.conn, fn, *a)

    async def tx(self, fn, *a):
        return run_tx(self.conn, fn, *a)


async def test_sender_delivers_both_parts_and_marks_sent(tmp_path, smtp):
    conn = _db(tmp_path)
    ids = _enqueue(conn, "ann@example.com", 2)
    sender = MailSender(_SyncDb(conn), _mail_cfg(**smtp.mail_config))
    assert await sender.run_once() == 2
    got = smtp.inbox.to("ann@example.com")
    assert len(got) == 2
    assert got[0]["From"] == "meterchat <no-reply@chat.example.com>"
    assert got[0]["Subject"] == "Your password was changed"
    assert got[0].get_content_type() == "multipart/alternative"
    assert "changed #0" in text_part(got[0]) and "<p>" in html_part(got[0])
    rows = run_read(conn, outbox.listing)
    assert {r.id for r in rows} == set(ids) and {r.status for r in rows} == {"sent"}
    assert await sender.run_once() == 0  # nothing sent twice


async def test_server_down_loses_nothing_and_delivers_when_it_is_back(tmp_path):
    conn = _db(tmp_path)
    port = free_port()
    [mid] = _enqueue(conn, "bob@example.com")
    sender = MailSender(_SyncDb(conn), _mail_cfg(smtp_host="127.0.0.1", smtp_port=port,
                                                 smtp_tls="none", send_interval_s=0.05,
                                                 smtp_timeout_s=2))
    assert await sender.run_once() == 0
    [row] = run_read(conn, outbox.listing)
    assert row.status == "pending" and row.attempts == 1
    assert "SMTP connection or login failed" in row.last_error
    assert row.next_attempt_at_ms > now_ms() - 1000
    assert await sender.run_once() in (0,)  # still down (or not yet due): still pending
    server = SmtpServer(port).start()
    try:
        for _ in range(100):
            if await sender.run_once():
                break
            await asyncio.sleep(0.05)
        [got] = server.inbox.to("bob@example.com")
        assert got["Subject"] == "Your password was changed"
        [row] = run_read(conn, outbox.listing)
        assert row.id == mid and row.status == "sent" and row.last_error is None
    finally:
        server.stop()


async def test_a_refused_recipient_fails_for_good_and_others_still_go(tmp_path, smtp):
    conn = _db(tmp_path)
    smtp.inbox.refuse.add("gone@example.com")
    _enqueue(conn, "gone@example.com")
    _enqueue(conn, "ok@example.com")
    sender = MailSender(_SyncDb(conn), _mail_cfg(**smtp.mail_config))
    assert await sender.run_once() == 1
    by_to = {r.to_address: r for r in run_read(conn, outbox.listing)}
    assert by_to["gone@example.com"].status == "failed"
    assert "550" in by_to["gone@example.com"].last_error
    assert by_to["ok@example.com"].status == "sent"


async def test_the_job_runs_on_the_apps_scheduler_and_sends(aiohttp_client, tmp_path, smtp):
    cfg = make_config(tmp_path, mail=smtp.mail_config)
    client = await aiohttp_client(create_app(cfg))
    app = client.server.app
    assert "mail_sender" in app[JOBS].job_ids
    await app[DB].tx(outbox.enqueue_tx, "cat@example.com", messages.password_changed("x"),
                     now_ms())
    await asyncio.to_thread(smtp.inbox.wait_for, "cat@example.com")


async def test_no_smtp_host_keeps_mails_in_the_outbox(aiohttp_client, tmp_path):
    client = await aiohttp_client(create_app(make_config(tmp_path)))
    app = client.server.app
    assert "mail_sender" not in app[JOBS].job_ids
    await app[DB].tx(outbox.enqueue_tx, "dan@example.com", messages.password_changed("x"),
                     now_ms())
    assert await app[MAIL_SENDER].run_once() == 0
    [row] = await app[DB].read(outbox.listing)
    assert row.status == "pending" and row.attempts == 0


def test_mail_list_shows_the_outbox(tmp_path, capsys):
    from meterchat.cli import main

    cfg_file = tmp_path / "m.toml"
    cfg_file.write_text(f'[database]\npath = "{tmp_path / "cli.sqlite3"}"\n')
    conn = connect_sync(tmp_path / "cli.sqlite3")
    migrate_sync(conn)
    run_tx(conn, outbox.enqueue_tx, "eve@example.com",
           messages.password_reset("https://chat.example.com", "tok123", 60), now_ms())
    assert main(["mail", "list", "--config", str(cfg_file)]) == 0
    [line] = capsys.readouterr().out.strip().splitlines()
    row = json.loads(line)
    assert row["to"] == "eve@example.com" and row["status"] == "pending"
    assert row["kind"] == "password_reset"
    assert "https://chat.example.com/#/reset?token=tok123" in row["text"]


def test_link_helper_reads_the_token(smtp):
    import smtplib

    msg = messages.password_reset("https://c.test", "a b", 5)
    with smtplib.SMTP("127.0.0.1", smtp.port) as s:
        from email.message import EmailMessage

        e = EmailMessage()
        e["From"], e["To"], e["Subject"] = "a@b.c", "z@example.com", msg.subject
        e.set_content(msg.text)
        e.add_alternative(msg.html, subtype="html")
        s.send_message(e)
    [got] = smtp.inbox.to("z@example.com")
    assert link_in(got, "reset") == "a b"


async def test_the_login_password_comes_from_the_named_environment_variable(tmp_path,
                                                                            monkeypatch):
    login = Login("mailer", "s3cret-from-env")
    server = SmtpServer(login=login).start()
    try:
        conn = _db(tmp_path)
        _enqueue(conn, "fay@example.com")
        cfg = _mail_cfg(**server.mail_config, smtp_user="mailer",
                        smtp_password_env="MC_TEST_SMTP_PASSWORD")
        monkeypatch.setenv("MC_TEST_SMTP_PASSWORD", "wrong")
        sender = MailSender(_SyncDb(conn), cfg)
        assert await sender.run_once() == 0  # refused login: the mail waits
        [row] = run_read(conn, outbox.listing)
        assert row.status == "pending" and "535" in row.last_error
        assert "wrong" not in row.last_error
        monkeypatch.setenv("MC_TEST_SMTP_PASSWORD", "s3cret-from-env")
        run_tx(conn, lambda c: c.execute("UPDATE mail_outbox SET next_attempt_at_ms = 0"))
        assert await sender.run_once() == 1
        assert login.tries[-1] == (b"mailer", b"s3cret-from-env")
        assert len(server.inbox.to("fay@example.com")) == 1
    finally:
        server.stop()


@pytest.mark.parametrize("tls", ["starttls", "tls"])
async def test_starttls_and_implicit_tls_with_a_verified_certificate(tmp_path, monkeypatch, tls):
    cert = self_signed_cert(tmp_path)
    # The client verifies the server's certificate: here the test's own is the one trusted.
    monkeypatch.setenv("SSL_CERT_FILE", cert[0])
    login = Login("mailer", "pw")
    server = SmtpServer(login=login, tls=tls, cert=cert).start()
    try:
        conn = _db(tmp_path)
        _enqueue(conn, "tls@example.com")
        monkeypatch.setenv("MC_TEST_SMTP_PASSWORD", "pw")
        cfg = _mail_cfg(**{**server.mail_config, "smtp_tls": tls}, smtp_user="mailer",
                        smtp_password_env="MC_TEST_SMTP_PASSWORD")
        assert await MailSender(_SyncDb(conn), cfg).run_once() == 1, \
            run_read(conn, outbox.listing)[0].last_error
        assert len(server.inbox.to("tls@example.com")) == 1
        assert login.tries == [(b"mailer", b"pw")]
    finally:
        server.stop()


async def test_a_certificate_that_does_not_verify_sends_nothing(tmp_path, monkeypatch):
    cert = self_signed_cert(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "none.pem"))
    server = SmtpServer(tls="starttls", cert=cert).start()
    try:
        conn = _db(tmp_path)
        _enqueue(conn, "mitm@example.com")
        cfg = _mail_cfg(**{**server.mail_config, "smtp_tls": "starttls"})
        assert await MailSender(_SyncDb(conn), cfg).run_once() == 0
        [row] = run_read(conn, outbox.listing)
        assert row.status == "pending" and "CERTIFICATE_VERIFY_FAILED" in row.last_error
        assert server.inbox.messages == []
    finally:
        server.stop()
