"""A meterchat client that makes real calls: logs in over HTTP, opens the /ws WebSocket,
starts or accepts a call, makes a WebRTC connection with aiortc through the server's
signalling (a synthetic video track each way), and sends the 2-second `media` heartbeats
from its real RTCPeerConnection state and counters (bytes received from getStats(), frames
actually decoded from the remote track).

Used by the tests, and by operators as a smoke test of a deployment:

    MC_SELLER_PASSWORD=... MC_BUYER_PASSWORD=... python -m tools.peer pair \\
        --url https://chat.example.com --seller-email s@example.com \\
        --buyer-email b@example.com --seconds 20

`--loopback` keeps ICE on 127.0.0.1 (aioice gathers every interface except loopback by
default), for tests and a server on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import json
import os
import sys
import time
from typing import Any

import aiohttp

MEDIA_INTERVAL_S = 2.0


def use_loopback_only() -> None:
    """Make aioice gather host candidates on 127.0.0.1 only."""
    import aioice.ice

    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


class ApiFailure(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body

    @property
    def code(self) -> str | None:
        try:
            return self.body["error"]["code"]
        except (KeyError, TypeError):
            return None


class Client:
    """One user talking to meterchat over HTTP (bearer token) and one WebSocket."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.http: aiohttp.ClientSession | None = None
        self.token: str | None = None
        self.user: dict = {}
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.messages: list[dict] = []
        self._new = asyncio.Event()
        self._reader: asyncio.Task | None = None

    @property
    def id(self) -> str:
        return self.user["id"]

    async def __aenter__(self) -> Client:
        self.http = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self.http is not None:
            await self.http.close()

    async def request(self, method: str, path: str, body: Any = None,
                      expect: int | tuple[int, ...] = (200, 201, 204)) -> Any:
        assert self.http is not None
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        async with self.http.request(method, self.base_url + path, json=body,
                                     headers=headers) as resp:
            data = await resp.json() if resp.status != 204 else None
            ok = (expect,) if isinstance(expect, int) else expect
            if resp.status not in ok:
                raise ApiFailure(resp.status, data)
            return data

    async def login(self, email: str, password: str) -> dict:
        data = await self.request("POST", "/api/auth/login",
                                  {"email": email, "password": password})
        self.token = data["token"]
        self.user = data["user"]
        return data

    async def open_ws(self) -> None:
        assert self.http is not None
        url = self.base_url.replace("http", "ws", 1) + "/ws"
        self.ws = await self.http.ws_connect(url, params={"token": self.token},
                                             heartbeat=20, max_msg_size=1 << 20)
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        assert self.ws is not None
        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                self.messages.append(json.loads(msg.data))
                self._new.set()

    async def send(self, message: dict) -> None:
        assert self.ws is not None
        await self.ws.send_json(message)

    async def next(self, type_: str, call_id: str | None = None, within: float = 10.0,
                   after: int = 0) -> dict:
        """The first message of this type (and call) at index >= after; consumed."""
        deadline = time.monotonic() + within
        while True:
            for i, m in enumerate(self.messages):
                if i >= after and m.get("type") == type_ and (
                        call_id is None or m.get("call_id", m.get("call", {}).get("id"))
                        == call_id):
                    del self.messages[i]
                    return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {type_} message within {within} s: {self.messages}")
            self._new.clear()
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation
            # that comes as the event is set, and a reader cancelled then never ends.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self._new.wait()

    def seen(self, type_: str) -> list[dict]:
        return [m for m in self.messages if m.get("type") == type_]


class SyntheticMedia:
    """Heartbeats without WebRTC (for load tests and scripted pauses): counters grow while
    `flowing` is True, and stall otherwise."""

    def __init__(self, client: Client, call_id: str, interval_s: float = MEDIA_INTERVAL_S):
        self.client = client
        self.call_id = call_id
        self.interval_s = interval_s
        self.flowing = True
        self.connected = True
        self.bytes = 0
        self.frames = 0
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def beat(self) -> None:
        if self.flowing:
            self.bytes += 50_000
            self.frames += 30
        await self.client.send({
            "type": "media", "call_id": self.call_id,
            "state": "connected" if self.connected else "disconnected",
            "stats": {"bytes_received": self.bytes, "frames_decoded": self.frames},
        })

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.beat()
            await asyncio.sleep(self.interval_s)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def _synthetic_track(width: int = 160, height: int = 120):
    from aiortc import VideoStreamTrack
    from av import VideoFrame

    class Bars(VideoStreamTrack):
        """A small moving test picture: cheap to encode, never a static frame."""

        def __init__(self) -> None:
            super().__init__()
            self.n = 0

        async def recv(self):
            pts, time_base = await self.next_timestamp()
            frame = VideoFrame(width=width, height=height, format="yuv420p")
            for plane in frame.planes:
                plane.update(bytes([(self.n * 3) % 256]) * plane.buffer_size)
            self.n += 1
            frame.pts = pts
            frame.time_base = time_base if time_base else fractions.Fraction(1, 90000)
            return frame

    return Bars()


