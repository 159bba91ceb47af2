"""Capacity: N live calls in one `meterchat serve` process, everything running at once.

For each N of the ramp, a fresh server (a subprocess on the devnet defaults, in a temporary
directory, cheap argon2 parameters) carries N calls, each with two real WebSocket clients
(buyer and seller) that, like the browser client:
- send a `media` heartbeat every 2 s with growing counters (so the call is live and bills);
- send an occasional `signal`, relayed by the server to the other party;
- receive the server's `meter` message at every 6-s segment (the billing passes run as in
  production, every `billing.tick_interval_s`, settling each call once a minute);
- offer permessage-deflate, as browsers do (`--no-deflate` to leave it out).
Buyers browsing meanwhile call `GET /api/sellers` and `GET /api/me`.

Users, sessions, seller profiles and balances are written straight into the database first
(bench/load.py's `seed_users`: set-up, not measured); calls are started and accepted over
HTTP as the pages do. The clients run in `--workers` separate processes (each with a pair's
both parties), so the load generator is not the bottleneck, and each worker reports its own
event-loop lag: a figure measured while the clients' loops lag is the clients' stall, not
the server's. Clients keep a fixed timetable (bench/load.py's `ticks`): a late slot is
skipped, never sent in a burst. Their collectors are paused while measuring.

What is measured, over `--seconds` once every call is live:
- heartbeat to processed: after every `--probe-every`-th heartbeat the client sends `ping`
  on the same socket. The server reads one socket's messages in order and answers each
  before reading the next, so the `pong` arrives only after the heartbeat was read, parsed
  and applied to the call: heartbeat send to pong arrival bounds the heartbeat's processing
  from above (it includes two loopback hops and the ping's own handling);
- relay: a `signal` stamped with its send time (CLOCK_MONOTONIC, one clock for every
  process of the machine) to its arrival at the other party;
- meter delivery lag: a meter's arrival against the boundary of the segment it reports.
  The boundary is the call's start of live time plus 6 s per billed tenth; live time starts
  when the later party's second heartbeat is processed (the first growing counters), taken
  here as its send time, so the figure errs high by that heartbeat's processing. It holds
  the wait for the next billing pass (between ticks, passes for the calls whose segment has
  completed run at most `billing.meter_gap_s` = 0.1 s apart), the pass itself and the
  sending of its meters;
- the server's event-loop lag (`meterchat_event_loop_lag_seconds`, a timer due every
  25 ms) and billing pass time (`meterchat_billing_pass_seconds`), as p99 of the
  histograms' counts in the window, read from `/metrics` (interpolated within a bucket, as
  Prometheus' histogram_quantile does);
- the server's CPU (user + system, /proc/PID/stat) and RSS, its slow-consumer closes and
  peak send-queue depth; every error seen (failed connects and calls, `error` messages,
  unexpected closes and pauses, non-2xx answers).
The same run measures a bare aiohttp WebSocket echo server (this file with `--echo-server`,
on the same event loop as the server), driven by the same clients with the same sockets and
messages, each echoed: its CPU per message is the machine's yardstick, and the server's
CPU per inbound socket message is printed as a ratio of it.

    .venv/bin/python bench/capacity.py                       # the ramp: 100 ... 4,900 calls
    .venv/bin/python bench/capacity.py --calls 200 --seconds 20

Bounded: at most 9,900 calls and 300 s of measurement per N, each N with a deadline; loopback
only; every process it starts is stopped at the end. RLIMIT_NOFILE is raised to the hard
limit (every process inherits it) and the ramp keeps to what it allows.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import multiprocessing as mp
import os
import random
import resource
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

MAX_CALLS = 9_900
MAX_SECONDS = 300
RATE = 1  # tokens per minute; bench/load.py funds each buyer for 1,000 minutes
MEDIA_INTERVAL_S = 2.0
SEGMENT_S = 6.0
CLIENT_LAG_PROBE_S = 0.025
SLOW_MS = 100.0  # a probe or signal slower than this is listed with when it was sent
FDS_PER_PROCESS = 200  # beyond the sockets: the database, the devnet, pipes, modules
CANDIDATE = "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host"


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def event_loop_factory(choice: str = "auto"):
    """The event loop `meterchat serve` runs on for server.event_loop = choice (uvloop when
    installed), for the echo server too."""
    from meterchat.commands.serve import event_loop_factory as factory

    return factory(choice)


def run_loop(coro, choice: str = "auto"):
    factory, _name = event_loop_factory(choice)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)


# ---- processes under test ---------------------------------------------------------------

class ServerProcess:
    """A server subprocess that prints `serving on URL` once it listens."""

    def __init__(self, argv: list[str], workdir: Path) -> None:
        self.argv = argv
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def start(self, timeout_s: float = 60.0) -> None:
        out_path = self.workdir / "server.out"
        with out_path.open("w") as out, (self.workdir / "server.log").open("w") as err:
            self.proc = subprocess.Popen(self.argv, cwd=self.workdir, stdout=out, stderr=err)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            text = out_path.read_text()
            if "serving on " in text:
                self.url = text.split("serving on ")[1].split()[0]
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("the server did not start: "
                           + (self.workdir / "server.log").read_text()[-2000:])

    def cpu_s(self) -> float:
        assert self.proc is not None
        return process_cpu_s(self.proc.pid)

    def rss_mib(self) -> float:
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def meterchat_server(workdir: Path, calls: int, tick_s: float, loop: str,
                     block_s: float) -> ServerProcess:
    cfg = workdir / "meterchat.toml"
    cfg.write_text(
        f'[server]\nport = 0\nmax_ws_connections = {2 * calls + 50}\nevent_loop = "{loop}"\n'
        # Sellers are online from the set-up on; their sockets open within the grace.
        "presence_grace_s = 600\n"
        "password_hash_time_cost = 1\npassword_hash_memory_kib = 1024\n"
        '[database]\npath = "db.sqlite3"\n'
        f'[devnet]\nport = 0\npath = "devnet.sqlite3"\nblock_time_s = {block_s}\n'
        # Calls are set up over a minute or more at the largest N; none may time out then.
        f"[billing]\ntick_interval_s = {tick_s}\nconnect_timeout_s = 600\nring_timeout_s = 600\n")
    return ServerProcess([sys.executable, "-m", "meterchat.cli", "serve", "--config",
                          str(cfg)], workdir)


def echo_server(workdir: Path, loop: str) -> ServerProcess:
    return ServerProcess([sys.executable, str(Path(__file__).resolve()), "--echo-server",
                          "--event-loop", loop], workdir)


def serve_echo(loop_choice: str) -> None:
    """A bare aiohttp WebSocket echo server: every text message is sent back as it came.
    Like /ws, it declines permessage-deflate, so both do the same protocol work."""
    from aiohttp import WSMsgType, web

    async def ws_echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await ws.send_str(msg.data)
        return ws

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/ws", ws_echo)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
        await site.start()
        gc.collect()
        gc.freeze()
        port = runner.addresses[0][1]
        print(f"echo serving on http://127.0.0.1:{port}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await runner.cleanup()

    run_loop(main(), loop_choice)


# ---- /metrics ---------------------------------------------------------------------------

def scrape(url: str) -> dict[tuple[str, tuple], float]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url + "/metrics", timeout=30) as resp:
        text = resp.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def histogram_quantile(before: dict, after: dict, name: str, q: float) -> tuple[float, int]:
    """The q-quantile (seconds) of what a histogram counted between two scrapes, and how
    many it counted."""
    buckets = []
    for (sample, labels), value in after.items():
        if sample == name + "_bucket":
            le = float(dict(labels)["le"])
            buckets.append((le, value - before.get((sample, labels), 0.0)))
    buckets.sort()
    total = buckets[-1][1] if buckets else 0
    if total <= 0:
        return float("nan"), 0
    rank = q * total
    lower, below = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if le == float("inf"):
                return lower, int(total)
            inside = count - below
            return lower + (le - lower) * ((rank - below) / inside if inside else 1), int(total)
        lower, below = le, count
    return lower, int(total)


def histogram_above(before: dict, after: dict, name: str, le: str) -> int:
    """How many observations between two scrapes were above the bucket bound `le`."""
    def delta(bound: str) -> float:
        key = (name + "_bucket", (("le", bound),))
        return after.get(key, 0.0) - before.get(key, 0.0)
    return int(delta("+Inf") - delta(le))


def metric(scraped: dict, name: str) -> float:
    return scraped.get((name, ()), float("nan"))


# ---- the clients ------------------------------------------------------------------------

class Party:
    __slots__ = ("user_id", "token", "ws", "call", "second_hb_at", "probe_at", "probe_slot")

    def __init__(self, user: dict) -> None:
        self.user_id = user["id"]
        self.token = user["token"]
        self.ws = None
        self.call: Call | None = None
        self.second_hb_at: float | None = None
        self.probe_at: float | None = None
        self.probe_slot = 0


class Call:
    __slots__ = ("id", "buyer", "seller", "live")

    def __init__(self, buyer: Party, seller: Party) -> None:
        self.id = ""
        self.buyer, self.seller = buyer, seller
        self.live = False

    def live_at(self) -> float | None:
        if self.buyer.second_hb_at is None or self.seller.second_hb_at is None:
            return None
        return max(self.buyer.second_hb_at, self.seller.second_hb_at)


class Worker:
    """One client process: its share of the calls, both parties of each."""

    def __init__(self, conn, url: str, pairs: list, opts: dict) -> None:
        self.conn = conn
        self.url = url
        self.ws_url = url.replace("http", "ws", 1) + "/ws"
        self.opts = opts
        self.echo = opts["echo"]
        self.calls = [Call(Party(b), Party(s)) for b, s in pairs]
        self.errors: Counter = Counter()
        self.commands: asyncio.Queue = asyncio.Queue()
        self.stopping = False
        self.measuring = False
        self.tasks: list[asyncio.Task] = []
        self.reset()

    def reset(self) -> None:
        self.hb_ms: list[float] = []
        self.relay_ms: list[float] = []
        self.meter_ms: list[float] = []
        self.meter_at: list[float] = []
        self.slow: list[tuple[float, float]] = []  # (sent at, ms): probes and signals > 100 ms
        self.lag_ms: list[float] = []
        self.http_ms: dict[str, list[float]] = {"/api/me": [], "/api/sellers": [],
                                                "/api/calls/ID": []}
        self.sent = Counter()
        self.received = 0
        self.measure_errors: Counter = Counter()

    def error(self, what: str) -> None:
        self.errors[what] += 1
        if self.measuring:
            self.measure_errors[what] += 1

    # -- the command pipe, read by a thread of its own (the loop's add_reader would make
    # the pipe non-blocking, and a large result would then not go out in one send)
    def _read_commands(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            try:
                cmd = self.conn.recv()
            except (EOFError, OSError):
                cmd = ("exit",)
            loop.call_soon_threadsafe(self.commands.put_nowait, cmd)
            if cmd[0] == "exit":
                return

    async def command(self) -> tuple:
        return await self.commands.get()

    async def run(self) -> None:
        import threading

        import aiohttp

        loop = asyncio.get_running_loop()
        threading.Thread(target=self._read_commands, args=(loop,), daemon=True).start()
        connector = aiohttp.TCPConnector(limit=0, force_close=False)
        async with aiohttp.ClientSession(connector=connector) as http:
            self.http = http
            try:
                await self.connect_all()
                self.conn.send(("connected", dict(self.errors)))
                while True:
                    cmd = await self.command()
                    if cmd[0] == "calls":
                        ok = await self.start_calls()
                        self.conn.send(("started", ok, dict(self.errors)))
                    elif cmd[0] == "live":
                        self.conn.send(("live", sum(c.live for c in self.calls)))
                    elif cmd[0] == "settle":
                        # The collector stops this loop: before measuring, never in it.
                        gc.collect()
                        gc.freeze()
                        gc.disable()
                    elif cmd[0] == "measure":
                        self.reset()
                        self.measuring = True
                        cpu0, t0 = time.process_time(), time.monotonic()
                    elif cmd[0] == "stop":
                        self.measuring = False
                        wall = time.monotonic() - t0
                        cpu = (time.process_time() - cpu0) / wall
                        gc.enable()
                        self.conn.send(("result", self.result(cpu)))
                    elif cmd[0] == "exit":
                        break
            finally:
                self.stopping = True
                for t in self.tasks:
                    t.cancel()
                await asyncio.gather(*self.tasks, return_exceptions=True)
                for c in self.calls:
                    for p in (c.buyer, c.seller):
                        if p.ws is not None:
                            with contextlib.suppress(Exception):
                                await p.ws.close()

    def result(self, cpu: float) -> dict:
        return {"hb_ms": self.hb_ms, "relay_ms": self.relay_ms, "meter_ms": self.meter_ms,
                "slow": self.slow,
                "lag_ms": self.lag_ms, "http_ms": self.http_ms, "sent": dict(self.sent),
                "received": self.received, "cpu": cpu, "errors": dict(self.measure_errors),
                "all_errors": dict(self.errors)}

    # -- set-up
    async def connect_all(self) -> None:
        sem = asyncio.Semaphore(64)
        compress = 0 if self.opts["no_deflate"] else 15

        async def one(p: Party) -> None:
            async with sem:
                try:
                    p.ws = await self.http.ws_connect(
                        self.ws_url, params=None if self.echo else {"token": p.token},
                        heartbeat=None, autoping=True, compress=compress)
                except Exception as exc:  # noqa: BLE001 - counted, the run goes on
                    self.error(f"connect {type(exc).__name__}")
                    return
            self.tasks.append(asyncio.create_task(self.reader(p)))

        await asyncio.gather(*(one(p) for c in self.calls for p in (c.buyer, c.seller)))
        self.tasks.append(asyncio.create_task(self.lag_probe()))

    async def start_calls(self) -> int:
        sem = asyncio.Semaphore(16)
        started = 0

        async def one(c: Call) -> None:
            nonlocal started
            if c.buyer.ws is None or c.seller.ws is None:
                return
            if not self.echo:
                async with sem:
                    status, data = await self.post("/api/calls", c.buyer.token,
                                                   {"seller_id": c.seller.user_id, "rate": RATE})
                    if status != 201:
                        return
                    c.id = data["call"]["id"]
                    status, _ = await self.post(f"/api/calls/{c.id}/accept", c.seller.token)
                    if status != 200:
                        return
            else:
                c.id = "1"
            started += 1
            c.buyer.call = c.seller.call = c
            # Calls start at different moments: their heartbeats, segments and minutes
            # spread out as those of independent clients do.
            sig = self.opts["signal_interval"]
            sig_phase = random.uniform(0, sig)
            for p, offset in ((c.buyer, 0.0), (c.seller, sig)):
                p.probe_slot = random.randrange(max(1, self.opts["probe_every"]))
                self.tasks.append(asyncio.create_task(
                    self.heartbeats(p, random.uniform(0, MEDIA_INTERVAL_S))))
                self.tasks.append(asyncio.create_task(
                    self.signals(p, sig_phase + offset, 2 * sig)))
                if self.opts["call_poll"] and not self.echo:
                    self.tasks.append(asyncio.create_task(
                        self.poll_call(p, random.uniform(0, self.opts["call_poll"]))))

        await asyncio.gather(*(one(c) for c in self.calls))
        for i in range(self.opts["browsers"]):
            c = self.calls[i % len(self.calls)]
            self.tasks.append(asyncio.create_task(self.browse(c.buyer.token, i)))
        return started

    async def post(self, path: str, token: str, body: dict | None = None) -> tuple[int, dict]:
        try:
            async with self.http.post(self.url + path, json=body,
                                      headers={"Authorization": f"Bearer {token}"}) as resp:
                data = await resp.json()
                if resp.status >= 300:
                    self.error(f"HTTP {resp.status} {data['error']['code']}")
                return resp.status, data
        except Exception as exc:  # noqa: BLE001
            self.error(f"HTTP {type(exc).__name__}")
            return 0, {}

    # -- the timetables
    async def ticks(self, phase: float, interval: float):
        """phase + k x interval, skipping slots already past (see bench/load.py)."""
        loop = asyncio.get_running_loop()
        due = loop.time() + phase
        while not self.stopping:
            await asyncio.sleep(max(0.0, due - loop.time()))
            if self.stopping:
                return
            yield
            now = loop.time()
            due += interval
            if due < now:
                due += (now - due) // interval * interval + interval

    async def heartbeats(self, p: Party, phase: float) -> None:
        n = 0
        every = self.opts["probe_every"]
        call_id = p.call.id
        async for _ in self.ticks(phase, MEDIA_INTERVAL_S):
            n += 1
            text = (f'{{"type": "media", "call_id": "{call_id}", "state": "connected", '
                    f'"stats": {{"bytes_received": {n * 150_000}, '
                    f'"frames_decoded": {n * 60}}}}}')
            sent_at = time.monotonic()
            try:
                await p.ws.send_str(text)
                self.sent["media"] += self.measuring
                if n == 2:
                    p.second_hb_at = sent_at
                if every and n % every == p.probe_slot and p.probe_at is None:
                    p.probe_at = sent_at
                    await p.ws.send_str('{"type": "ping"}')
                    self.sent["ping"] += self.measuring
            except (ConnectionError, RuntimeError):
                self.error("send failed")
                return

    async def signals(self, p: Party, phase: float, interval: float) -> None:
        call_id = p.call.id
        async for _ in self.ticks(phase, interval):
            try:
                await p.ws.send_str(
                    f'{{"type": "signal", "call_id": "{call_id}", "data": {{"type": '
                    f'"candidate", "t": {time.monotonic_ns()}, "candidate": "{CANDIDATE}"}}}}')
                self.sent["signal"] += self.measuring
            except (ConnectionError, RuntimeError):
                self.error("send failed")
                return

    async def browse(self, token: str, i: int) -> None:
        """A buyer browsing: the sellers' list, their own account, about one request every
        `browse_interval` seconds."""
        interval = self.opts["browse_interval"]
        paths = ["/api/sellers", "/api/me"]
        n = i
        async for _ in self.ticks(random.uniform(0, interval), interval):
            path = paths[n % 2]
            n += 1
            started = time.monotonic()
            try:
                async with self.http.get(self.url + path,
                                         headers={"Authorization": f"Bearer {token}"}) as resp:
                    await resp.read()
                    if resp.status != 200:
                        self.error(f"HTTP {resp.status} {path}")
            except Exception as exc:  # noqa: BLE001
                self.error(f"HTTP {type(exc).__name__} {path}")
                continue
            if self.measuring:
                self.http_ms[path].append((time.monotonic() - started) * 1000)

    async def poll_call(self, p: Party, phase: float) -> None:
        """The call page's catch-up read of its call (static/js/pages/call.js), every
        `call_poll` seconds."""
        interval = self.opts["call_poll"]
        path = f"/api/calls/{p.call.id}"
        headers = {"Authorization": f"Bearer {p.token}"}
        async for _ in self.ticks(phase, interval):
            started = time.monotonic()
            try:
                async with self.http.get(self.url + path, headers=headers) as resp:
                    await resp.read()
                    if resp.status != 200:
                        self.error(f"HTTP {resp.status} /api/calls/ID")
            except Exception as exc:  # noqa: BLE001
                self.error(f"HTTP {type(exc).__name__} /api/calls/ID")
                continue
            if self.measuring:
                self.http_ms["/api/calls/ID"].append((time.monotonic() - started) * 1000)

    async def lag_probe(self) -> None:
        while not self.stopping:
            due = time.monotonic() + CLIENT_LAG_PROBE_S
            await asyncio.sleep(CLIENT_LAG_PROBE_S)
            if self.measuring:
                self.lag_ms.append(max(0.0, time.monotonic() - due) * 1000)

    # -- what arrives
    async def reader(self, p: Party) -> None:
        import aiohttp

        ws = p.ws
        echo = self.echo
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            now = time.monotonic()
            data = msg.data
            head = data[:26]
            if self.measuring:
                self.received += 1
            if ('"pong"' in head) or (echo and '"ping"' in head):
                if p.probe_at is not None:
                    if self.measuring:
                        took = (now - p.probe_at) * 1000
                        self.hb_ms.append(took)
                        if took > SLOW_MS:
                            self.slow.append((p.probe_at, took))
                    p.probe_at = None
            elif '"meter"' in head:
                if self.measuring and p.call is not None:
                    live_at = p.call.live_at()
                    tenths = json.loads(data)["billed_tenths"]
                    if live_at is not None:
                        self.meter_ms.append((now - live_at - tenths * SEGMENT_S) * 1000)
                        self.meter_at.append(now)
            elif '"signal"' in head:
                if self.measuring:
                    sent_ns = json.loads(data)["data"]["t"]
                    took = (time.monotonic_ns() - sent_ns) / 1e6
                    self.relay_ms.append(took)
                    if took > SLOW_MS:
                        self.slow.append((sent_ns / 1e9, took))
            elif '"call.state"' in head:
                state = json.loads(data)["call"]["state"]
                if state == "live" and p.call is not None:
                    p.call.live = True
                elif state == "paused":
                    self.error("call paused")
            elif '"call.ended"' in head:
                self.error("call ended")
            elif '"error"' in head:
                self.error(f"ws error {json.loads(data)['code']}")
        if not self.stopping:
            self.error("socket closed by the server")


def worker_main(conn, url: str, pairs: list, opts: dict) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process stops the workers
    run_loop(Worker(conn, url, pairs, opts).run())


# ---- one run ----------------------------------------------------------------------------

class Workers:
    def __init__(self, url: str, pairs: list, count: int, opts: dict) -> None:
        ctx = mp.get_context("spawn")
        count = max(1, min(count, len(pairs)))
        self.conns, self.procs = [], []
        for i in range(count):
            mine, theirs = ctx.Pipe()
            proc = ctx.Process(target=worker_main, args=(theirs, url, pairs[i::count], opts),
                               daemon=True)
            proc.start()
            theirs.close()
            self.conns.append(mine)
            self.procs.append(proc)

    def send(self, *cmd) -> None:
        for c in self.conns:
            c.send(cmd)

    def gather(self, kind: str, timeout_s: float) -> list[tuple]:
        deadline = time.monotonic() + timeout_s
        out = []
        for c in self.conns:
            if not c.poll(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"a client worker did not report {kind!r} in time")
            msg = c.recv()
            if msg[0] != kind:
                raise RuntimeError(f"a client worker said {msg!r}, not {kind!r}")
            out.append(msg)
        return out

    def close(self) -> None:
        for c in self.conns:
            with contextlib.suppress(OSError):
                c.send(("exit",))
        for p in self.procs:
            p.join(30)
            if p.is_alive():
                p.terminate()
                p.join(5)


def count_live(db_path: Path) -> int:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute("SELECT COUNT(*) FROM calls WHERE state = 'live'").fetchone()[0]
    finally:
        conn.close()


def merge(results: list[dict]) -> dict:
    out = {"hb_ms": [], "relay_ms": [], "meter_ms": [], "slow": [],
           "http_me": [], "http_sellers": [], "http_call": [],
           "sent": Counter(), "received": 0, "client_cpu": [], "client_lag_p99": [],
           "errors": Counter(), "all_errors": Counter()}
    for r in results:
        out["hb_ms"] += r["hb_ms"]
        out["relay_ms"] += r["relay_ms"]
        out["meter_ms"] += r["meter_ms"]
        out["slow"] += r["slow"]
        out["http_me"] += r["http_ms"]["/api/me"]
        out["http_sellers"] += r["http_ms"]["/api/sellers"]
        out["http_call"] += r["http_ms"]["/api/calls/ID"]
        out["sent"].update(r["sent"])
        out["received"] += r["received"]
        out["client_cpu"].append(r["cpu"])
        out["client_lag_p99"].append(pct(r["lag_ms"], 0.99))
        out["errors"].update(r["errors"])
        out["all_errors"].update(r["all_errors"])
    return out


def measure(calls: int, args: argparse.Namespace, echo: bool) -> dict:
    """One N: the meterchat server (or the bare echo server) under `calls` calls."""
    from load import seed_users

    opts = {"echo": echo, "probe_every": args.probe_every,
            "signal_interval": args.signal_interval, "browsers": 0 if echo else args.browsers,
            "browse_interval": args.browse_interval, "no_deflate": args.no_deflate,
            "tick": args.tick, "call_poll": args.call_poll}
    seconds = args.echo_seconds if echo else args.seconds
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="meterchat-capacity-") as tmp:
        workdir = Path(tmp)
        t0 = time.monotonic()
        if echo:
            pairs = [({"id": "0", "token": ""}, {"id": "0", "token": ""})] * calls
            server = echo_server(workdir, args.event_loop)
        else:
            pairs = seed_users(workdir / "db.sqlite3", calls)
            server = meterchat_server(workdir, calls, args.tick, args.event_loop,
                                      args.devnet_block)
        timings["seed"] = time.monotonic() - t0
        server.start()
        workers = None
        try:
            t0 = time.monotonic()
            workers = Workers(server.url, pairs, args.workers, opts)
            workers.gather("connected", 300)
            timings["connect"] = time.monotonic() - t0
            t0 = time.monotonic()
            workers.send("calls")
            started = sum(m[1] for m in workers.gather("started", 600))
            timings["calls"] = time.monotonic() - t0
            t0 = time.monotonic()
            live = started
            if not echo:
                while time.monotonic() - t0 < 120:
                    time.sleep(1.0)
                    live = count_live(workdir / "db.sqlite3")
                    if live >= started:
                        break
            timings["live"] = time.monotonic() - t0
            # Past the last call's first segments and the clients' own set-up work and
            # collection (its stall delays what the clients send and read meanwhile).
            workers.send("settle")
            time.sleep(2 * MEDIA_INTERVAL_S)
            before = {} if echo else scrape(server.url)
            workers.send("measure")
            cpu0, t_start, machine0 = server.cpu_s(), time.monotonic(), machine_busy_s()
            # Every half second: what the rest of the machine used meanwhile (all busy
            # cores less the server, the clients and this process), to set beside stalls.
            ours = [server.proc.pid, os.getpid(), *(w.pid for w in workers.procs)]
            others = []
            last_t, last_busy = t_start, machine0
            last_ours = sum(process_cpu_s(pid) for pid in ours)
            while time.monotonic() < t_start + seconds:
                time.sleep(min(0.5, max(0.0, t_start + seconds - time.monotonic())))
                now_t, busy = time.monotonic(), machine_busy_s()
                now_ours = sum(process_cpu_s(pid) for pid in ours)
                others.append((last_t - t_start, ((busy - last_busy) - (now_ours - last_ours))
                               / max(1e-3, now_t - last_t)))
                last_t, last_busy, last_ours = now_t, busy, now_ours
            workers.send("stop")
            wall = time.monotonic() - t_start
            cpu = server.cpu_s() - cpu0
            machine = machine_busy_s() - machine0
            after = {} if echo else scrape(server.url)
            rss = server.rss_mib()
            results = merge([m[1] for m in workers.gather("result", 120)])
        finally:
            if workers is not None:
                workers.close()
            server.stop()
            if args.keep_logs:
                keep = Path(args.keep_logs)
                keep.mkdir(parents=True, exist_ok=True)
                name = f"{'echo' if echo else 'server'}-{calls}.log"
                (keep / name).write_bytes((workdir / "server.log").read_bytes())
    inbound = sum(results["sent"].values())
    r = {"calls": calls, "started": started, "tick": args.tick, "live": live, "seconds": wall,
         "timings": timings, "server_cpu": cpu / wall, "rss_mib": rss,
         "inbound": inbound, "inbound_per_s": inbound / wall,
         "cpu_us_per_msg": cpu / inbound * 1e6 if inbound else float("nan"),
         "heartbeats": results["sent"]["media"],
         "cpu_us_per_heartbeat": (cpu / results["sent"]["media"] * 1e6
                                  if results["sent"]["media"] else float("nan")),
         "hb_p50": pct(results["hb_ms"], 0.50), "hb_p99": pct(results["hb_ms"], 0.99),
         "hb_n": len(results["hb_ms"]),
         "relay_p50": pct(results["relay_ms"], 0.50), "relay_p99": pct(results["relay_ms"], 0.99),
         "relay_n": len(results["relay_ms"]),
         "meter_p50": pct(results["meter_ms"], 0.50), "meter_p99": pct(results["meter_ms"], 0.99),
         "meter_n": len(results["meter_ms"]),
         "http_me_p99": pct(results["http_me"], 0.99), "http_sellers_p99":
         pct(results["http_sellers"], 0.99),
         "http_call_p99": pct(results["http_call"], 0.99),
         "http_n": len(results["http_me"]) + len(results["http_sellers"]),
         "http_call_n": len(results["http_call"]),
         "client_cpu_max": max(results["client_cpu"]),
         # What the rest of the machine (other work, this bench's main process) used, in
         # cores: on a shared machine, the latencies are only as good as this is small.
         "others_cores": (machine - cpu) / wall - sum(results["client_cpu"]),
         "client_lag_p99_max": max(results["client_lag_p99"]),
         "stalls": stalls(results["slow"], t_start, others),
         "errors": dict(results["errors"]), "setup_errors": dict(
             results["all_errors"] - results["errors"])}
    if not echo:
        r["loop_lag_p99"], r["loop_lag_n"] = histogram_quantile(
            before, after, "meterchat_event_loop_lag_seconds", 0.99)
        r["loop_lag_over_100ms"] = histogram_above(
            before, after, "meterchat_event_loop_lag_seconds", "0.1")
        r["pass_p99"], r["passes"] = histogram_quantile(
            before, after, "meterchat_billing_pass_seconds", 0.99)
        r["ws_connections"] = metric(after, "meterchat_ws_connections")
        r["slow_consumers"] = (metric(after, "meterchat_ws_slow_consumers_closed_total")
                               - metric(before, "meterchat_ws_slow_consumers_closed_total"))
        r["queue_peak"] = metric(after, "meterchat_ws_send_queue_peak_messages")
    return r


def stalls(slow: list[tuple[float, float]], t_start: float,
           others: list[tuple[float, float]]) -> list[tuple[float, int, float, float]]:
    """Probes and signals slower than SLOW_MS, grouped by when they were sent (a gap of a
    second ends a group): (seconds into the window, how many, the slowest in ms, the most
    cores the rest of the machine used within a second of it)."""
    groups: list[list[float]] = []
    last = float("-inf")
    for at, took in sorted(slow):
        if at - last > 1.0:
            groups.append([at - t_start, 0, 0.0])
        last = at
        groups[-1][1] += 1
        groups[-1][2] = max(groups[-1][2], took)
    out = []
    for at, n, worst in groups:
        near = [cores for t, cores in others if at - 1.0 <= t <= at + 1.0]
        out.append((at, int(n), worst, max(near, default=float("nan"))))
    return out


# ---- output -----------------------------------------------------------------------------

def ms(v: float) -> str:
    return "n/a" if v != v else (f"{v:.1f}" if v >= 10 else f"{v:.2f}")


def print_echo(e: dict) -> None:
    print(f"  echo: {e['inbound_per_s']:.0f} messages/s echoed on {2 * e['calls']} sockets, "
          f"CPU {e['server_cpu']:.0%} of a core, {e['cpu_us_per_msg']:.1f} us per message; "
          f"ping after heartbeat p99 {ms(e['hb_p99'])} ms; clients: loop lag p99 "
          f"{ms(e['client_lag_p99_max'])} ms (worst worker), CPU {e['client_cpu_max']:.0%} "
          f"(busiest worker); the rest of the machine {e['others_cores']:.2f} cores; errors: "
          f"{e['errors'] or 'none'}", flush=True)


def print_run(r: dict, e: dict | None) -> None:
    ratio = r["cpu_us_per_msg"] / e["cpu_us_per_msg"] if e else float("nan")
    t = r["timings"]
    print(f"N={r['calls']} calls ({2 * r['calls']} sockets; {r['live']} live, server counts "
          f"{r['ws_connections']:.0f} sockets), {r['seconds']:.0f} s window:", flush=True)
    print(f"  heartbeat to processed p99 {ms(r['hb_p99'])} ms (p50 {ms(r['hb_p50'])}, "
          f"{r['hb_n']} probes); relay p99 {ms(r['relay_p99'])} ms (p50 {ms(r['relay_p50'])}, "
          f"{r['relay_n']} signals); meter delivery lag p99 {ms(r['meter_p99'])} ms (p50 "
          f"{ms(r['meter_p50'])}, {r['meter_n']} meters; between ticks a pass runs at most "
          "billing.meter_gap_s after a segment's boundary)", flush=True)
    print(f"  server: loop lag p99 {ms(r['loop_lag_p99'] * 1000)} ms ({r['loop_lag_n']} probes, "
          f"{r['loop_lag_over_100ms']} over 100 ms),"
          f" billing pass p99 {ms(r['pass_p99'] * 1000)} ms ({r['passes']} passes); CPU "
          f"{r['server_cpu']:.0%} of a core for {r['inbound_per_s']:.0f} socket messages/s in "
          f"({r['cpu_us_per_msg']:.1f} us each, {ratio:.2f}x the bare echo's; "
          f"{r['cpu_us_per_heartbeat']:.0f} us of all its work per heartbeat); RSS "
          f"{r['rss_mib']:.0f} MiB; HTTP p99 /api/sellers {ms(r['http_sellers_p99'])} ms, "
          f"/api/me {ms(r['http_me_p99'])} ms ({r['http_n']} requests)"
          + (f", /api/calls/ID {ms(r['http_call_p99'])} ms ({r['http_call_n']} polls)"
             if r["http_call_n"] else "") + "; send queues: peak "
          f"{r['queue_peak']:.0f} messages, {r['slow_consumers']:.0f} slow consumers closed",
          flush=True)
    print(f"  clients: loop lag p99 {ms(r['client_lag_p99_max'])} ms (worst worker), CPU "
          f"{r['client_cpu_max']:.0%} (busiest worker); the rest of the machine "
          f"{r['others_cores']:.2f} cores; set-up: seeded {t['seed']:.1f} s, "
          f"connected {t['connect']:.1f} s, calls {t['calls']:.1f} s, live {t['live']:.1f} s; "
          f"errors in the window: {r['errors'] or 'none'}; before it: "
          f"{r['setup_errors'] or 'none'}", flush=True)
    if r["stalls"]:
        shown = ", ".join(f"{at:.1f} s ({n} x, up to {worst:.0f} ms; others {cores:.1f})"
                          for at, n, worst, cores in r["stalls"][:12])
        print(f"  probes or signals over {SLOW_MS:.0f} ms, by when they were sent (and the "
              f"most cores the rest of the machine used then): {shown}"
              + (" ..." if len(r["stalls"]) > 12 else ""), flush=True)
    if e is not None:
        print_echo(e)


def print_table(rows: list[tuple[dict, dict | None]]) -> None:
    print("\n| calls | sockets | heartbeat p99 | relay p99 | meter lag p99 | loop lag p99 | "
          "billing pass p99 | server CPU | us/message (x echo) | RSS | client lag p99 | "
          "errors |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r, e in rows:
        ratio = r["cpu_us_per_msg"] / e["cpu_us_per_msg"] if e else float("nan")
        errors = sum(r["errors"].values())
        print(f"| {r['calls']:,} | {2 * r['calls']:,} | {ms(r['hb_p99'])} ms | "
              f"{ms(r['relay_p99'])} ms | {ms(r['meter_p99'])} ms | "
              f"{ms(r['loop_lag_p99'] * 1000)} ms | {ms(r['pass_p99'] * 1000)} ms | "
              f"{r['server_cpu']:.0%} | {r['cpu_us_per_msg']:.1f} ({ratio:.2f}x) | "
              f"{r['rss_mib']:.0f} MiB | {ms(r['client_lag_p99_max'])} ms | "
              f"{errors or 'none'} |", flush=True)


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used, from /proc/PID/stat."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float:
    """CPU seconds every core of the machine has spent busy (/proc/stat), all processes."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--calls", type=int, nargs="+", default=[100, 1000, 2500, 4900])
    p.add_argument("--seconds", type=float, default=60.0,
                   help="measurement window per N (60 s holds every call's minute boundary)")
    p.add_argument("--workers", type=int, default=4, help="client processes")
    p.add_argument("--probe-every", type=int, default=4,
                   help="a ping after every k-th heartbeat of a socket (0: none)")
    p.add_argument("--signal-interval", type=float, default=10.0,
                   help="seconds between one call's signals (its parties take turns)")
    p.add_argument("--browsers", type=int, default=2, help="browsing buyers per worker")
    p.add_argument("--browse-interval", type=float, default=0.5,
                   help="seconds between one browsing buyer's requests")
    p.add_argument("--call-poll", type=float, default=0.0,
                   help="seconds between each party's GET /api/calls/ID (the call page's "
                        "catch-up; 0: none)")
    p.add_argument("--tick", type=float, default=1.0, help="billing.tick_interval_s")
    p.add_argument("--devnet-block", type=float, default=3.0, help="devnet.block_time_s")
    p.add_argument("--no-deflate", action="store_true",
                   help="clients do not offer permessage-deflate (browsers do)")
    p.add_argument("--event-loop", choices=("auto", "uvloop", "asyncio"), default="auto",
                   help="server.event_loop of the server (and the echo server)")
    p.add_argument("--no-echo", action="store_true", help="skip the bare echo server")
    p.add_argument("--echo-seconds", type=float, default=15.0)
    p.add_argument("--keep-logs", metavar="DIR", help="copy each server's log into DIR")
    p.add_argument("--echo-server", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.echo_server:
        serve_echo(args.event_loop)
        return 0
    limit = raise_nofile()
    per_worker = -(-max(args.calls) * 2 // args.workers)
    allowed = min((limit - FDS_PER_PROCESS) // 2, MAX_CALLS)
    if max(args.calls) > allowed or max(args.seconds, args.echo_seconds) > MAX_SECONDS:
        raise SystemExit(f"at most {allowed} calls (RLIMIT_NOFILE {limit}) and {MAX_SECONDS} s")
    if per_worker + FDS_PER_PROCESS > limit:
        raise SystemExit("more --workers needed for the client sockets")
    _, loop_name = event_loop_factory(args.event_loop)
    from meterchat.core import jsoncodec

    print(f"meterchat capacity: {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.2f}, RLIMIT_NOFILE {limit}; event loop {loop_name}, socket "
          f"JSON {jsoncodec.NAME}; {args.workers} client processes; clients "
          f"{'without' if args.no_deflate else 'with'} permessage-deflate; heartbeats every "
          f"{MEDIA_INTERVAL_S:.0f} s, a ping after every {args.probe_every}th, a signal per "
          f"call every {args.signal_interval:g} s, {args.browsers * args.workers} browsing "
          f"buyers; billing tick {args.tick:g} s", flush=True)
    rows = []
    failed = False
    for n in args.calls:
        r = measure(n, args, echo=False)
        e = None if args.no_echo else measure(n, args, echo=True)
        print_run(r, e)
        rows.append((r, e))
        failed |= bool(r["errors"]) or r["live"] < n
    print_table(rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
