"""Signalling under load: N WebSocket connections (N/2 buyer/seller pairs, each pair in a
call) against the real server process on loopback.

Users, sessions, seller profiles and balances are written straight into a fresh database
first (that is set-up, not what is measured); then the server starts as a subprocess (its
log to a file), every user opens /ws, each buyer starts a call and each seller accepts it,
and both parties send the 2-second media heartbeats so the calls go live and bill. For
`--seconds`, every buyer sends a `signal` every `--signal-interval` seconds stamped with
the send time; the seller's socket receives the relayed copy: that delay is the relay
latency. Meanwhile a few HTTP clients call GET /api/me and GET /api/sellers in a loop.

Prints, per N: relay latency p50/p99/max, HTTP p99 of /api/me and /api/sellers, the
server's RSS, its connection count, and every error seen (failed connects, error messages,
unexpected closes, non-2xx answers).

    .venv/bin/python bench/load.py --connections 1000 5000 --seconds 30

Bounded: at most 20,000 connections, 300 s of measurement; the whole run has a deadline.
The soft RLIMIT_NOFILE is raised to the hard limit (the server inherits it), and the
server's connection cap (server.max_ws_connections) is set just above N.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import resource
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp

from meterchat.accounts import sessions
from meterchat.accounts import users as accounts
from meterchat.accounts.passwords import Passwords
from meterchat.core.db import connect_sync, migrate_sync, run_tx
from meterchat.money import ledger
from meterchat.sellers import store as sellers

ROOT = Path(__file__).resolve().parent.parent

MAX_CONNECTIONS = 20_000
MAX_SECONDS = 300
RATE = 1  # tokens per minute: the calls never run out of funds during a run
MEDIA_INTERVAL_S = 2.0
SEGMENT_S = 6.0


def raise_nofile(need: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft < need:
        raise SystemExit(f"RLIMIT_NOFILE is {soft}; {need} needed (raise the hard limit)")
    return soft


def seed_users(db_path: Path, pairs: int) -> list[tuple[dict, dict]]:
    """Buyers and sellers with sessions, seller profiles online, buyers funded."""
    conn = connect_sync(db_path)
    migrate_sync(conn)
    hashed = Passwords(1, 1024).hash("load test password")

    def make(c):
        out = []
        for i in range(pairs):
            s = accounts.insert_user_tx(c, f"s{i}@load.example", hashed, "seller", f"s{i}")
            b = accounts.insert_user_tx(c, f"b{i}@load.example", hashed, "buyer", f"b{i}")
            sellers.save_profile_tx(c, s.id, RATE, None, None, None)
            sellers.set_online_tx(c, s.id, True)
            ledger.transfer(c, ledger.CHAIN_DEPOSITS, ledger.user_account(b.id),
                            1000 * 10_000, "deposit", ref="load test funding")
            st, _ = sessions.create_session_tx(c, s.id, 86_400_000)
            bt, _ = sessions.create_session_tx(c, b.id, 86_400_000)
            out.append(({"id": str(b.id), "token": bt}, {"id": str(s.id), "token": st}))
        return out

    users = run_tx(conn, make)
    conn.close()
    return users


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


class Server:
    def __init__(self, workdir: Path, cap: int) -> None:
        self.workdir = workdir
        self.cfg = workdir / "meterchat.toml"
        self.cfg.write_text(
            f"[server]\nport = 0\nmax_ws_connections = {cap}\npresence_grace_s = 120\n"
            "password_hash_time_cost = 1\npassword_hash_memory_kib = 1024\n"
            '[database]\npath = "db.sqlite3"\n'
            '[devnet]\nport = 0\npath = "devnet.sqlite3"\n')
        self.proc: asyncio.subprocess.Process | None = None
        self.url = ""

    async def start(self) -> None:
        out_path = self.workdir / "server.out"
        with out_path.open("w") as out, (self.workdir / "server.log").open("w") as err:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "meterchat.cli", "serve", "--config", str(self.cfg),
                cwd=ROOT, stdout=out, stderr=err)
        for _ in range(600):
            text = out_path.read_text()
            if "serving on" in text:
                self.url = text.split("serving on ")[1].split()[0]
                return
            await asyncio.sleep(0.05)
        raise RuntimeError("the server did not start")

    def cpu_s(self) -> float:
        """CPU seconds the server process has used (user + system)."""
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mib(self) -> float:
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 60)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


class Run:
    def __init__(self, server: Server, http: aiohttp.ClientSession) -> None:
        self.server = server
        self.http = http
        self.errors: Counter = Counter()
        self.relay_ms: list[float] = []
        self.measure_from_ns = 0
        self.http_ms: dict[str, list[float]] = {"/api/me": [], "/api/sellers": []}
        self.measuring = False
        self.stopping = False
        self.sockets: list[aiohttp.ClientWebSocketResponse] = []
        self.tasks: list[asyncio.Task] = []

    async def request(self, method: str, path: str, token: str) -> tuple[int, dict]:
        async with self.http.request(method, self.server.url + path,
                                     headers={"Authorization": f"Bearer {token}"}) as resp:
            data = await resp.json()
            if resp.status >= 300:
                self.errors[f"HTTP {resp.status} {path.split('/')[2]}"] += 1
            return resp.status, data

    async def connect(self, token: str) -> aiohttp.ClientWebSocketResponse:
        url = self.server.url.replace("http", "ws", 1) + "/ws"
        ws = await self.http.ws_connect(url, params={"token": token}, heartbeat=None,
                                        autoping=True)
        self.sockets.append(ws)
        return ws

    async def reader(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            head = msg.data[:24]
            # Only signals and errors are parsed: the client must not be the bottleneck.
            if '"signal"' in head:
                if self.measuring:
                    received_ns = time.perf_counter_ns()
                    sent_ns = json.loads(msg.data)["data"]["t"]
                    # Signals sent before measuring began (across this client's own
                    # collection and freeze) are not part of the measurement.
                    if sent_ns >= self.measure_from_ns:
                        self.relay_ms.append((received_ns - sent_ns) / 1e6)
            elif '"error"' in head:
                self.errors[f"ws error {json.loads(msg.data)['code']}"] += 1
        if not self.stopping:
            self.errors["socket closed by the server"] += 1

    async def heartbeats(self, ws, call_id: str, phase: float) -> None:
        n = 0
        async for _ in self.ticks(phase, MEDIA_INTERVAL_S):
            n += 1
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_str(
                    f'{{"type": "media", "call_id": "{call_id}", "state": "connected", '
                    f'"stats": {{"bytes_received": {n * 100_000}, "frames_decoded": {n * 60}}}}}')

    async def signals(self, ws, call_id: str, interval: float, phase: float) -> None:
        seq = 0
        async for _ in self.ticks(phase, interval):
            seq += 1
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_str(
                    f'{{"type": "signal", "call_id": "{call_id}", "data": {{"type": '
                    f'"candidate", "seq": {seq}, "t": {time.perf_counter_ns()}, "candidate": '
                    '"candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host"}}')

    async def ticks(self, phase: float, interval: float):
        """A fixed timetable, phase + k x interval, skipping slots already past. Real
        clients are independent; thousands of them simulated on one event loop are not: after
        any stall of this loop, tasks that sleep `interval` after each send would stay
        bunched together for good and send in bursts no real population of clients makes."""
        loop = asyncio.get_running_loop()
        due = loop.time() + phase
        while not self.stopping:
            await asyncio.sleep(max(0.0, due - loop.time()))
            if self.stopping:
                return
            yield
            now = loop.time()
            due += interval
            if due < now:  # late by a whole interval or more: skip, never catch up in a burst
                due += (now - due) // interval * interval + interval

    async def http_probe(self, token: str, path: str) -> None:
        while not self.stopping:
            started = time.perf_counter()
            try:
                await self.request("GET", path, token)
            except aiohttp.ClientError as exc:
                self.errors[f"HTTP {type(exc).__name__}"] += 1
            if self.measuring:
                self.http_ms[path].append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.05)


async def gather_limited(coros, limit: int) -> list:
    sem = asyncio.Semaphore(limit)

    async def one(c):
        async with sem:
            return await c

    return await asyncio.gather(*(one(c) for c in coros), return_exceptions=True)


async def measure(connections: int, seconds: float, signal_interval: float) -> dict:
    pairs = connections // 2
    with tempfile.TemporaryDirectory(prefix="meterchat-load-") as tmp:
        workdir = Path(tmp)
        t0 = time.monotonic()
        users = await asyncio.to_thread(seed_users, workdir / "db.sqlite3", pairs)
        seeded_s = time.monotonic() - t0
        server = Server(workdir, connections + 50)
        await server.start()
        rss_idle = server.rss_mib()
        # No pool limit: every open WebSocket holds a connection of the pool.
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as http:
            run = Run(server, http)
            try:
                t0 = time.monotonic()
                socks = await gather_limited(
                    [run.connect(u["token"]) for pair in users for u in pair], 100)
                failed = [s for s in socks if isinstance(s, BaseException)]
                for s in failed:
                    run.errors[f"connect {type(s).__name__}"] += 1
                connect_s = time.monotonic() - t0
                ws_of = {}
                i = 0
                for b, s in users:
                    ws_of[b["id"]], ws_of[s["id"]] = socks[i], socks[i + 1]
                    i += 2
                for ws in socks:
                    if not isinstance(ws, BaseException):
                        run.tasks.append(asyncio.create_task(run.reader(ws)))

                async def start_call(b, s) -> str | None:
                    status, data = await _post(run, "/api/calls", b["token"],
                                               {"seller_id": s["id"], "rate": RATE})
                    if status != 201:
                        return None
                    call_id = data["call"]["id"]
                    status, _ = await _post(run, f"/api/calls/{call_id}/accept", s["token"])
                    return call_id if status == 200 else None

                t0 = time.monotonic()
                call_ids = await gather_limited([start_call(b, s) for b, s in users], 50)
                calls_s = time.monotonic() - t0
                step = signal_interval / max(1, pairs)
                for n, ((b, s), cid) in enumerate(zip(users, call_ids, strict=True)):
                    if not isinstance(cid, str):
                        run.errors["call not started"] += 1
                        continue
                    bws, sws = ws_of[b["id"]], ws_of[s["id"]]
                    if isinstance(bws, BaseException) or isinstance(sws, BaseException):
                        continue
                    # Calls go live spread over one 6-s segment, as calls that started at
                    # different moments are (all at once is bench/billing.py's worst case).
                    phase = n * SEGMENT_S / max(1, pairs)
                    run.tasks += [
                        asyncio.create_task(run.heartbeats(bws, cid, phase)),
                        asyncio.create_task(run.heartbeats(sws, cid, phase + 0.01)),
                        asyncio.create_task(run.signals(bws, cid, signal_interval, n * step)),
                    ]
                run.tasks += [asyncio.create_task(run.http_probe(users[i % pairs][0]["token"],
                                                                 path))
                              for i, path in enumerate(["/api/me", "/api/sellers"] * 2)]
                # Steady state: every call live (the burst of state changes is over).
                t0 = time.monotonic()
                live = 0
                while time.monotonic() - t0 < 120:
                    await asyncio.sleep(1.0)
                    live = await _count_live(workdir / "db.sqlite3")
                    if live >= len([c for c in call_ids if isinstance(c, str)]):
                        break
                live_s = time.monotonic() - t0
                await asyncio.sleep(MEDIA_INTERVAL_S)
                lag: list[float] = []
                # The load generator must not be what is measured: no collector pauses here.
                gc.collect()
                gc.freeze()
                gc.disable()
                # That collection stalls this loop, and the sends due meanwhile go out
                # together: let the burst pass before measuring.
                await asyncio.sleep(2 * max(signal_interval, MEDIA_INTERVAL_S))
                run.measure_from_ns = time.perf_counter_ns()
                run.measuring = True
                server_cpu0, client_cpu0 = server.cpu_s(), time.process_time()
                t_measure = time.monotonic()
                deadline = time.monotonic() + seconds
                while time.monotonic() < deadline:  # the client's own loop lag, for honesty
                    t = time.perf_counter()
                    await asyncio.sleep(0.1)
                    lag.append((time.perf_counter() - t - 0.1) * 1000)
                run.measuring = False
                gc.enable()
                wall = time.monotonic() - t_measure
                server_cpu = (server.cpu_s() - server_cpu0) / wall
                client_cpu = (time.process_time() - client_cpu0) / wall
                rss = server.rss_mib()
                metrics = await _metric(run, "meterchat_ws_connections")
            finally:
                run.stopping = True
                for t in run.tasks:
                    t.cancel()
                await asyncio.gather(*run.tasks, return_exceptions=True)
                for ws in run.sockets:
                    with contextlib.suppress(Exception):
                        await ws.close()
        await server.stop()
        return {
            "connections": connections, "pairs": pairs, "seeded_s": seeded_s,
            "connect_s": connect_s, "calls_s": calls_s, "live_calls": live, "live_s": live_s,
            "server_ws_connections": metrics,
            "relay_count": len(run.relay_ms),
            "relay_p50_ms": pct(run.relay_ms, 0.50), "relay_p99_ms": pct(run.relay_ms, 0.99),
            "relay_max_ms": max(run.relay_ms, default=float("nan")),
            "me_p99_ms": pct(run.http_ms["/api/me"], 0.99),
            "me_count": len(run.http_ms["/api/me"]),
            "sellers_p99_ms": pct(run.http_ms["/api/sellers"], 0.99),
            "sellers_count": len(run.http_ms["/api/sellers"]),
            "rss_idle_mib": rss_idle, "rss_mib": rss,
            "client_lag_p99_ms": pct(lag, 0.99),
            "server_cpu": server_cpu, "client_cpu": client_cpu,
            "messages_per_s": (pairs / signal_interval + connections / MEDIA_INTERVAL_S),
            "errors": dict(run.errors),
        }


async def _post(run: Run, path: str, token: str, body: dict | None = None):
    async with run.http.post(run.server.url + path, json=body,
                             headers={"Authorization": f"Bearer {token}"}) as resp:
        data = await resp.json()
        if resp.status >= 300:
            run.errors[f"HTTP {resp.status} {data['error']['code']}"] += 1
        return resp.status, data


async def _count_live(db_path: Path) -> int:
    def count() -> int:
        conn = connect_sync(db_path)
        try:
            return conn.execute("SELECT COUNT(*) FROM calls WHERE state = 'live'").fetchone()[0]
        finally:
            conn.close()

    return await asyncio.to_thread(count)


async def _metric(run: Run, name: str) -> float | None:
    async with run.http.get(run.server.url + "/metrics") as resp:
        for line in (await resp.text()).splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--connections", type=int, nargs="+", default=[1000, 5000])
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--signal-interval", type=float, default=1.0,
                   help="seconds between one buyer's signals")
    args = p.parse_args(argv)
    if max(args.connections) > MAX_CONNECTIONS or args.seconds > MAX_SECONDS:
        raise SystemExit(f"at most {MAX_CONNECTIONS} connections and {MAX_SECONDS} s")
    limit = raise_nofile(2 * max(args.connections) + 200)
    print(f"RLIMIT_NOFILE {limit}; cores {os.cpu_count()}; load average "
          f"{os.getloadavg()[0]:.2f}", flush=True)
    failed = False
    for n in args.connections:
        r = asyncio.run(asyncio.wait_for(measure(n, args.seconds, args.signal_interval),
                                         args.seconds + 600))
        print(f"N={r['connections']} connections ({r['pairs']} calls, {r['live_calls']} live;"
              f" server counts {r['server_ws_connections']:.0f} sockets): relay p50 "
              f"{r['relay_p50_ms']:.2f} ms, p99 {r['relay_p99_ms']:.2f} ms, max "
              f"{r['relay_max_ms']:.1f} ms over {r['relay_count']} signals; HTTP p99 /api/me "
              f"{r['me_p99_ms']:.1f} ms ({r['me_count']}), /api/sellers "
              f"{r['sellers_p99_ms']:.1f} ms ({r['sellers_count']}); server RSS "
              f"{r['rss_mib']:.0f} MiB (idle {r['rss_idle_mib']:.0f}); connect "
              f"{r['connect_s']:.1f} s, calls set up {r['calls_s']:.1f} s, all live after {r['live_s']:.1f} s; client loop lag "
              f"p99 {r['client_lag_p99_ms']:.1f} ms; CPU: server {r['server_cpu']:.0%} of a core, "
              f"client {r['client_cpu']:.0%}; {r['messages_per_s']:.0f} messages/s in; "
              f"errors: {r['errors'] or 'none'}",
              flush=True)
        failed |= bool(r["errors"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
