"""Crash test: the real server as a subprocess on devnet, killed with SIGKILL at random
(seeded) moments while several clients make calls, top up and withdraw; after every kill
the books are checked, then the server is restarted and the clients carry on.

    python bench/crash.py --kills 30 --seed 1

The devnet node runs inside the server process with tiny block times; its state is its own
SQLite file, so the chain survives the server's restarts (and its faucet is down while the
server is). After each kill, with the server down, `check_books` verifies:
- `meterchat audit` is clean (every posting balanced, cached balances = postings);
- every (TXID, log index) is credited at most once, each credit matches a real SUCCESS
  Transfer log to the deposit address with the same amount, each paid intent belongs to
  the user credited, and the ledger's deposits equal the sum of those chain amounts;
- every withdrawal is on chain at most once (each goes to its own fresh address), a
  confirmed one exactly once with its net amount, one not in flight never; the hot wallet
  sent nothing else; the ledger's withdrawals equal the sum of the confirmed ones;
- no call is billed twice for a segment: one `call_segments` row per billed tenth,
  charged = billed tenths x segment price, and the call's ledger postings add up to exactly
  what the call row says the buyer paid, the seller earned and the platform kept.
After each restart: no call that was active before it is still active (recovery ended it).
With `--personal` (deposits.mode = "address_per_user") buyers pay their own addresses odd,
round and small amounts instead, and the sweeper runs: every transfer to a personal address
is recorded once with its chain amount, each credit is the sum of its parts (credited once),
nothing uncredited reaches the minimum, and every USDT transfer out of a personal address is
the stored transaction of its sweep, at most one per sweep, a confirmed one exactly once.
At the end, with the clients stopped and the server up until the watcher has caught up:
every solidified transfer to the deposit address is recorded (never ignored).

`run()` is also what tests/test_crash.py calls in its short form.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from meterchat.chain.address import to_base58
from meterchat.chain.gateway import TRANSFER_TOPIC

ROOT = Path(__file__).resolve().parent.parent

PASSWORD = "crash test password"
RATE = 3000  # tokens per minute: 300 tokens a segment, so sellers soon have enough to withdraw
MEDIA_INTERVAL_S = 0.3
FINAL_STATES = ("ended", "declined", "missed", "cancelled")
ACTIVE_STATES = ("ringing", "connecting", "live", "paused")


class Down(Exception):
    """The server does not answer (killed, or not yet restarted)."""


class CheckFailed(AssertionError):
    pass


PERSONAL_MIN_MUSDT = 3_000_000
PERSONAL_CONFIG = ("[sweeps]\nmin_usdt = 20\ninterval_s = 0.2\nexpiry_margin_s = 1\n")


def write_config(workdir: Path, personal: bool = False) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = workdir / "meterchat.toml"
    text = (
        "[server]\nport = 0\npassword_hash_time_cost = 1\npassword_hash_memory_kib = 1024\n"
        "presence_grace_s = 2\nlogin_attempts_per_account = 100000\n"
        "login_attempts_per_ip = 100000\n"
        '[database]\npath = "meterchat.sqlite3"\n'
        '[devnet]\nport = 0\npath = "devnet.sqlite3"\nblock_time_s = 0.1\nsolidify_depth = 2\n'
        "[deposits]\nwatcher_interval_s = 0.1\nclaims_per_user_per_hour = 100000\n"
        "claims_per_ip_per_hour = 100000\n"
        "[billing]\ntick_interval_s = 0.2\nmedia_timeout_s = 1.5\nreconnect_grace_s = 3\n"
        "ring_timeout_s = 5\nconnect_timeout_s = 10\n"
        "[withdrawals]\nbuyer_withdrawals = true\nsender_interval_s = 0.2\n"
        "expiry_margin_s = 1\ndaily_limit_usdt = 1000000\nmanual_review_above_usdt = 1000000\n"
    )
    if personal:
        text = text.replace("[deposits]\n", '[deposits]\nmode = "address_per_user"\n', 1)
        text += PERSONAL_CONFIG
    cfg.write_text(text)
    return cfg


# ---- the server process --------------------------------------------------------------

class Server:
    """`meterchat serve` as a subprocess; stdout and stderr go to files, never a pipe."""

    def __init__(self, workdir: Path, cfg: Path) -> None:
        self.workdir = workdir
        self.cfg = cfg
        self.proc: asyncio.subprocess.Process | None = None
        self.url = ""
        self.devnet_url = ""
        self.deposit_address = ""
        self.usdt_contract = ""
        self.up = asyncio.Event()
        self.started_at_ms = 0
        self.starts = 0
        self.start_s: list[float] = []

    async def start(self) -> None:
        out_path = self.workdir / "server.out"
        started = time.monotonic()
        with out_path.open("w") as out, (self.workdir / "server.log").open("a") as err:
            self.started_at_ms = int(time.time() * 1000)
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "meterchat.cli", "serve", "--config", str(self.cfg),
                cwd=ROOT, stdout=out, stderr=err, env={**os.environ, "PYTHONPATH": str(ROOT)})
        deadline = time.monotonic() + 60
        while True:
            text = out_path.read_text()
            if "serving on" in text and "devnet node on" in text:
                break
            if self.proc.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start:\n"
                                   + (self.workdir / "server.log").read_text()[-3000:])
            await asyncio.sleep(0.05)
        self.url = text.split("serving on ")[1].split()[0]
        devnet = text.split("devnet node on ")[1]
        self.devnet_url = devnet.split()[0]
        self.usdt_contract = devnet.split("USDT contract ")[1].split(",")[0]
        self.deposit_address = devnet.split("deposit address ")[1].split(")")[0]
        self.starts += 1
        self.start_s.append(time.monotonic() - started)
        self.up.set()

    async def kill(self) -> None:
        self.up.clear()
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def stop(self) -> int:
        self.up.clear()
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        return self.proc.returncode or 0


# ---- clients -------------------------------------------------------------------------

@dataclass
class User:
    email: str
    role: str
    id: str = ""
    token: str = ""


@dataclass
class Ctx:
    server: Server
    http: aiohttp.ClientSession
    stopping: bool = False
    stats: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    withdrawal_keys: dict[str, str] = field(default_factory=dict)  # key -> address
    personal: bool = False

    async def api(self, method: str, path: str, user: User | None = None, body=None,
                  headers: dict | None = None, base: str | None = None) -> tuple[int, dict]:
        if not self.server.up.is_set() and base is None:
            raise Down()
        h = dict(headers or {})
        if user is not None and user.token:
            h["Authorization"] = f"Bearer {user.token}"
        try:
            async with self.http.request(method, (base or self.server.url) + path, json=body,
                                         headers=h, timeout=aiohttp.ClientTimeout(total=15),
                                         ) as resp:
                data = await resp.json() if resp.status != 204 else {}
        except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
            raise Down() from exc
        if resp.status >= 500:
            self.errors.append(f"{method} {path}: {resp.status} {data}")
        self.stats[f"http_{resp.status // 100}xx"] += 1
        return resp.status, data

    async def ws(self, user: User) -> aiohttp.ClientWebSocketResponse:
        url = self.server.url.replace("http", "ws", 1) + "/ws"
        try:
            return await self.http.ws_connect(url, params={"token": user.token}, heartbeat=10)
        except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
            raise Down() from exc


async def _drain(ws: aiohttp.ClientWebSocketResponse) -> None:
    with contextlib.suppress(Exception):
        async for _ in ws:
            pass


async def _heartbeats(ws: aiohttp.ClientWebSocketResponse, call_id: str) -> None:
    n = 0
    while not ws.closed:
        n += 1
        with contextlib.suppress(Exception):
            await ws.send_json({"type": "media", "call_id": call_id, "state": "connected",
                                "stats": {"bytes_received": n * 50_000,
                                          "frames_decoded": n * 30}})
        await asyncio.sleep(MEDIA_INTERVAL_S)


async def register(ctx: Ctx, user: User) -> None:
    status, data = await ctx.api("POST", "/api/auth/register", body={
        "email": user.email, "password": PASSWORD, "role": user.role, "display_name": user.role,
        "adult": True, "terms": True})
    assert status == 201, data
    status, data = await ctx.api("POST", "/api/auth/login",
                                 body={"email": user.email, "password": PASSWORD})
    assert status == 200, data
    user.id, user.token = data["user"]["id"], data["token"]


async def one_call(ctx: Ctx, buyer: User, seller: User, rng: random.Random) -> None:
    sockets: list[aiohttp.ClientWebSocketResponse] = []
    tasks: list[asyncio.Task] = []
    try:
        sockets = [await ctx.ws(buyer), await ctx.ws(seller)]
        tasks = [asyncio.create_task(_drain(ws)) for ws in sockets]
        await ctx.api("PUT", "/api/seller/profile", seller, {"rate": RATE})
        await ctx.api("PUT", "/api/seller/status", seller, {"online": True})
        status, data = await ctx.api("POST", "/api/calls", buyer,
                                     {"seller_id": seller.id, "rate": RATE})
        if status != 201:
            ctx.stats[f"call_refused_{data['error']['code']}"] += 1
            await asyncio.sleep(0.5)
            return
        call_id = data["call"]["id"]
        ctx.stats["calls_started"] += 1
        if rng.random() < 0.1:  # the buyer cancels while it rings, racing the accept
            answers = await asyncio.gather(
                ctx.api("POST", f"/api/calls/{call_id}/end", buyer),
                ctx.api("POST", f"/api/calls/{call_id}/accept", seller))
            ctx.stats["cancel_vs_accept"] += 1
            if answers[1][0] == 200:
                await ctx.api("POST", f"/api/calls/{call_id}/end", seller)
            return
        status, _ = await ctx.api("POST", f"/api/calls/{call_id}/accept", seller)
        if status != 200:
            ctx.stats["accept_refused"] += 1
            return
        tasks += [asyncio.create_task(_heartbeats(ws, call_id)) for ws in sockets]
        await asyncio.sleep(rng.uniform(2.0, 15.0))
        if not ctx.server.up.is_set():
            raise Down()
        who = rng.random()
        if who < 0.2:  # both hang up at the same instant
            await asyncio.gather(ctx.api("POST", f"/api/calls/{call_id}/end", buyer),
                                 ctx.api("POST", f"/api/calls/{call_id}/end", seller))
        else:
            await ctx.api("POST", f"/api/calls/{call_id}/end", buyer if who < 0.6 else seller)
        ctx.stats["calls_ended_by_client"] += 1
    finally:
        for t in tasks:
            t.cancel()
        for ws in sockets:
            with contextlib.suppress(Exception):
                await ws.close()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t


async def top_up(ctx: Ctx, buyer: User, rng: random.Random) -> None:
    status, me = await ctx.api("GET", "/api/me", buyer)
    if status != 200 or int(me["balance"]["available"].split(".")[0]) >= 2 * RATE:
        return
    if ctx.personal:
        await top_up_personal(ctx, buyer, rng)
        return
    status, data = await ctx.api("POST", "/api/deposits/intents", buyer,
                                 {"usdt": rng.choice(["40", "60", "80"])})
    if status != 201:
        ctx.stats[f"intent_refused_{data['error']['code']}"] += 1
        return
    amount = data["intent"]["amount_usdt"]
    status, data = await ctx.api("POST", "/devnet/transfer", body={
        "to": ctx.server.deposit_address, "usdt": amount}, base=ctx.server.devnet_url)
    if status != 200:
        ctx.stats["faucet_refused"] += 1
        return
    ctx.stats["deposits_sent"] += 1
    txid = data["txid"]
    if rng.random() < 0.5:
        return  # the watcher finds it
    for _ in range(40):
        status, data = await ctx.api("POST", "/api/deposits/claim", buyer, {"txid": txid})
        if status == 200 or (status == 409 and data["error"]["code"] == "already_credited"):
            ctx.stats["deposits_claimed" if status == 200 else "claims_already_credited"] += 1
            return
        await asyncio.sleep(0.2)


async def top_up_personal(ctx: Ctx, buyer: User, rng: random.Random) -> None:
    """To the buyer's own address: an odd, a round or a small amount (small ones add up)."""
    status, data = await ctx.api("GET", "/api/deposits/address", buyer)
    if status != 200:
        ctx.stats["address_refused"] += 1
        return
    amount = rng.choice(["40", "60", f"{rng.randint(30, 70)}.{rng.randint(0, 999_999):06d}",
                         f"1.{rng.randint(0, 99):02d}"])
    status, sent = await ctx.api("POST", "/devnet/transfer", body={
        "to": data["address"], "usdt": amount}, base=ctx.server.devnet_url)
    if status != 200:
        ctx.stats["faucet_refused"] += 1
        return
    ctx.stats["deposits_sent"] += 1
    if rng.random() < 0.3:
        for _ in range(40):
            status, data = await ctx.api("POST", "/api/deposits/claim", buyer,
                                         {"txid": sent["txid"]})
            if status in (200, 409) or (status == 202 and
                                        data["deposit"]["status"] == "below_minimum"):
                ctx.stats["deposits_claimed" if status == 200 else "claims_done"] += 1
                return
            await asyncio.sleep(0.2)


