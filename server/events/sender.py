"""The events job: on the app's one scheduler (`interval_job`), every
`events.deliver_interval_s`, it starts one task per webhook that has none running, and writes
the alert mails that are due. A webhook's task sends its deliveries one at a time in event
order (a failure holds the later events of that webhook only, until the wait of
`rules.retry_wait_ms` is over), each POST with a timeout, so a slow or dead receiver delays
no other webhook, no alert and nothing of billing (which never waits on this job).

Every attempt signs the same body with a fresh timestamp: `X-Meterchat-Signature:
t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`; the secret is read once at
start-up from the environment variable the webhook names, kept wrapped, never logged."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from meterchat.appkeys import CONFIG, DB
from meterchat.core.config import Config, ConfigError, Secret, WebhookConfig
from meterchat.core.db import Database, now_ms
from meterchat.core.jobs import interval_job
from meterchat.core.logs import event
from meterchat.events import alerts, outbox, rules, webhooks
from meterchat.events.webhooks import DEAD, DELIVERED, Delivery
from meterchat.mail import messages

log = logging.getLogger("meterchat.events")

# Deliveries one task sends before it gives the turn back to the next pass.
MAX_PER_TASK = 200


@dataclass(frozen=True)
class Hook:
    url: str
    secret: Secret
    types: tuple[str, ...] | None  # None: every type


def hooks_from_config(cfg: Config, environ: dict[str, str] | os._Environ[str] = os.environ
                      ) -> list[Hook]:
    """Each [[webhooks]] table with its secret read from the environment; a secret that is
    not set stops start-up, naming the key."""
    out = []
    for i, w in enumerate(cfg.webhooks):
        value = environ.get(w.secret_env, "")
        if not value:
            raise ConfigError(f"config key webhooks[{i}].secret_env: the environment variable "
                              f"{w.secret_env} is not set (it holds the signing secret of "
                              f"the webhook {w.url})")
        out.append(_hook(w, Secret(value)))
    return out


def _hook(w: WebhookConfig, secret: Secret) -> Hook:
    return Hook(w.url, secret, tuple(w.events) if w.events else None)


class EventSender:
    def __init__(self, db: Database, cfg: Config, hooks: list[Hook],
                 http: aiohttp.ClientSession) -> None:
        self.db = db
        self.cfg = cfg
        self.hooks = hooks
        self.http = http
        self.max_age_ms = int(cfg.events.max_age_hours * 3_600_000)
        self.first_ms = int(cfg.events.retry_first_s * 1000)
        self.max_ms = int(cfg.events.retry_max_s * 1000)
        self.stopped = False
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._alerts_lock = asyncio.Lock()

    async def run_once(self) -> None:
        """One pass: a task for each webhook without one, then the alert mails due."""
        if self.stopped:
            return
        for hook in self.hooks:
            task = self._tasks.get(hook.url)
            if task is None or task.done():
                self._tasks[hook.url] = asyncio.get_running_loop().create_task(
                    self._deliver(hook), name=f"webhook {hook.url}")
        if self.cfg.operator.alert_emails:
            async with self._alerts_lock:
                try:
                    await self._alerts()
                except Exception:
                    log.exception("alert mails could not be written")

    async def stop(self) -> None:
        """No new passes; the POSTs under way are cut off (their events stay pending and are
        sent again after a restart: at least once)."""
        self.stopped = True
        tasks = [t for t in self._tasks.values() if not t.done()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        async with self._alerts_lock:
            pass

    async def _alerts(self) -> None:
        cfg = self.cfg
        batch_ms = int(cfg.operator.alert_batch_minutes * 60_000)
        at = now_ms()
        if await self.db.read(alerts.due_types, at, batch_ms):
            await self.db.tx(alerts.mail_due_tx, tuple(cfg.operator.alert_emails), batch_ms,
                             at, messages.links_base(cfg))

    async def _deliver(self, hook: Hook) -> None:
        try:
            for _ in range(MAX_PER_TASK):
                if self.stopped or not await self._deliver_one(hook):
                    return
        except asyncio.CancelledError:
            raise
        except Exception:  # the database failed: the next pass starts a new task
            log.exception("webhook delivery failed", extra={"webhook": hook.url})

    async def _deliver_one(self, hook: Hook) -> bool:
        """Send the webhook's head if it is due; True when the next one may follow now."""
        head = await self.db.read(webhooks.head, hook.url)
        if head is None:
            if not await self.db.read(webhooks.has_new, hook.url):
                return False
            await self.db.tx(webhooks.take_new_tx, hook.url, hook.types, now_ms(),
                             self.max_age_ms)
            head = await self.db.read(webhooks.head, hook.url)
            if head is None:
                return False
        if head.next_attempt_at_ms > now_ms():
            return False  # waiting out its backoff; the later events wait behind it
        status, error, took_ms = await self._post(hook, head)
        wait = rules.retry_wait_ms(head.attempts + 1, self.first_ms, self.max_ms,
                                   random.random())
        outcome = await self.db.tx(webhooks.record_attempt_tx, hook.url, head.event.row,
                                   now_ms(), status, error, took_ms, wait)
        if outcome == DELIVERED:
            event(log, "webhook_delivered", webhook=hook.url, event_id=head.event.id,
                  type=head.event.type, attempt=head.attempts + 1, http_status=status)
            return True
        event(log, "webhook_failed", logging.WARNING, webhook=hook.url,
              event_id=head.event.id, type=head.event.type, attempt=head.attempts + 1,
              http_status=status, error=error, dead=outcome == DEAD,
              retry_in_s=None if outcome == DEAD else round(wait / 1000, 2))
        return outcome == DEAD  # a dead one no longer holds the next

    async def _post(self, hook: Hook, d: Delivery) -> tuple[int | None, str | None, int]:
        body = d.event.body()
        t = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "meterchat-webhooks",
            rules.EVENT_HEADER: d.event.type,
            rules.EVENT_ID_HEADER: d.event.id,
            rules.SIGNATURE_HEADER: rules.signature_header(hook.secret.reveal().encode(), t,
                                                           body),
        }
        started = time.monotonic()
        timeout = self.cfg.events.webhook_timeout_s
        try:
            async with asyncio.timeout(timeout):
                async with self.http.post(hook.url, data=body, headers=headers,
                                          allow_redirects=False) as resp:
                    await resp.read()
                    status: int | None = resp.status
                    error = None if rules.is_success(resp.status) else f"HTTP {resp.status}"
        except TimeoutError:
            status, error = None, f"no answer within {timeout} s"
        except aiohttp.ClientError as exc:
            status, error = None, f"{type(exc).__name__}: {exc}"[:300]
        return status, error, int((time.monotonic() - started) * 1000)


SENDER = web.AppKey("event_sender", EventSender)


async def events_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the events job, when a webhook or an alert address is configured."""
    cfg = app[CONFIG]
    hooks = hooks_from_config(cfg)
    if not hooks and not cfg.operator.alert_emails:
        yield
        return
    async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=cfg.events.webhook_timeout_s)) as http:
        sender = EventSender(app[DB], cfg, hooks, http)
        # Before any request can write an event: a new webhook (or alerts just turned on)
        # takes every event from this start on.
        names = [webhooks.cursor_name(h.url) for h in hooks]
        if cfg.operator.alert_emails:
            names.append(alerts.START)
        await app[DB].tx(outbox.start_cursors_tx, names, now_ms())
        app[SENDER] = sender
        async with interval_job(app, sender.run_once, cfg.events.deliver_interval_s,
                                "event_sender", sender.stop):
            yield
