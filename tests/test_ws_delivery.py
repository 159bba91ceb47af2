"""Sending to WebSockets never waits for a client: a client that never reads its socket
does not stop a bystander's call from billing, a slow consumer is closed once its queue is
full or a send takes too long, and a send error on one socket stays with that socket. Also
the per-account socket cap and a logout closing that session's sockets."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import socket

import aiohttp
import pytest
from aiohttp.helpers import DEFAULT_CHUNK_SIZE

from meterchat.app import create_app
from meterchat.calls.manager import HUB
from meterchat.calls.signalling import CLOSE_LOGGED_OUT, Hub
from meterchat.tools.peer import Client, SyntheticMedia
from tests.calls_helpers import start_live_call, ws_client
from tests.conftest import (
    Actor,
    actor,
    assert_error,
    audit_ok,
    eventually,
    fast_calls_config,
    fund,
    login,
    register,
    seller_online,
)

# Real time on purpose (sockets, timers, child processes): tests/conftest.py starts these
# files first, so their waits overlap the other files' work.
pytestmark = pytest.mark.slow

SIGNAL_BYTES = 60_000  # below ws_max_message_bytes
# Output a WebSocketResponse writes before it awaits a drain (aiohttp's writer_limit).
AIOHTTP_WRITER_LIMIT = DEFAULT_CHUNK_SIZE


class NeverReads:
    """A WebSocket client on a plain TCP socket with a tiny receive buffer: after the
    handshake it writes messages (media heartbeats, so its call stays live) and never reads
    a byte, as an attacker's client would."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._media: asyncio.Task | None = None

    @classmethod
    async def open(cls, app_client, token: str) -> NeverReads:
        loop = asyncio.get_running_loop()
        host, port = app_client.server.host, app_client.server.port
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await loop.sock_connect(sock, (host, port))
        key = base64.b64encode(os.urandom(16)).decode()
        await loop.sock_sendall(sock, (
            f"GET /ws?token={token} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while not head.endswith(b"\r\n\r\n"):  # byte by byte: nothing past the headers
            chunk = await loop.sock_recv(sock, 1)
            assert chunk, head
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(sock)

    async def send(self, message: dict) -> None:
        payload = json.dumps(message).encode()
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            header = bytes([0x81, 0x80 | n])
        elif n < 65536:
            header = bytes([0x81, 0x80 | 126]) + n.to_bytes(2, "big")
        else:
            header = bytes([0x81, 0x80 | 127]) + n.to_bytes(8, "big")
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        await asyncio.get_running_loop().sock_sendall(self.sock, header + mask + masked)

    def start_media(self, call_id: str, interval_s: float = 0.3) -> None:
        async def beat() -> None:
            n = 0
            while True:
                n += 1
                with contextlib.suppress(OSError):
                    await self.send({"type": "media", "call_id": call_id, "state": "connected",
                                     "stats": {"bytes_received": n * 50_000,
                                               "frames_decoded": n * 30}})
                await asyncio.sleep(interval_s)

        self._media = asyncio.get_running_loop().create_task(beat())

    async def closed_by_server(self) -> bool:
        """Now read: everything the server sent, then the end of the connection."""
        loop = asyncio.get_running_loop()
        try:
            while await loop.sock_recv(self.sock, 1 << 20):
                pass
        except ConnectionResetError:
            pass
        return True

    async def close(self) -> None:
        if self._media is not None:
            self._media.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._media
        self.sock.close()


async def colluding_call(app_client, live: bool):
    """A seller and a buyer whose only socket never reads; the call is accepted and, with
    live=True, live on the buyer's heartbeats and the seller's synthetic media. The seller
    has a second tab to flood from, so a flood that blocks its handler cannot pause the
    call."""
    seller = await seller_online(app_client, 300)
    sc = await ws_client(app_client, seller)
    flooder = await ws_client(app_client, seller)
    buyer = await actor(app_client)
    await fund(app_client, buyer.id, 1000)
    raw = await NeverReads.open(app_client, buyer.token)
    resp = await buyer.post("/api/calls", {"seller_id": seller.id, "rate": 300})
    assert resp.status == 201, await resp.text()
    call_id = (await resp.json())["call"]["id"]
    await sc.next("call.incoming")
    resp = await seller.post(f"/api/calls/{call_id}/accept")
    assert resp.status == 200, await resp.text()
    sm = None
    if live:
        raw.start_media(call_id)
        sm = SyntheticMedia(sc, call_id, 0.3)
        sm.start()
        while (await sc.next("call.state", call_id))["call"]["state"] != "live":
            pass
    else:
        # The buyer's socket becomes the call's socket for the relay.
        await raw.send({"type": "signal", "call_id": call_id, "data": {"hello": 1}})
        await sc.next("signal", call_id)
    return flooder, sc, sm, buyer, raw, call_id


def flood(sc, call_id: str, n: int = 400) -> asyncio.Task:
    """The seller relays big signals to the buyer's socket that never reads."""
    async def run() -> None:
        for i in range(n):
            await sc.send({"type": "signal", "call_id": call_id,
                           "data": {"i": i, "sdp": "x" * SIGNAL_BYTES}})
            await asyncio.sleep(0.002)

    return asyncio.get_running_loop().create_task(run())


async def stop(task: asyncio.Task) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, ConnectionError):
        await task


def filler_len(call_id: str, from_id: str, relayed_len: int) -> int:
    """How many pad characters make the relayed signal relayed_len bytes long."""
    def relayed(k: int) -> int:
        return len(json.dumps({"type": "signal", "call_id": call_id,
                               "data": {"pad": "x" * k}, "from": from_id}))
    return relayed_len - relayed(0)


def waiting_bytes(hub: Hub, user_id: str) -> int:
    return sum(b.queued_bytes for b in hub.sockets.get(int(user_id), {}).values())


async def test_client_that_never_reads_does_not_stop_billing(aiohttp_client, tmp_path):
    # Bounds so large that the slow socket stays open for the whole test: billing must go
    # on past it, not merely once it is closed. No heartbeat close during the test either.
    cfg = fast_calls_config(tmp_path, server={
        "ws_messages_per_10s": 100_000, "ws_heartbeat_s": 300,
        "ws_send_queue_messages": 100_000, "ws_send_queue_bytes": 1 << 30,
        "ws_send_timeout_s": 600})
    app_client = await aiohttp_client(create_app(cfg))
    hub = app_client.app[HUB]
    flooder, sc, sm, buyer, raw, call_id = await colluding_call(app_client, live=True)
    attack = flood(flooder, call_id)
    bystander = None
    try:
        # Flooded far past what the kernel and aiohttp buffer for a socket that is not read.
        await eventually(lambda: _true(waiting_bytes(hub, buyer.id) > 4 * SIGNAL_BYTES))
        # Four more relayed signals, sized to leave aiohttp's output counter (reset by the
        # flood's blocked send) just below its drain threshold: the next message to that
        # socket, the tick's meter, would then wait for a drain that never comes (it did
        # before sends were queued).
        frame = (AIOHTTP_WRITER_LIMIT - 40) // 4
        pad = filler_len(call_id, sc.id, frame - 4)  # 4: the frame header
        for _ in range(4):
            await sc.send({"type": "signal", "call_id": call_id, "data": {"pad": "x" * pad}})
        bystander = await start_live_call(app_client, 600, funds=1000, spend_cap="120")
        ended = (await bystander.bc.next("call.ended", bystander.call_id, within=30))["call"]
        meters = [m["billed_tenths"] for m in bystander.bc.seen("meter")
                  if m["call_id"] == bystander.call_id]
        # The colluding call was billed too: its meters went into the queue, not the wire.
        seller_meters = [m["billed_tenths"] for m in sc.seen("meter") if m["call_id"] == call_id]
        still_open = hub.is_connected(int(buyer.id))
        backlog = waiting_bytes(hub, buyer.id)
    finally:
        await stop(attack)
        if sm is not None:
            await sm.stop()
        await raw.close()
        await sc.close()
        await flooder.close()
        if bystander is not None:
            await bystander.close()
    # Every segment of the bystander's call was billed and it ended at its cap.
    assert ended["end_reason"] == "spend_cap"
    assert ended["billed_tenths"] == 2 and ended["charged"] == "120"
    assert meters == [1, 2]
    assert seller_meters and seller_meters[-1] >= 1
    # The reader that never reads was still connected with messages waiting for it.
    assert still_open and backlog > 0
    await audit_ok(app_client)


async def _true(value: bool) -> bool:
    return value


@pytest.mark.parametrize("bound", [
    {"ws_send_queue_messages": 8, "ws_send_timeout_s": 600},
    {"ws_send_queue_bytes": 4 * SIGNAL_BYTES, "ws_send_timeout_s": 600},
    {"ws_send_timeout_s": 0.5, "ws_send_queue_messages": 100_000,
     "ws_send_queue_bytes": 1 << 30},
], ids=["queue_messages", "queue_bytes", "send_timeout"])
async def test_a_slow_consumer_is_closed_and_nobody_else_notices(aiohttp_client, tmp_path,
                                                                 caplog, bound):
    caplog.set_level(logging.INFO, logger="meterchat.signalling")
    cfg = fast_calls_config(tmp_path, server={"ws_messages_per_10s": 100_000,
                                              "ws_heartbeat_s": 300, **bound})
    app_client = await aiohttp_client(create_app(cfg))
    hub = app_client.app[HUB]
    bystander = await start_live_call(app_client, 600, funds=1000)
    flooder, sc, _, buyer, raw, call_id = await colluding_call(app_client, live=False)
    attack = flood(flooder, call_id)
    try:
        await eventually(lambda: _true(not hub.is_connected(int(buyer.id))), timeout_s=20)
        assert await asyncio.wait_for(raw.closed_by_server(), 10)
        # The flooding seller's own socket, and the bystanders', carry on.
        for c in (flooder, sc, bystander.bc, bystander.sc):
            await c.send({"type": "ping"})
            await c.next("pong")
        meter = await bystander.bc.next("meter", bystander.call_id, within=15)
    finally:
        await stop(attack)
        await raw.close()
        await sc.close()
        await flooder.close()
        await bystander.close()
    assert meter["billed_tenths"] >= 1
    assert hub.slow_consumers_closed == 1
    why = "send_timeout" if bound["ws_send_timeout_s"] < 1 else "queue_full"
    events = [r.fields for r in caplog.records if r.getMessage() == "ws_slow_consumer"]
    assert events == [{"user_id": int(buyer.id), "reason": why}]


class StandInSocket:
    """Stands in for aiohttp's WebSocketResponse: sending raises the given error."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error
        self.sent: list[str] = []

    async def send_str(self, text: str) -> None:
        if self.error is not None:
            raise self.error
        self.sent.append(text)

    async def close(self, code: int, message: bytes) -> None:
        pass


class StandInTransport:
    def __init__(self) -> None:
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True


@pytest.mark.parametrize("error", [ConnectionError, ConnectionResetError, BrokenPipeError,
                                   ConnectionAbortedError, OSError, RuntimeError, ValueError])
async def test_a_send_error_on_one_socket_never_reaches_the_sender(error):
    hub = Hub(10, 30)
    bad, good = StandInSocket(error("boom")), StandInSocket(None)
    bad_t, good_t = StandInTransport(), StandInTransport()
    hub.start(hub.add(1, bad, 11, bad_t))
    hub.start(hub.add(1, good, 12, good_t))
    assert hub.send(1, {"type": "meter", "n": 1}) == 2  # queued at once, nothing raised
    await eventually(lambda: _true(bad_t.aborted and len(good.sent) == 1))
    # The failed socket takes nothing more; the good one goes on.
    assert hub.send(1, {"type": "meter", "n": 2}) == 1
    await eventually(lambda: _true(len(good.sent) == 2))
    assert [json.loads(t)["n"] for t in good.sent] == [1, 2] and not good_t.aborted
    await hub.close()


async def test_one_account_cannot_take_every_socket(aiohttp_client, tmp_path):
    cfg = fast_calls_config(tmp_path, server={"max_ws_per_user": 3, "max_ws_connections": 5})
    app_client = await aiohttp_client(create_app(cfg))
    hog = await actor(app_client)
    tabs = [await ws_client(app_client, hog) for _ in range(3)]
    extra = []
    try:
        for _ in range(2):
            resp = await app_client.get("/ws", params={"token": hog.token})
            body = await assert_error(resp, 429, "too_many_sockets")
            assert "3" in body["error"]["message"]
            assert resp.headers["Retry-After"]
        c = await ws_client_or_status(app_client, hog)
        assert c == 429
        # Somebody else still gets in, and the hog's own tabs are untouched.
        other = await actor(app_client)
        extra.append(await ws_client(app_client, other))
        for t in [*tabs, *extra]:
            await t.send({"type": "ping"})
            await t.next("pong")
        # A closed tab frees its slot.
        await tabs.pop().close()
        hub = app_client.app[HUB]
        await eventually(lambda: _true(len(hub.sockets.get(int(hog.id), {})) == 2))
        tabs.append(await ws_client(app_client, hog))
    finally:
        for t in [*tabs, *extra]:
            await t.close()


async def ws_client_or_status(app_client, who: Actor):
    """A real WebSocket handshake: the client if it opened, else the refusal's status."""
    c = Client(str(app_client.make_url("")))
    await c.__aenter__()
    c.token = who.token
    try:
        await c.open_ws()
    except aiohttp.WSServerHandshakeError as exc:
        return exc.status
    finally:
        await c.close()
    return c


async def test_logout_closes_the_sockets_of_that_session_only(aiohttp_client, tmp_path):
    app_client = await aiohttp_client(create_app(fast_calls_config(tmp_path)))
    user = await register(app_client)
    one, two = await login(app_client, user["email"]), await login(app_client, user["email"])
    a1 = Actor(app_client, one["user"], one["token"])
    a2 = Actor(app_client, two["user"], two["token"])
    tabs1 = [await ws_client(app_client, a1) for _ in range(2)]
    tab2 = await ws_client(app_client, a2)
    try:
        resp = await a1.post("/api/auth/logout")
        assert resp.status == 204
        for t in tabs1:
            await asyncio.wait_for(t._reader, 10)
            assert t.ws.closed and t.ws.close_code == CLOSE_LOGGED_OUT
        # The other session's tab is still open and answered.
        await tab2.send({"type": "ping"})
        await tab2.next("pong")
        assert not tab2.ws.closed
        await assert_error(await app_client.get("/ws", params={"token": a1.token}), 401)
        hub = app_client.app[HUB]
        await eventually(lambda: _true(len(hub.sockets.get(int(a1.id), {})) == 1))
    finally:
        for t in [*tabs1, tab2]:
            await t.close()


async def test_no_deflate_and_the_send_queues_in_metrics(aiohttp_client, tmp_path):
    """Browsers offer permessage-deflate; /ws declines it (small JSON messages, and a
    compressor per socket costs memory and CPU). /metrics shows how deep the send queues
    got since the last scrape and how many slow consumers were closed."""
    from prometheus_client.parser import text_string_to_metric_families

    app_client = await aiohttp_client(create_app(fast_calls_config(tmp_path)))
    who = await actor(app_client)
    ws = await app_client.ws_connect("/ws", params={"token": who.token}, compress=15)
    try:
        assert ws.compress == 0
        for _ in range(3):
            await ws.send_str('{"type": "ping"}')
        for _ in range(3):
            assert json.loads((await ws.receive()).data) == {"type": "pong"}

        async def figures() -> dict:
            text = await (await app_client.get("/metrics")).text()
            return {s.name: s.value for f in text_string_to_metric_families(text)
                    for s in f.samples}

        first = await figures()
        assert first["meterchat_ws_send_queue_peak_messages"] >= 1
        assert first["meterchat_ws_slow_consumers_closed_total"] == 0
        assert (await figures())["meterchat_ws_send_queue_peak_messages"] == 0  # since then
    finally:
        await ws.close()


async def test_a_send_that_hangs_is_aborted_after_the_send_timeout():
    """One timer per hub watches the sends under way (none per message): a send stuck
    longer than send_timeout_s aborts its socket, and the other sockets go on."""

    class Hangs(StandInSocket):
        async def send_str(self, text: str) -> None:
            await asyncio.Event().wait()

    hub = Hub(10, 30, send_timeout_s=0.2)
    stuck, good = Hangs(None), StandInSocket(None)
    stuck_t, good_t = StandInTransport(), StandInTransport()
    hub.start(hub.add(1, stuck, 11, stuck_t))
    hub.start(hub.add(2, good, 12, good_t))
    started = asyncio.get_running_loop().time()
    hub.send(1, {"type": "meter"})
    for n in range(20):
        hub.send(2, {"type": "meter", "n": n})
        await asyncio.sleep(0.02)
    await eventually(lambda: _true(stuck_t.aborted))
    took = asyncio.get_running_loop().time() - started
    assert 0.2 <= took < 1.0, took
    assert hub.slow_consumers_closed == 1 and not good_t.aborted and len(good.sent) == 20
    await hub.close()