async def stray_transfer(ctx: Ctx, rng: random.Random) -> None:
    """USDT that matches no intent: it must be recorded as unmatched, never lost."""
    amount = f"{rng.randint(1, 2)}.{rng.randint(0, 999_999):06d}"
    status, _ = await ctx.api("POST", "/devnet/transfer", body={
        "to": ctx.server.deposit_address, "usdt": amount}, base=ctx.server.devnet_url)
    if status == 200:
        ctx.stats["stray_transfers_sent"] += 1


async def withdraw(ctx: Ctx, user: User, rng: random.Random) -> None:
    from tronpy.keys import PrivateKey

    status, me = await ctx.api("GET", "/api/me", user)
    if status != 200 or int(me["balance"]["available"].split(".")[0]) < 600:
        return
    key = f"crash-{user.id}-{rng.getrandbits(64):016x}"
    address = PrivateKey(rng.randbytes(32)).public_key.to_base58check_address()
    ctx.withdrawal_keys[key] = address
    tokens = rng.choice(["300", "400", "500"])
    while True:  # a retry after a crash repeats the same key: it must not pay twice
        try:
            status, data = await ctx.api("POST", "/api/withdrawals", user,
                                         {"tokens": tokens, "address": address},
                                         headers={"Idempotency-Key": key})
        except Down:
            if ctx.stopping:
                return
            ctx.stats["withdrawal_retried_after_crash"] += 1
            await ctx.server.up.wait()
            continue
        break
    ctx.stats["withdrawals_requested" if status == 201
              else f"withdrawal_refused_{data['error']['code']}"] += 1