def ice_candidate(data: dict):
    """An aiortc RTCIceCandidate from a browser's trickled `candidate` signal
    (RTCIceCandidate.toJSON(): `candidate: "candidate:..."`, `sdpMid`, `sdpMLineIndex`), or
    None for an end-of-candidates marker or anything that is not one."""
    from aiortc.sdp import candidate_from_sdp

    if not isinstance(data, dict):
        return None
    text = data.get("candidate")
    if not isinstance(text, str) or not text.strip():
        return None
    text = text.strip()
    candidate = candidate_from_sdp(text.split(":", 1)[1] if text.startswith("candidate:")
                                   else text)
    candidate.sdpMid = data.get("sdpMid")
    index = data.get("sdpMLineIndex")
    candidate.sdpMLineIndex = index if isinstance(index, int) else None
    if candidate.sdpMid is None and candidate.sdpMLineIndex is None:
        candidate.sdpMLineIndex = 0
    return candidate


class WebRTCPeer:
    """One side of a call over aiortc, speaking the pages' signalling (static/js/rtc.js): the
    buyer offers and the seller answers. aiortc gathers every ICE candidate before it sets
    its local description, so its own offer or answer carries them all and it never
    trickles; a browser trickles `{type: "candidate"}` signals, some before its offer or
    answer: they are applied once the remote description is set (or with it, when it is
    already there). A browser answerer asks for an offer with `{type: "ready"}` (the offer
    is sent again; `fresh` after its page reloaded: a new peer connection and a new offer);
    an offer marked `fresh` from a browser buyer that reloaded gets a new connection here
    too. Every signal is read by one task, one at a time, in order."""

    def __init__(self, client: Client, call_id: str, *, offer: bool,
                 media_interval_s: float = MEDIA_INTERVAL_S, loopback: bool = False,
                 ice_servers: list[dict] | None = None) -> None:
        from aiortc import RTCConfiguration, RTCIceServer

        if loopback:
            use_loopback_only()
        servers = [] if loopback else [
            RTCIceServer(urls=s["urls"], username=s.get("username"),
                         credential=s.get("credential")) for s in (ice_servers or [])
        ]
        self.client = client
        self.call_id = call_id
        self.offer = offer
        self.media_interval_s = media_interval_s
        self._configuration = RTCConfiguration(iceServers=servers)
        self.frames_decoded = 0
        self._tasks: list[asyncio.Task] = []
        self._pending: list = []
        self._negotiated = asyncio.Event()
        self.pc = self._new_pc()

    def _new_pc(self):
        from aiortc import RTCPeerConnection

        pc = RTCPeerConnection(self._configuration)
        pc.addTrack(_synthetic_track())
        pc.on("track", lambda track: self._on_track(pc, track))
        self._pending = []
        self._offered = False
        return pc

    async def _replace_pc(self) -> None:
        old, self.pc = self.pc, self._new_pc()
        with contextlib.suppress(Exception):
            await old.close()

    def _on_track(self, pc, track) -> None:
        async def consume() -> None:
            from aiortc.mediastreams import MediaStreamError

            with contextlib.suppress(MediaStreamError):
                while True:
                    await track.recv()
                    if pc is self.pc:
                        self.frames_decoded += 1

        self._tasks.append(asyncio.get_running_loop().create_task(consume()))

    async def connect(self, within: float = 20.0) -> None:
        """Negotiate: returns once the offer and the answer are both applied here."""
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._signals()))
        if self.offer:
            await self._send_offer()
        await asyncio.wait_for(self._negotiated.wait(), within)
        self._tasks.append(loop.create_task(self._heartbeats()))

    async def _send(self, data: dict) -> None:
        await self.client.send({"type": "signal", "call_id": self.call_id, "data": data})

    async def _send_offer(self) -> None:
        """Our offer (made once per peer connection, sent again when asked)."""
        pc = self.pc
        if pc.localDescription is None or pc.signalingState == "stable":
            await pc.setLocalDescription(await pc.createOffer())
        fresh = not self._offered
        self._offered = True
        await self._send({"type": "offer", "sdp": pc.localDescription.sdp, "fresh": fresh})

    async def _signals(self) -> None:
        while True:
            msg = await self.client.next("signal", self.call_id, within=24 * 3600)
            data = msg.get("data")
            try:
                await self._on_signal(data if isinstance(data, dict) else {})
            except Exception as exc:  # one bad signal never ends the call
                print(f"peer: signal {str(data)[:200]} not applied: {type(exc).__name__}: "
                      f"{exc}", file=sys.stderr, flush=True)

    async def _on_signal(self, data: dict) -> None:
        from aiortc import RTCSessionDescription

        kind = data.get("type")
        if kind == "candidate":
            candidate = ice_candidate(data.get("candidate"))
            if candidate is None:
                return
            if self.pc.remoteDescription is None:
                self._pending.append(candidate)
            else:
                await self._add_candidate(candidate)
        elif kind == "offer" and not self.offer and isinstance(data.get("sdp"), str):
            if data.get("fresh") and self.pc.remoteDescription is not None:
                await self._replace_pc()  # the buyer's page reloaded: a new connection
            pc = self.pc
            await pc.setRemoteDescription(RTCSessionDescription(sdp=data["sdp"], type="offer"))
            await self._flush_candidates()
            await pc.setLocalDescription(await pc.createAnswer())
            await self._send({"type": "answer", "sdp": pc.localDescription.sdp})
            self._negotiated.set()
        elif kind == "answer" and self.offer and isinstance(data.get("sdp"), str):
            if self.pc.signalingState != "have-local-offer":
                return  # an answer to an offer we no longer wait for
            await self.pc.setRemoteDescription(
                RTCSessionDescription(sdp=data["sdp"], type="answer"))
            await self._flush_candidates()
            self._negotiated.set()
        elif kind == "ready" and self.offer:
            if data.get("fresh") and self.pc.remoteDescription is not None:
                await self._replace_pc()  # the seller's page reloaded: start afresh
                await self._send_offer()
            elif self.pc.signalingState == "have-local-offer":
                await self._send_offer()  # our offer was lost or came too early
            # Connected, or negotiated and still connecting: aiortc has no ICE restart;
            # the path comes back by itself or the call's media timeout ends it.

    async def _add_candidate(self, candidate) -> None:
        try:
            await self.pc.addIceCandidate(candidate)
        except ValueError:
            pass  # after the remote side's end-of-candidates, or for a media line we lack

    async def _flush_candidates(self) -> None:
        pending, self._pending = self._pending, []
        for candidate in pending:
            await self._add_candidate(candidate)

    async def bytes_received(self) -> int:
        report = await self.pc.getStats()
        return sum(getattr(s, "bytesReceived", 0) or 0 for s in report.values()
                   if s.type == "transport")

    async def _heartbeats(self) -> None:
        while True:
            state = "connected" if self.pc.connectionState == "connected" else "disconnected"
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.client.send({
                    "type": "media", "call_id": self.call_id, "state": state,
                    "stats": {"bytes_received": await self.bytes_received(),
                              "frames_decoded": self.frames_decoded},
                })
            await asyncio.sleep(self.media_interval_s)

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        await self.pc.close()


