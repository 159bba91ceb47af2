"""GET /ws: the authenticated WebSocket (API.md "WebSocket"). Several tabs per user; aiohttp
pings every ws_heartbeat_s and closes a socket that stops answering. Each socket has a size
and a rate limit; a bad message is answered with an `error` message and the socket stays
open. Past server.max_ws_connections new sockets are refused with a 503 JSON error, past
server.max_ws_per_user sockets of one account with a 429. Every reply, like every message
the server pushes, goes through the socket's outbound queue (calls/signalling.py), so the
handler never waits for a client to read and the order of messages holds. The messages
`signal`, `media`, `chat` and `media_state` are parsed here and handed to the call manager as plain values;
`chat` has its own limit per socket (calls.chat_messages_per_10s, past it an `error`
chat_rate_limited) and its text rule (calls/chat.py)."""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

from meterchat.accounts.auth import SESSION_COOKIE, bearer_token, session_of
from meterchat.appkeys import CONFIG
from meterchat.calls import chat
from meterchat.calls.manager import CALLS, HUB, CallManager
from meterchat.core import jsoncodec, logs
from meterchat.core.errors import ApiError, Forbidden, TooManyRequests, Unavailable
from meterchat.web.metrics import METRICS

log = logging.getLogger("meterchat.ws")
RATE_WINDOW_S = 10.0  # server.ws_messages_per_10s counts the messages of this window
# Counters in a media report: non-negative integers that a browser's JavaScript number holds
# exactly (and far below SQLite's 2**63).
MAX_COUNTER = 2**53 - 1
MAX_ID_DIGITS = 18  # ids are SQLite rowids: below 2**63


class WsError(ApiError):
    """A bad WebSocket message: answered with an `error` message, the socket stays open."""

    code = "invalid_message"