async def forever(ctx: Ctx, step, *args) -> None:
    """Run a client's step again and again; a crash interrupts it, a restart resumes it."""
    while not ctx.stopping:
        try:
            await step(ctx, *args)
        except Down:
            ctx.stats[f"{step.__name__}_interrupted"] += 1
            await ctx.server.up.wait()
        except Exception as exc:  # a client bug or an unexpected answer: reported, not fatal
            ctx.errors.append(f"{step.__name__}: {type(exc).__name__}: {exc}")
            await asyncio.sleep(0.5)
        await asyncio.sleep(0.05)


async def _depositor(ctx: Ctx, buyers: list[User], rng: random.Random) -> None:
    await top_up(ctx, rng.choice(buyers), rng)
    if rng.random() < 0.15:
        await stray_transfer(ctx, rng)
    await asyncio.sleep(rng.uniform(0.2, 1.0))


async def _withdrawer(ctx: Ctx, users: list[User], rng: random.Random) -> None:
    await withdraw(ctx, rng.choice(users), rng)
    await asyncio.sleep(rng.uniform(0.5, 2.0))


# ---- the checks ------------------------------------------------------------------------

@dataclass
class Chain:
    """What the devnet's own state file says happened on chain."""

    deposits: dict[tuple[str, int], int]  # (txid, log index) -> µUSDT to the deposit address
    solid_deposits: set[tuple[str, int]]
    hot_sends: dict[str, list[tuple[str, int]]]  # to address -> [(txid, µUSDT)], SUCCESS only
    # Every SUCCESS USDT Transfer log: (txid, log index) -> (from, to, µUSDT, solidified).
    logs: dict[tuple[str, int], tuple[str, str, int, bool]] = field(default_factory=dict)