async def call_as_buyer(client: Client, seller_id: str, **peer_kw) -> tuple[dict, WebRTCPeer]:
    """Start a call at the seller's current rate, wait for the accept, connect."""
    seller = (await client.request("GET", f"/api/sellers/{seller_id}"))["seller"]
    call = (await client.request("POST", "/api/calls",
                                 {"seller_id": seller_id, "rate": seller["rate"]}))["call"]
    while True:
        msg = await client.next("call.state", call["id"], within=60)
        if msg["call"]["state"] == "connecting":
            break
    if "ice_servers" not in peer_kw:
        peer_kw["ice_servers"] = (await client.request("GET", "/api/ice"))["ice_servers"]
    peer = WebRTCPeer(client, call["id"], offer=True, **peer_kw)
    await peer.connect()
    return call, peer


async def answer_as_seller(client: Client, within: float = 60, **peer_kw,
                           ) -> tuple[dict, WebRTCPeer]:
    """Wait for an incoming call, accept it, connect."""
    incoming = await client.next("call.incoming", within=within)
    call = incoming["call"]
    if "ice_servers" not in peer_kw:
        peer_kw["ice_servers"] = (await client.request("GET", "/api/ice"))["ice_servers"]
    peer = WebRTCPeer(client, call["id"], offer=False, **peer_kw)
    await client.request("POST", f"/api/calls/{call['id']}/accept")
    await peer.connect()
    return call, peer


