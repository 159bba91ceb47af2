"""Who is connected: the open WebSockets of every user (several tabs each), the connection
caps (server-wide and per user), sending JSON messages to a user's sockets, and presence (a
user whose every socket has been gone for a grace, on the Clock it is given, is reported
gone once by `gone_users`, which the call manager's tick asks). Knows nothing of HTTP
handlers or calls; the call manager uses it to push messages, the /ws handler to register
sockets.

Sending never waits for a client. `Hub.send` only puts the message in each socket's bounded
outbound queue; one writer task per socket drains it. A socket whose queue would hold more
than `queue_messages` messages or `queue_bytes` bytes waiting, or whose writer waits longer
than `send_timeout_s` for one message to go out, is a slow consumer: its connection is
aborted (it does not read, so it would not read a close frame either) and its handler ends
as for any dropped socket. No error of one socket reaches the caller of `send`.

A message costs no timer and no event of its own (this is the hot path of every meter,
pong and relayed signal): a writer with nothing to send waits on a future that the next
message resolves, and one timer per hub, every quarter of `send_timeout_s`, aborts the
sockets whose send has waited longer than that.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

from meterchat.core import jsoncodec, logs
from meterchat.core.clock import SYSTEM_CLOCK, Clock

log = logging.getLogger("meterchat.signalling")

# Close codes the pages can tell apart (4000-4999 are the application's).
CLOSE_LOGGED_OUT = 4001
CLOSE_ACCOUNT_CLOSED = 4003
CLOSE_GOING_AWAY = 1001


class Outbox:
    """One socket: its owner, the session it was opened with, its queue and its writer."""

    __slots__ = ("ws", "user_id", "session_id", "transport", "queue", "queued_bytes",
                 "waiter", "writer", "closing", "dead")

    def __init__(self, ws: Any, user_id: int, session_id: int | None, transport: Any) -> None:
        self.ws = ws
        self.user_id = user_id
        self.session_id = session_id
        self.transport = transport
        # Items are message texts, or a (code, reason) tuple: close after what is queued.
        self.queue: deque[str | tuple[int, bytes]] = deque()
        self.queued_bytes = 0
        self.waiter: asyncio.Future[None] | None = None  # the idle writer waits on it
        self.writer: asyncio.Task[None] | None = None
        self.closing = False  # a close is queued: nothing more is accepted
        self.dead = False  # aborted or finished: nothing more is sent


class Hub:
    def __init__(self, max_connections: int, presence_grace_s: float,
                 clock: Clock = SYSTEM_CLOCK, *, max_per_user: int = 8,
                 queue_messages: int = 256, queue_bytes: int = 1 << 20,
                 send_timeout_s: float = 10.0) -> None:
        self.max_connections = max_connections
        self.max_per_user = max_per_user
        self.presence_grace_s = presence_grace_s
        self.queue_messages = queue_messages
        self.queue_bytes = queue_bytes
        self.send_timeout_s = send_timeout_s
        self.clock = clock
        self.sockets: dict[int, dict[Any, Outbox]] = {}
        self.count = 0
        self.slow_consumers_closed = 0
        self.queue_peak = 0  # most messages waiting for one socket since take_queue_peak()
        # Users without a socket, by when their grace began (clock.monotonic()); a socket of
        # theirs that opens takes them out (add), so no one in it is connected.
        self._gone_since: dict[int, float] = {}
        self._writers: set[asyncio.Task[None]] = set()
        self._sending: dict[Outbox, float] = {}  # a send under way: since when (loop time)
        self._watchdog: asyncio.TimerHandle | None = None

    @classmethod
    def from_config(cls, server_cfg: Any, clock: Clock = SYSTEM_CLOCK) -> Hub:
        return cls(server_cfg.max_ws_connections, server_cfg.presence_grace_s, clock,
                   max_per_user=server_cfg.max_ws_per_user,
                   queue_messages=server_cfg.ws_send_queue_messages,
                   queue_bytes=server_cfg.ws_send_queue_bytes,
                   send_timeout_s=server_cfg.ws_send_timeout_s)

    # -- registration
    def has_room(self) -> bool:
        return self.count < self.max_connections

    def has_room_for(self, user_id: int) -> bool:
        return len(self.sockets.get(user_id, ())) < self.max_per_user

    def add(self, user_id: int, ws: Any, session_id: int | None = None,
            transport: Any = None) -> Outbox:
        """Count the socket in (before its handshake, so the caps hold); `start` it once
        the handshake is done."""
        box = Outbox(ws, user_id, session_id, transport)
        self.sockets.setdefault(user_id, {})[ws] = box
        self.count += 1
        self._gone_since.pop(user_id, None)
        return box

    def start(self, box: Outbox) -> None:
        """The handshake is done: the socket's writer starts draining its queue."""
        if box.writer is None and not box.dead:
            loop = asyncio.get_running_loop()
            box.writer = loop.create_task(self._write(box))
            self._writers.add(box.writer)
            box.writer.add_done_callback(self._writers.discard)
            if self._watchdog is None:
                self._watchdog = loop.call_later(self.send_timeout_s / 4, self._watch)

    def remove(self, user_id: int, ws: Any) -> None:
        socks = self.sockets.get(user_id)
        if socks is None or ws not in socks:
            return
        box = socks.pop(ws)
        self.count -= 1
        # A writer in the middle of a close handshake finishes it (bounded by the timeout).
        if box.writer is not None and not box.closing:
            box.writer.cancel()
        box.dead = True
        box.queue.clear()
        box.queued_bytes = 0
        if box.transport is not None:
            # A closed transport still flushes what it holds, which a client that does not
            # read never takes (aiohttp's heartbeat closes so): drop it after the timeout.
            # A no-op for a connection that is already gone.
            asyncio.get_running_loop().call_later(self.send_timeout_s, box.transport.abort)
        if not socks:
            del self.sockets[user_id]
            self.watch_presence(user_id)

    def is_connected(self, user_id: int) -> bool:
        return bool(self.sockets.get(user_id))

    # -- presence
    def watch_presence(self, user_id: int) -> None:
        """The grace begins: the user is gone unless a socket of theirs opens before it ends."""
        if self.is_connected(user_id) or user_id in self._gone_since:
            return
        self._gone_since[user_id] = self.clock.monotonic()

    def gone_users(self, now: float) -> list[int]:
        """The users whose grace has ended with no socket of theirs open, each reported
        once (a new socket and a new grace make a new report)."""
        ended = [uid for uid, since in self._gone_since.items()
                 if now - since >= self.presence_grace_s]
        for uid in ended:
            del self._gone_since[uid]
        return ended

    # -- sending
    def send(self, user_id: int, message: dict[str, Any], only: Any = None) -> int:
        """Queue the message for every open socket of the user (or only for the socket
        `only`); returns for how many. Never waits and never raises for a socket."""
        socks = self.sockets.get(user_id)
        if not socks:
            return 0
        if only is not None:
            box = socks.get(only)
            boxes = [box] if box is not None else []
        else:
            boxes = list(socks.values())
        if not boxes:
            return 0
        try:
            text = jsoncodec.dumps(message)
        except (TypeError, ValueError, RecursionError) as exc:
            logs.event(log, "ws_send_unencodable", user_id=user_id, error=type(exc).__name__)
            return 0
        queued = 0
        for box in boxes:
            if self._put(box, text):
                queued += 1
        return queued

    def _put(self, box: Outbox, text: str) -> bool:
        if box.dead or box.closing:
            return False
        size = len(text)
        # The bound is on what waits: a message into an empty queue is always taken.
        if box.queue and (len(box.queue) >= self.queue_messages
                          or box.queued_bytes + size > self.queue_bytes):
            self._abort(box, "queue_full")
            return False
        box.queue.append(text)
        box.queued_bytes += size
        if len(box.queue) > self.queue_peak:
            self.queue_peak = len(box.queue)
        self._wake(box)
        return True

    @staticmethod
    def _wake(box: Outbox) -> None:
        waiter = box.waiter
        if waiter is not None:
            box.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def take_queue_peak(self) -> int:
        """The most messages that waited for one socket since the last call (for metrics:
        how close the queues come to `queue_messages`)."""
        peak, self.queue_peak = self.queue_peak, 0
        return peak

    async def _write(self, box: Outbox) -> None:
        ws = box.ws
        loop = asyncio.get_running_loop()
        sending = self._sending
        while not box.dead:
            if not box.queue:
                box.waiter = loop.create_future()
                await box.waiter
                continue
            item = box.queue.popleft()
            if isinstance(item, tuple):
                await self._close_politely(box, *item)
                return
            box.queued_bytes -= len(item)
            sending[box] = loop.time()
            try:
                await ws.send_str(item)
            except Exception as exc:  # noqa: BLE001 - one socket's failure stays its own
                logs.event(log, "ws_send_failed", user_id=box.user_id,
                           error=type(exc).__name__)
                self._abort(box, None)
                return
            finally:
                sending.pop(box, None)

    def _watch(self) -> None:
        """Abort the sockets whose send has waited longer than send_timeout_s (the writer
        is cancelled in its send); again in a quarter of it while any writer runs."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        for box, since in list(self._sending.items()):
            if now - since >= self.send_timeout_s:
                self._abort(box, "send_timeout")
        self._watchdog = (loop.call_later(self.send_timeout_s / 4, self._watch)
                          if self._writers else None)

    async def _close_politely(self, box: Outbox, code: int, reason: bytes) -> None:
        try:
            async with asyncio.timeout(self.send_timeout_s):
                await box.ws.close(code=code, message=reason)
        except Exception:  # noqa: BLE001 - a close that fails or hangs becomes an abort
            self._abort(box, None)
        finally:
            box.dead = True

    def _abort(self, box: Outbox, why: str | None) -> None:
        """Drop the connection at once: a client that does not read gets no close frame."""
        if box.dead:
            return
        box.dead = True
        box.queue.clear()
        box.queued_bytes = 0
        self._wake(box)
        if why is not None:
            self.slow_consumers_closed += 1
            logs.event(log, "ws_slow_consumer", user_id=box.user_id, reason=why)
        current = asyncio.current_task()
        if box.writer is not None and box.writer is not current:
            box.writer.cancel()
        # abort(), not close(): close() waits to flush a buffer that a non-reader never takes.
        if box.transport is not None:
            box.transport.abort()

    # -- closing
    def close_socket(self, box: Outbox, code: int, reason: bytes) -> None:
        """Close after what is already queued; a socket not yet started is dropped."""
        if box.dead or box.closing:
            return
        if box.writer is None:
            self._abort(box, None)
            return
        box.closing = True
        box.queue.append((code, reason))
        self._wake(box)

    def disconnect_user(self, user_id: int, code: int = CLOSE_ACCOUNT_CLOSED,
                        message: bytes = b"account closed") -> int:
        boxes = list(self.sockets.get(user_id, {}).values())
        for box in boxes:
            self.close_socket(box, code, message)
        return len(boxes)

    def disconnect_session(self, session_id: int, code: int = CLOSE_LOGGED_OUT,
                           message: bytes = b"logged out") -> int:
        """Close every socket opened with this session (a logout)."""
        boxes = [b for socks in self.sockets.values() for b in socks.values()
                 if b.session_id == session_id]
        for box in boxes:
            self.close_socket(box, code, message)
        return len(boxes)

    async def close(self) -> None:
        self._gone_since.clear()
        boxes = [b for socks in self.sockets.values() for b in socks.values()]
        for box in boxes:
            self.close_socket(box, CLOSE_GOING_AWAY, b"server shutdown")
        if self._writers:
            # Each writer is bounded by the send timeout per message and for the close.
            await asyncio.wait(list(self._writers), timeout=2 * self.send_timeout_s + 1)
        for box in boxes:
            self._abort(box, None)
        for task in list(self._writers):
            task.cancel()
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