def ws_counter(stats: dict[str, Any], name: str) -> int | None:
    """A counter of a media report: absent, or an integer 0..MAX_COUNTER. Floats, booleans,
    strings and numbers SQLite cannot store are refused."""
    v = stats.get(name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_COUNTER:
        raise WsError(f"stats.{name} must be an integer from 0 to {MAX_COUNTER}")
    return v


def ws_call_id(raw: Any) -> int:
    """A call id from a socket message: a string of digits (as the API gives ids) or an
    integer. Floats, booleans, huge numbers and anything else are refused (int() of
    Infinity raises OverflowError, of 1.5 silently gives 1)."""
    if isinstance(raw, int) and not isinstance(raw, bool) and 0 < raw < 10**MAX_ID_DIGITS:
        return raw
    if isinstance(raw, str) and raw.isascii() and raw.isdigit() \
            and len(raw) <= MAX_ID_DIGITS and int(raw) > 0:
        return int(raw)
    raise WsError("call_id is missing or not an id")


async def on_signal(manager: CallManager, user_id: int, ws: object, msg: dict[str, Any]) -> None:
    call_id = ws_call_id(msg.get("call_id"))
    if "data" not in msg:
        raise WsError("signal needs data")
    await manager.on_signal(user_id, ws, call_id, msg["data"])


class ChatRate:
    """A socket's chat limit: at most `limit` chat messages in any RATE_WINDOW_S (every chat
    message counts, refused ones too, so a flood of bad ones gains nothing)."""

    __slots__ = ("limit", "times")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.times: deque[float] = deque()

    def allow(self, now: float) -> bool:
        while self.times and self.times[0] <= now - RATE_WINDOW_S:
            self.times.popleft()
        if len(self.times) >= self.limit:
            return False
        self.times.append(now)
        return True


async def on_chat(manager: CallManager, user_id: int, rate: ChatRate,
                  msg: dict[str, Any]) -> None:
    if not rate.allow(time.monotonic()):
        raise TooManyRequests("too many chat messages; wait a few seconds",
                              "chat_rate_limited")
    call_id = ws_call_id(msg.get("call_id"))
    await manager.on_chat(user_id, call_id, chat.chat_text(msg.get("text")))


async def on_media_state(manager: CallManager, user_id: int, msg: dict[str, Any]) -> None:
    call_id = ws_call_id(msg.get("call_id"))
    audio, video = msg.get("audio"), msg.get("video")
    if not isinstance(audio, bool) or not isinstance(video, bool):
        raise WsError("media_state needs audio and video, each true or false")
    await manager.on_media_state(user_id, call_id, audio, video)


async def on_media(manager: CallManager, user_id: int, ws: object, msg: dict[str, Any]) -> None:
    call_id = ws_call_id(msg.get("call_id"))
    state = msg.get("state")
    if state not in ("connected", "disconnected"):
        raise WsError("state must be connected or disconnected")
    stats = msg.get("stats") or {}
    if not isinstance(stats, dict):
        raise WsError("stats must be an object")
    bytes_received, frames_decoded = (ws_counter(stats, name)
                                      for name in ("bytes_received", "frames_decoded"))
    await manager.on_media(user_id, ws, call_id, state == "connected", bytes_received,
                           frames_decoded)


def _origin_ok(request: web.Request) -> bool:
    """Cookie-authenticated sockets must come from our own pages (no cross-site hijack)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser
    host = urlsplit(origin).netloc
    public = request.app[CONFIG].server.public_url
    return host == request.host or (bool(public) and host == urlsplit(public).netloc)


async def ws_handler(request: web.Request) -> web.WebSocketResponse:
    session = await session_of(request, allow_query_token=True)
    via_cookie = (bearer_token(request) is None and not request.query.get("token")
                  and SESSION_COOKIE in request.cookies)
    if via_cookie and not _origin_ok(request):
        raise Forbidden("this page may not open a socket here", "bad_origin")
    cfg = request.app[CONFIG].server
    hub = request.app[HUB]
    manager = request.app[CALLS]
    if not hub.has_room():
        logs.event(log, "ws_refused", reason="connection_cap", open=hub.count)
        raise Unavailable("the server is at its connection limit; try again in a moment",
                          "too_many_connections", headers={"Retry-After": "5"})
    user_id = session.user.id
    if not hub.has_room_for(user_id):
        # One account cannot take every slot: its other tabs stay, others are not affected.
        logs.event(log, "ws_refused", reason="user_cap", user_id=user_id)
        raise TooManyRequests(
            f"this account already has {hub.max_per_user} sockets open; close a tab first",
            "too_many_sockets", headers={"Retry-After": "5"})
    # No permessage-deflate, which browsers offer and aiohttp would accept: the messages
    # are small JSON, and a compressor per socket costs about 110 KB and CPU per message
    # (bench/capacity.py: RSS 355 -> 139 MiB and 186 -> 152 us a message at 2,000 sockets).
    ws = web.WebSocketResponse(heartbeat=cfg.ws_heartbeat_s,
                               max_msg_size=cfg.ws_max_message_bytes * 4, compress=False)
    # Counted before the handshake awaits, so concurrent opens cannot pass the caps.
    box = hub.add(user_id, ws, session.id, request.transport)
    gauge = request.app[METRICS].ws_connections
    gauge.set(hub.count)

    def reply(message: dict[str, Any]) -> None:
        hub.send(user_id, message, only=ws)

    def error(code: str, message: str) -> None:
        reply({"type": "error", "code": code, "message": message})

    try:
        await ws.prepare(request)
        hub.start(box)
        # The socket's rate limit, a sliding window kept inline (one clock read a message):
        # the times of the messages accepted in the last RATE_WINDOW_S.
        limit = cfg.ws_messages_per_10s
        recent: deque[float] = deque()
        chat_rate = ChatRate(request.app[CONFIG].calls.chat_messages_per_10s)
        clock = time.monotonic
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                error("invalid_message", "send JSON text messages")
                continue
            if len(msg.data) > cfg.ws_max_message_bytes:
                error("message_too_large",
                      f"messages are limited to {cfg.ws_max_message_bytes} bytes")
                continue
            now = clock()
            while recent and recent[0] <= now - RATE_WINDOW_S:
                recent.popleft()
            if len(recent) >= limit:
                error("rate_limited", "too many messages; slow down")
                continue
            recent.append(now)
            try:
                data = jsoncodec.loads(msg.data)
            except (ValueError, RecursionError):  # deep nesting exhausts the parser's stack
                error("invalid_json", "the message is not valid JSON")
                continue
            if not isinstance(data, dict):
                error("invalid_message", "a message is a JSON object with a type")
                continue
            kind = data.get("type")
            try:
                if kind == "ping":
                    reply({"type": "pong"})
                elif kind == "signal":
                    await on_signal(manager, user_id, ws, data)
                elif kind == "media":
                    await on_media(manager, user_id, ws, data)
                elif kind == "chat":
                    await on_chat(manager, user_id, chat_rate, data)
                elif kind == "media_state":
                    await on_media_state(manager, user_id, data)
                else:
                    error("unknown_type",
                          "type must be signal, media, chat, media_state or ping")
            except ApiError as exc:  # WsError among them
                error(exc.code, exc.message)
    finally:
        hub.remove(user_id, ws)
        gauge.set(hub.count)
        manager.on_socket_closed(user_id, ws)
    return ws


async def _close_sockets(app: web.Application) -> None:
    await app[HUB].close()


def setup(app: web.Application) -> None:
    app.router.add_get("/ws", ws_handler)
    app.on_shutdown.append(_close_sockets)