def read_chain(devnet_db: Path, usdt: str, deposit_address: str) -> Chain:
    conn = sqlite3.connect(f"file:{devnet_db}?mode=ro", uri=True, timeout=10)
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        from tronpy.keys import PrivateKey

        hot = PrivateKey(bytes.fromhex(meta["hot_wallet_key"])).public_key \
            .to_base58check_address()
        head = conn.execute("SELECT MAX(num) FROM blocks").fetchone()[0]
        solid = head - 2
        deposits, solid_deposits, sends, logs = {}, set(), {}, {}
        for txid, num, info_json in conn.execute(
                "SELECT txid, block_num, info_json FROM txs WHERE block_num IS NOT NULL"):
            info = json.loads(info_json or "{}")
            if info.get("receipt", {}).get("result", "SUCCESS") != "SUCCESS":
                continue
            for i, log in enumerate(info.get("log") or []):
                topics = log.get("topics") or []
                if log.get("address") != usdt or len(topics) != 3 or topics[0] != TRANSFER_TOPIC:
                    continue
                src, dst = to_base58(topics[1][24:]), to_base58(topics[2][24:])
                amount = int(log["data"], 16)
                logs[(txid, i)] = (src, dst, amount, num <= solid)
                if dst == deposit_address:
                    deposits[(txid, i)] = amount
                    if num <= solid:
                        solid_deposits.add((txid, i))
                if src == hot:
                    sends.setdefault(dst, []).append((txid, amount))
        return Chain(deposits, solid_deposits, sends, logs)
    finally:
        conn.close()