# ---- command line -------------------------------------------------------------------

def _password(env: str) -> str:
    value = os.environ.get(env)
    if not value:
        raise SystemExit(f"set the password in the environment variable {env}")
    return value


def _print(event: str, **fields) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


async def run_seller(args) -> int:
    async with Client(args.url) as c:
        await c.login(args.seller_email, _password(args.seller_password_env))
        if args.rate:
            await c.request("PUT", "/api/seller/profile", {"rate": args.rate})
        await c.open_ws()
        await c.request("PUT", "/api/seller/status", {"online": True})
        _print("seller_online", seller_id=c.id)
        call, peer = await answer_as_seller(c, within=args.wait, loopback=args.loopback,
                                            media_interval_s=args.media_interval)
        _print("call_accepted", call_id=call["id"])
        try:
            ended = await c.next("call.ended", call["id"], within=args.seconds + 600)
            _print("call_ended", call=ended["call"])
        finally:
            await peer.close()
    return 0


async def run_buyer(args, seller_id: str | None = None) -> int:
    async with Client(args.url) as c:
        await c.login(args.buyer_email, _password(args.buyer_password_env))
        await c.open_ws()
        call, peer = await call_as_buyer(c, seller_id or args.seller_id, loopback=args.loopback,
                                         media_interval_s=args.media_interval)
        _print("call_started", call_id=call["id"])
        try:
            deadline = time.monotonic() + args.seconds
            while time.monotonic() < deadline:
                with contextlib.suppress(TimeoutError):
                    m = await c.next("meter", call["id"], within=deadline - time.monotonic())
                    _print("meter", **{k: v for k, v in m.items() if k != "type"})
            final = (await c.request("POST", f"/api/calls/{call['id']}/end"))["call"]
            _print("call_ended", call=final)
        finally:
            await peer.close()
        return 0 if final["billed_tenths"] > 0 else 1


async def run_pair(args) -> int:
    async with Client(args.url) as s:
        await s.login(args.seller_email, _password(args.seller_password_env))
        if args.rate:
            await s.request("PUT", "/api/seller/profile", {"rate": args.rate})
        await s.open_ws()
        await s.request("PUT", "/api/seller/status", {"online": True})
        seller_task = asyncio.get_running_loop().create_task(
            answer_as_seller(s, loopback=args.loopback, media_interval_s=args.media_interval))
        try:
            return await run_buyer(args, seller_id=s.id)
        finally:
            with contextlib.suppress(Exception):
                _, peer = await asyncio.wait_for(seller_task, 5)
                await peer.close()
            await s.request("PUT", "/api/seller/status", {"online": False})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.peer", description=__doc__.split("\n")[0])
    p.add_argument("mode", choices=("seller", "buyer", "pair"))
    p.add_argument("--url", required=True, help="server base URL, e.g. http://127.0.0.1:8080")
    p.add_argument("--seller-email")
    p.add_argument("--seller-password-env", default="MC_SELLER_PASSWORD")
    p.add_argument("--buyer-email")
    p.add_argument("--buyer-password-env", default="MC_BUYER_PASSWORD")
    p.add_argument("--seller-id", help="buyer mode: whom to call")
    p.add_argument("--rate", type=int, help="seller: set this rate (tokens/min) first")
    p.add_argument("--seconds", type=float, default=20, help="buyer: how long to stay in call")
    p.add_argument("--wait", type=float, default=600, help="seller: how long to wait for a call")
    p.add_argument("--media-interval", type=float, default=MEDIA_INTERVAL_S,
                   help="seconds between media heartbeats")
    p.add_argument("--loopback", action="store_true", help="ICE on 127.0.0.1 only")
    args = p.parse_args(argv)
    runner = {"seller": run_seller, "buyer": run_buyer, "pair": run_pair}[args.mode]
    try:
        return asyncio.run(runner(args))
    except ApiFailure as exc:
        print(f"peer: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
