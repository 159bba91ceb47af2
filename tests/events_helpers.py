"""A real webhook receiver on loopback (an aiohttp server) that keeps every request, answers
as a test tells it, and can go down and come back on the same port."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from meterchat.events import rules
from tests.mail_helpers import free_port

SECRET = "whsec-test-5f1c0a"
SECRET_ENV = "METERCHAT_TEST_WEBHOOK_SECRET"


@dataclass
class Received:
    event_type: str
    event_id: str
    signature: str
    body: bytes
    status: int

    @property
    def event(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.body)
        return doc


@dataclass
class Receiver:
    """`answer(received_so_far, event_id) -> status` decides each reply (200 by default);
    `hold` makes it wait before answering."""

    port: int = field(default_factory=free_port)
    answer: Callable[[list[Received], str], int] = lambda got, event_id: 200
    hold: asyncio.Event | None = None
    got: list[Received] = field(default_factory=list)
    started: list[str] = field(default_factory=list)  # event ids of requests come in
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        event_id = request.headers.get(rules.EVENT_ID_HEADER, "")
        self.started.append(event_id)
        if self.hold is not None:
            await self.hold.wait()
        status = self.answer(self.got, event_id)
        self.got.append(Received(request.headers.get(rules.EVENT_HEADER, ""), event_id,
                                 request.headers.get(rules.SIGNATURE_HEADER, ""), body,
                                 status))
        return web.Response(status=status, text="ok" if status < 300 else "no")

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def delivered(self) -> list[Received]:
        return [r for r in self.got if 200 <= r.status < 300]

    def delivered_ids(self) -> list[str]:
        return [r.event_id for r in self.delivered()]


def webhook(url: str, events: list[str] | None = None) -> dict[str, Any]:
    return {"url": url, "secret_env": SECRET_ENV, "events": events or []}


FAST_EVENTS = {"deliver_interval_s": 0.05, "retry_first_s": 0.05, "retry_max_s": 0.2,
               "webhook_timeout_s": 2.0}
