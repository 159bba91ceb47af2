"""The mail sender job: on the app's one scheduler (`interval_job`), every
`mail.send_interval_s` it takes the outbox's due mails and hands them to the SMTP server in
a thread (smtplib: STARTTLS, implicit TLS or none; the login's password from the environment
variable `mail.smtp_password_env`), so the event loop never waits for a mail server. A server
that is down or answers 4xx leaves each mail pending with a doubling wait (at most
`mail.retry_max_s`); a 5xx refusal marks that mail failed. Nothing is lost either way. With
no `mail.smtp_host` the job is not scheduled and mails stay in the outbox."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import os
import smtplib
import sqlite3
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.message import EmailMessage

from aiohttp import web

from meterchat.appkeys import CONFIG, DB
from meterchat.core.config import MailConfig
from meterchat.core.db import Database, now_ms
from meterchat.core.jobs import interval_job
from meterchat.core.logs import event
from meterchat.mail import outbox
from meterchat.mail.outbox import Mail

log = logging.getLogger("meterchat.mail")


@dataclass(frozen=True)
class Outcome:
    mail_id: int
    status: str  # sent | retry | failed
    error: str | None = None


def build_message(cfg: MailConfig, mail: Mail) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = cfg.from_address
    msg["To"] = mail.to_address
    msg["Subject"] = mail.subject
    msg["Date"] = email.utils.formatdate(mail.created_at_ms / 1000, usegmt=True)
    domain = email.utils.parseaddr(cfg.from_address)[1].partition("@")[2] or "localhost"
    # The same Message-ID on every attempt, so a receiver can drop a duplicate.
    msg["Message-ID"] = f"<mail-{mail.id}-{mail.created_at_ms}@{domain}>"
    msg.set_content(mail.body_text)
    msg.add_alternative(mail.body_html, subtype="html")
    return msg


def _connect(cfg: MailConfig, password: str) -> smtplib.SMTP:
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if cfg.smtp_tls == "tls":
        smtp = smtplib.SMTP_SSL(cfg.smtp_host, cfg.smtp_port, timeout=cfg.smtp_timeout_s,
                                context=context)
    else:
        smtp = smtplib.SMTP(cfg.smtp_host, cfg.smtp_port, timeout=cfg.smtp_timeout_s)
    try:
        smtp.ehlo()
        if cfg.smtp_tls == "starttls":
            smtp.starttls(context=context)
            smtp.ehlo()
        if cfg.smtp_user:
            smtp.login(cfg.smtp_user, password)
    except BaseException:
        smtp.close()
        raise
    return smtp


def send_batch(cfg: MailConfig, password: str, mails: list[Mail]) -> list[Outcome]:
    """Send the mails over one SMTP connection (runs in a thread). Never raises."""
    try:
        smtp = _connect(cfg, password)
    except (OSError, smtplib.SMTPException) as exc:
        why = f"SMTP connection or login failed: {type(exc).__name__}: {exc}"
        return [Outcome(m.id, "retry", why) for m in mails]
    out: list[Outcome] = []
    try:
        for i, m in enumerate(mails):
            try:
                smtp.send_message(build_message(cfg, m))
                out.append(Outcome(m.id, "sent"))
            except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused,
                    smtplib.SMTPDataError) as exc:
                code = _code(exc)
                status = "failed" if code is not None and 500 <= code < 600 else "retry"
                out.append(Outcome(m.id, status, f"{type(exc).__name__}: {exc}"))
                if status == "retry":
                    smtp.rset()
            except (OSError, smtplib.SMTPException) as exc:
                # The connection is gone: this mail and the rest wait for the next pass.
                why = f"{type(exc).__name__}: {exc}"
                out += [Outcome(r.id, "retry", why) for r in mails[i:]]
                break
    except (OSError, smtplib.SMTPException) as exc:  # rset on a dead connection
        done = {o.mail_id for o in out}
        out += [Outcome(m.id, "retry", f"{type(exc).__name__}: {exc}")
                for m in mails if m.id not in done]
    finally:
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            smtp.close()
    return out


def _code(exc: smtplib.SMTPException) -> int | None:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [c for c, _ in exc.recipients.values()]
        return min(codes) if codes else None
    code = getattr(exc, "smtp_code", None)
    return code if isinstance(code, int) else None


def record_tx(conn: sqlite3.Connection, outcomes: list[Outcome], at_ms: int, first_ms: int,
              max_ms: int) -> None:
    for o in outcomes:
        if o.status == "sent":
            outbox.mark_sent_tx(conn, o.mail_id, at_ms)
        elif o.status == "failed":
            outbox.mark_failed_tx(conn, o.mail_id, o.error or "refused")
        else:
            outbox.mark_retry_tx(conn, o.mail_id, o.error or "retry", at_ms, first_ms, max_ms)


class MailSender:
    def __init__(self, db: Database, cfg: MailConfig) -> None:
        self.db = db
        self.cfg = cfg
        self.stopped = False
        self._lock = asyncio.Lock()
        self.first_retry_ms = int(cfg.send_interval_s * 1000)
        self.max_retry_ms = int(cfg.retry_max_s * 1000)

    async def stop(self) -> None:
        """No new passes; wait for the one under way."""
        self.stopped = True
        async with self._lock:
            pass

    async def run_once(self) -> int:
        """One pass; returns how many mails were sent. Never raises."""
        if self.stopped or not self.cfg.smtp_host:
            return 0
        async with self._lock:
            try:
                return await self._pass()
            except Exception:
                log.exception("mail sender pass failed")
                return 0

    async def _pass(self) -> int:
        mails = await self.db.read(outbox.due, now_ms())
        if not mails:
            return 0
        password = os.environ.get(self.cfg.smtp_password_env, "") if self.cfg.smtp_user else ""
        outcomes = await asyncio.to_thread(send_batch, self.cfg, password, mails)
        await self.db.tx(record_tx, outcomes, now_ms(), self.first_retry_ms, self.max_retry_ms)
        sent = sum(o.status == "sent" for o in outcomes)
        retry = [o for o in outcomes if o.status == "retry"]
        failed = [o for o in outcomes if o.status == "failed"]
        if sent:
            event(log, "mail_sent", count=sent)
        if retry:
            event(log, "mail_retry", logging.WARNING, count=len(retry), reason=retry[0].error)
        for o in failed:
            event(log, "mail_failed", logging.WARNING, mail_id=o.mail_id, reason=o.error)
        return sent


MAIL_SENDER = web.AppKey("mail_sender", MailSender)


async def mail_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the mail sender job (only with an SMTP server configured)."""
    cfg = app[CONFIG].mail
    sender = MailSender(app[DB], cfg)
    app[MAIL_SENDER] = sender
    if not cfg.smtp_host:
        event(log, "mail_outbox_only",
              hint="mail.smtp_host is empty: mails stay in the outbox (meterchat mail list)")
        yield
        return
    async with interval_job(app, sender.run_once, cfg.send_interval_s, "mail_sender",
                            sender.stop):
        yield
