"""Who is connected: the open WebSockets of every user (several tabs each), the connection
cap, sending JSON messages to a user's sockets, and presence (a user whose every socket has
been gone longer than a grace is reported gone, once). Knows nothing of HTTP handlers or
calls; the call manager uses it to push messages, the /ws handler to register sockets."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from server import logs

log = logging.getLogger("meterchat.signalling")


class Hub:
    def __init__(self, max_connections: int, presence_grace_s: float,
                 on_user_gone: Callable[[int], Awaitable[None]] | None = None) -> None:
        self.max_connections = max_connections
        self.presence_grace_s = presence_grace_s
        self.on_user_gone = on_user_gone
        self.sockets: dict[int, set[web.WebSocketResponse]] = {}
        self.count = 0
        self._gone_timers: dict[int, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task] = set()

    def has_room(self) -> bool:
        return self.count < self.max_connections

    def add(self, user_id: int, ws: web.WebSocketResponse) -> None:
        self.sockets.setdefault(user_id, set()).add(ws)
        self.count += 1
        timer = self._gone_timers.pop(user_id, None)
        if timer is not None:
            timer.cancel()

    def remove(self, user_id: int, ws: web.WebSocketResponse) -> None:
        socks = self.sockets.get(user_id)
        if socks is None or ws not in socks:
            return
        socks.discard(ws)
        self.count -= 1
        if not socks:
            del self.sockets[user_id]
            self.watch_presence(user_id)

    def is_connected(self, user_id: int) -> bool:
        return bool(self.sockets.get(user_id))

    def watch_presence(self, user_id: int) -> None:
        """Report the user gone unless a socket of theirs opens within the grace."""
        if self.is_connected(user_id) or user_id in self._gone_timers:
            return
        loop = asyncio.get_running_loop()
        self._gone_timers[user_id] = loop.call_later(self.presence_grace_s, self._gone, user_id)

    def _gone(self, user_id: int) -> None:
        self._gone_timers.pop(user_id, None)
        if self.is_connected(user_id) or self.on_user_gone is None:
            return
        task = asyncio.get_running_loop().create_task(self.on_user_gone(user_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def send(self, user_id: int, message: dict,
                   only: web.WebSocketResponse | None = None) -> int:
        """Send to every open socket of the user (or only to `only`); returns how many."""
        targets = [only] if only is not None else list(self.sockets.get(user_id, ()))
        if not targets:
            return 0
        text = json.dumps(message)
        sent = 0
        for ws in targets:
            if ws.closed:
                continue
            try:
                await ws.send_str(text)
                sent += 1
            except (ConnectionResetError, RuntimeError) as exc:
                logs.event(log, "ws_send_failed", user_id=user_id, error=type(exc).__name__)
        return sent

    async def disconnect_user(self, user_id: int, code: int = 4003,
                              message: bytes = b"account closed") -> None:
        for ws in list(self.sockets.get(user_id, ())):
            await ws.close(code=code, message=message)

    async def close(self) -> None:
        for timer in self._gone_timers.values():
            timer.cancel()
        self._gone_timers.clear()
        for socks in list(self.sockets.values()):
            for ws in list(socks):
                await ws.close(code=1001, message=b"server shutdown")
        for task in list(self._tasks):
            task.cancel()