def check_books(workdir: Path, cfg: Path, usdt: str, deposit_address: str) -> dict:
    """Everything the crash test promises, checked on the files; raises CheckFailed."""
    problems: list[str] = []
    audit = subprocess.run(
        [sys.executable, "-m", "meterchat.cli", "audit", "--config", str(cfg)], cwd=ROOT,
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if audit.returncode != 0:
        problems.append(f"audit failed: {audit.stdout}{audit.stderr}")
    figures = json.loads(audit.stdout[:audit.stdout.rindex("}") + 1]) if audit.stdout else {}
    chain = read_chain(workdir / "devnet.sqlite3", usdt, deposit_address)
    conn = sqlite3.connect(f"file:{workdir / 'meterchat.sqlite3'}?mode=ro", uri=True, timeout=10)
    try:
        _check_deposits(conn, chain, problems)
        _check_personal(conn, chain, problems)
        _check_withdrawals(conn, chain, problems)
        out = _check_calls(conn, problems)
    finally:
        conn.close()
    if problems:
        raise CheckFailed("\n".join(problems))
    out.update(deposits_in_musdt=figures.get("deposits_in_musdt", 0),
               withdrawals_out_musdt=figures.get("withdrawals_out_musdt", 0),
               revenue_musdt=figures.get("revenue_musdt", 0))
    return out


def _balance(conn: sqlite3.Connection, name: str) -> int:
    row = conn.execute("SELECT balance_musdt FROM accounts WHERE name = ?", (name,)).fetchone()
    return row[0] if row else 0


def _check_deposits(conn: sqlite3.Connection, chain: Chain, problems: list[str]) -> None:
    """Deposits to the shared address (those to personal addresses: _check_personal)."""
    credited_sum = _personal_credited(conn)
    seen: Counter = Counter()
    for txid, idx, amount, status in conn.execute(
            "SELECT txid, log_index, amount_musdt, status FROM deposits WHERE to_address NOT IN"
            " (SELECT address FROM deposit_addresses)"):
        seen[(txid, idx)] += 1
        on_chain = chain.deposits.get((txid, idx))
        if on_chain is None:
            problems.append(f"deposit {txid}:{idx} is recorded but not on chain")
        elif on_chain != amount:
            problems.append(f"deposit {txid}:{idx}: {amount} recorded, {on_chain} on chain")
        if status == "credited":
            credited_sum += on_chain or 0
            n = conn.execute("SELECT COUNT(*) FROM ledger_tx WHERE idem_key = ?",
                             (f"deposit:{txid}:{idx}",)).fetchone()[0]
            if n != 1:
                problems.append(f"deposit {txid}:{idx} has {n} ledger credits")
    problems += [f"{k} recorded {n} times" for k, n in seen.items() if n > 1]
    in_ledger = -_balance(conn, "chain:deposits")
    if in_ledger != credited_sum:
        problems.append(f"ledger deposits {in_ledger} != credited on chain {credited_sum}")
    for intent_id, owner, credited_to in conn.execute(
            "SELECT i.id, i.user_id, d.user_id FROM deposit_intents i"
            " JOIN deposits d ON d.id = i.paid_deposit_id"):
        if owner != credited_to:
            problems.append(f"intent {intent_id} of user {owner} credited to {credited_to}")
    doubly_paid = conn.execute(
        "SELECT paid_deposit_id FROM deposit_intents WHERE paid_deposit_id IS NOT NULL"
        " GROUP BY paid_deposit_id HAVING COUNT(*) > 1").fetchall()
    if doubly_paid:
        problems.append(f"deposits paying two intents: {doubly_paid}")


def _personal_credited(conn: sqlite3.Connection) -> int:
    return conn.execute(
        "SELECT COALESCE(SUM(amount_musdt), 0) FROM deposits WHERE status = 'credited'"
        " AND to_address IN (SELECT address FROM deposit_addresses)").fetchone()[0]


def _check_personal(conn: sqlite3.Connection, chain: Chain, problems: list[str]) -> None:
    """Transfers to personal addresses and their sweeps, against the chain."""
    owners = dict(conn.execute("SELECT address, user_id FROM deposit_addresses"))
    for txid, idx, address, user_id, amount in conn.execute(
            "SELECT txid, log_index, address, user_id, amount_musdt FROM address_transfers"):
        log = chain.logs.get((txid, idx))
        if log is None or log[1] != address or log[2] != amount:
            problems.append(f"personal transfer {txid}:{idx} of {amount} to {address}"
                            f" recorded, chain says {log}")
        if log is not None and log[0] in owners:
            problems.append(f"personal transfer {txid}:{idx} from a deposit address recorded")
        if owners.get(address) != user_id:
            problems.append(f"personal transfer {txid}:{idx} recorded for user {user_id}")
    for dep_id, txid, idx, address, amount, user_id in conn.execute(
            "SELECT id, txid, log_index, to_address, amount_musdt, user_id FROM deposits"
            " WHERE to_address IN (SELECT address FROM deposit_addresses)"):
        parts = conn.execute("SELECT COALESCE(SUM(amount_musdt), 0), COUNT(*) FROM"
                             " address_transfers WHERE deposit_id = ?", (dep_id,)).fetchone()
        if parts[0] != amount or parts[1] == 0:
            problems.append(f"personal credit {dep_id}: {amount} credited, its parts {parts}")
        if owners.get(address) != user_id:
            problems.append(f"personal credit {dep_id} of {address} went to user {user_id}")
        n = conn.execute("SELECT COUNT(*) FROM ledger_tx WHERE idem_key = ?",
                         (f"deposit:{txid}:{idx}",)).fetchone()[0]
        if n != 1:
            problems.append(f"personal credit {txid}:{idx} has {n} ledger credits")
    for address, pending in conn.execute(
            "SELECT address, SUM(amount_musdt) FROM address_transfers WHERE deposit_id IS NULL"
            " GROUP BY address"):
        if pending >= PERSONAL_MIN_MUSDT:
            problems.append(f"{address} holds {pending} µUSDT uncredited, past the minimum")
    # Every USDT transfer out of a personal address is its sweep's stored transaction.
    stored = {txid: (sweep_id, amount) for txid, sweep_id, amount in conn.execute(
        "SELECT txid, sweep_id, amount FROM sweep_txs WHERE kind = 'sweep'")}
    per_sweep: Counter = Counter()
    for (txid, _idx), (src, _dst, amount, _solid) in chain.logs.items():
        if src not in owners:
            continue
        if txid not in stored:
            problems.append(f"USDT left personal address {src} in {txid} without a sweep")
            continue
        if stored[txid][1] != amount:
            problems.append(f"sweep transaction {txid} moved {amount}, {stored[txid][1]} signed")
        per_sweep[stored[txid][0]] += 1
    problems += [f"sweep {k} is on chain {n} times" for k, n in per_sweep.items() if n > 1]
    for sweep_id, txid in conn.execute(
            "SELECT id, sweep_txid FROM sweeps WHERE status = 'confirmed'"):
        if per_sweep.get(sweep_id) != 1:
            problems.append(f"confirmed sweep {sweep_id} ({txid}) is not on chain once")


def _check_withdrawals(conn: sqlite3.Connection, chain: Chain, problems: list[str]) -> None:
    confirmed_net = 0
    addresses = set()
    for wid, address, net, status, txid in conn.execute(
            "SELECT id, address, net_musdt, status, txid FROM withdrawals"):
        addresses.add(address)
        sends = chain.hot_sends.get(address, [])
        if len(sends) > 1:
            problems.append(f"withdrawal {wid} is on chain {len(sends)} times: {sends}")
        if status == "confirmed":
            confirmed_net += net
            if sends != [(txid, net)]:
                problems.append(f"confirmed withdrawal {wid} ({txid}, {net}) on chain: {sends}")
        elif status in ("signed", "sent"):
            if any(amount != net for _, amount in sends):
                problems.append(f"withdrawal {wid} sent a wrong amount: {sends}")
        elif sends:
            problems.append(f"withdrawal {wid} is {status} but on chain: {sends}")
        n = conn.execute("SELECT COUNT(*) FROM withdrawal_txs WHERE withdrawal_id = ?"
                         " AND outcome = 'confirmed'", (wid,)).fetchone()[0]
        if n > 1:
            problems.append(f"withdrawal {wid} has {n} confirmed transactions")
    stray = set(chain.hot_sends) - addresses
    if stray:
        problems.append(f"the hot wallet paid addresses no withdrawal names: {stray}")
    if _balance(conn, "chain:withdrawals") != confirmed_net:
        problems.append(f"ledger withdrawals {_balance(conn, 'chain:withdrawals')} != "
                        f"confirmed {confirmed_net}")


def _check_calls(conn: sqlite3.Connection, problems: list[str]) -> dict:
    calls = conn.execute(
        "SELECT c.id, c.state, c.rate_tokens_per_min, c.billed_tenths, c.settled_tenths,"
        " c.held_musdt, c.charged_musdt, c.seller_earned_musdt, c.commission_musdt,"
        " c.refunded_musdt, c.buyer_available_acct, c.buyer_held_acct, c.seller_acct,"
        " (SELECT COUNT(*) FROM call_segments s WHERE s.call_id = c.id)"
        " FROM calls c").fetchall()
    row = conn.execute("SELECT id FROM accounts WHERE name = 'revenue:commission'").fetchone()
    commission_acct = row[0] if row else -1
    # Net postings per (call, account) from every ledger transaction of the call.
    net: dict[tuple[str, int], int] = {}
    for ref, acct, amount in conn.execute(
            "SELECT t.ref, p.account_id, SUM(p.amount_musdt) FROM ledger_tx t"
            " JOIN postings p ON p.tx_id = t.id WHERE t.ref LIKE 'call:%'"
            " GROUP BY t.ref, p.account_id"):
        net[(ref, acct)] = amount
    segments = 0
    for (cid, state, rate, billed, settled, held, charged, earned, commission, refunded,
         avail_acct, held_acct, seller_acct, n_segments) in calls:
        segments += billed
        price = rate * 1_000
        ref = f"call:{cid}"
        if n_segments != billed:
            problems.append(f"call {cid}: {n_segments} segment rows, {billed} billed")
        if state in FINAL_STATES and not refunded and charged != billed * price:
            problems.append(f"call {cid}: charged {charged} for {billed} segments at {price}")
        if state not in FINAL_STATES and charged != settled * price:
            problems.append(f"call {cid}: charged {charged} for {settled} settled segments")
        if earned + commission != charged:
            problems.append(f"call {cid}: seller {earned} + platform {commission} != {charged}")
        got = {
            "buyer available": (net.get((ref, avail_acct), 0), -(charged + held)),
            "buyer held": (net.get((ref, held_acct), 0), held),
            "seller": (net.get((ref, seller_acct), 0), earned),
            "commission": (net.get((ref, commission_acct), 0), commission),
        }
        for who, (posted, expected) in got.items():
            if posted != expected:
                problems.append(f"call {cid}: ledger moved {posted} for the {who}, the call"
                                f" says {expected}")
    by_state = Counter(c[1] for c in calls)
    return {"calls": len(calls), "segments_billed": segments, "calls_by_state": dict(by_state)}


def check_recovered(workdir: Path, before_ms: int) -> None:
    """After a restart: every call active before it was ended by the recovery."""
    conn = sqlite3.connect(f"file:{workdir / 'meterchat.sqlite3'}?mode=ro", uri=True, timeout=10)
    try:
        left = conn.execute(
            "SELECT id, state FROM calls WHERE created_at_ms < ? AND state IN"
            " ('ringing', 'connecting', 'live', 'paused')", (before_ms,)).fetchall()
    finally:
        conn.close()
    if left:
        raise CheckFailed(f"calls still active after the restart's recovery: {left}")


def check_nothing_ignored(workdir: Path, usdt: str, deposit_address: str) -> tuple[int, int]:
    """Every solidified transfer to the deposit address is recorded; (on chain, recorded)."""
    chain = read_chain(workdir / "devnet.sqlite3", usdt, deposit_address)
    conn = sqlite3.connect(f"file:{workdir / 'meterchat.sqlite3'}?mode=ro", uri=True, timeout=10)
    try:
        recorded = set(conn.execute("SELECT txid, log_index FROM deposits"))
        recorded |= set(conn.execute("SELECT txid, log_index FROM address_transfers"))
        owners = {a for (a,) in conn.execute("SELECT address FROM deposit_addresses")}
    finally:
        conn.close()
    solid = set(chain.solid_deposits)
    solid |= {k for k, (src, dst, _, is_solid) in chain.logs.items()
              if is_solid and dst in owners and src not in owners}
    return len(solid), len(solid & recorded)


# ---- the run ---------------------------------------------------------------------------

@dataclass
class Report:
    kills: int
    seed: int
    seconds: float
    stats: Counter
    books: dict
    errors: list[str]
    server_start_s: list[float]

    def lines(self) -> list[str]:
        s, b = self.stats, self.books
        starts = sorted(self.server_start_s)
        return [
            f"kills: {self.kills} (seed {self.seed}), run {self.seconds:.1f} s, server start"
            f" median {starts[len(starts) // 2]:.2f} s",
            f"calls: {b['calls']} ({b['calls_by_state']}), {b['segments_billed']} segments"
            f" billed, {s['calls_ended_by_client']} ended by a client, "
            f"{s['cancel_vs_accept']} cancel-vs-accept races",
            f"deposits: {s['deposits_sent']} sent ({s['deposits_claimed']} claimed,"
            f" rest by the watcher), {s['stray_transfers_sent']} unmatched strays;"
            f" ledger {b['deposits_in_musdt'] / 1e6:.6f} USDT in",
            *([f"sweeps: {b['sweeps_by_status']}"] if b.get("sweeps_by_status") else []),
            f"withdrawals: {b['withdrawals_by_status']}; ledger"
            f" {b['withdrawals_out_musdt'] / 1e6:.6f} USDT out,"
            f" {s['withdrawal_retried_after_crash']} retried after a crash with the same key",
            f"HTTP answers: 2xx {s['http_2xx']}, 4xx {s['http_4xx']}, 5xx {s['http_5xx']};"
            f" client steps interrupted by kills: "
            f"{sum(v for k, v in s.items() if k.endswith('_interrupted'))}",
            f"checks after every kill: audit clean, no double credit, no double send, no"
            f" segment billed twice, chain and ledger agree: "
            f"{'OK' if not self.errors else 'FAILED'}",
        ]


async def run(kills: int, seed: int, workdir: Path, pairs: int = 3, min_up_s: float = 1.0,
              max_up_s: float = 5.0, say=print, personal: bool = False) -> Report:
    cfg = await asyncio.to_thread(write_config, workdir, personal)
    kill_rng = random.Random(seed)
    server = Server(workdir, cfg)
    started = time.monotonic()
    await server.start()
    async with aiohttp.ClientSession() as http:
        ctx = Ctx(server, http, personal=personal)
        buyers = [User(f"buyer{i}@example.com", "buyer") for i in range(pairs)]
        sellers = [User(f"seller{i}@example.com", "seller") for i in range(pairs)]
        for u in buyers + sellers:
            await register(ctx, u)
        tasks = [asyncio.create_task(forever(ctx, one_call, b, s, random.Random(seed * 100 + i)))
                 for i, (b, s) in enumerate(zip(buyers, sellers, strict=True))]
        tasks.append(asyncio.create_task(
            forever(ctx, _depositor, buyers, random.Random(seed * 100 + 50))))
        tasks.append(asyncio.create_task(
            forever(ctx, _withdrawer, buyers + sellers, random.Random(seed * 100 + 60))))
        books: dict = {}
        try:
            for n in range(1, kills + 1):
                await asyncio.sleep(kill_rng.uniform(min_up_s, max_up_s))
                await server.kill()
                books = check_books(workdir, cfg, server.usdt_contract, server.deposit_address)
                before = int(time.time() * 1000)
                await server.start()
                check_recovered(workdir, before)
                say(f"kill {n}/{kills}: books ok ({books['calls']} calls, "
                    f"{books['segments_billed']} segments, "
                    f"{books['deposits_in_musdt'] / 1e6:.2f} USDT in, "
                    f"{books['withdrawals_out_musdt'] / 1e6:.2f} USDT out)")
            await asyncio.sleep(kill_rng.uniform(min_up_s, max_up_s))
        finally:
            ctx.stopping = True
            await asyncio.sleep(0.5)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        # The clients are gone: the watcher catches up with every transfer to the address.
        deadline = time.monotonic() + 30
        while True:
            on_chain, recorded = check_nothing_ignored(workdir, server.usdt_contract,
                                                       server.deposit_address)
            if on_chain == recorded or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        code = await server.stop()
    if on_chain != recorded:
        raise CheckFailed(f"{on_chain - recorded} transfers to the deposit address were never"
                          " recorded")
    if code != 0:
        raise CheckFailed(f"the server exited with {code} on SIGTERM")
    books = check_books(workdir, cfg, server.usdt_contract, server.deposit_address)
    books["withdrawals_by_status"] = _withdrawal_states(workdir)
    books["sweeps_by_status"] = _sweep_states(workdir)
    active = {k: v for k, v in books["calls_by_state"].items() if k in ACTIVE_STATES}
    if active:
        raise CheckFailed(f"calls left active after a clean stop: {active}")
    log_text = (workdir / "server.log").read_text()
    if "Traceback" in log_text:
        ctx.errors.append("the server log has a traceback (see server.log)")
    return Report(kills, seed, time.monotonic() - started, ctx.stats, books, ctx.errors,
                  server.start_s)


def _withdrawal_states(workdir: Path) -> dict:
    conn = sqlite3.connect(f"file:{workdir / 'meterchat.sqlite3'}?mode=ro", uri=True)
    try:
        return dict(conn.execute("SELECT status, COUNT(*) FROM withdrawals GROUP BY status"))
    finally:
        conn.close()


def _sweep_states(workdir: Path) -> dict:
    conn = sqlite3.connect(f"file:{workdir / 'meterchat.sqlite3'}?mode=ro", uri=True)
    try:
        return dict(conn.execute("SELECT status, COUNT(*) FROM sweeps GROUP BY status"))
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--kills", type=int, default=30)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--pairs", type=int, default=3, help="buyer/seller pairs calling")
    p.add_argument("--min-up", type=float, default=1.0, help="least seconds between kills")
    p.add_argument("--max-up", type=float, default=10.0, help="most seconds between kills")
    p.add_argument("--workdir", type=Path, help="keep the files here (default: a temp dir)")
    p.add_argument("--personal", action="store_true",
                   help='deposits.mode = "address_per_user": personal addresses and sweeps')
    args = p.parse_args(argv)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="meterchat-crash-") as tmp:
        workdir = args.workdir or Path(tmp)
        try:
            report = asyncio.run(run(args.kills, args.seed, workdir, args.pairs, args.min_up,
                                     args.max_up, personal=args.personal))
        except CheckFailed as exc:
            print(f"CHECK FAILED: {exc}", file=sys.stderr)
            return 1
    for line in report.lines():
        print(line)
    for e in report.errors:
        print("error:", e, file=sys.stderr)
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
