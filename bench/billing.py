"""Billing under load: N concurrent live calls ticking in one process.

Runs the real CallManager (live clocks fed with media reports from both parties every 2 s,
the tick every tick_interval_s, the one-transaction billing pass on the database thread)
over a real SQLite file, with no sockets attached. All calls go live at the same moment,
the worst case: every 6 s one pass records N segments, every 60 s one pass also settles N
minutes and places N holds (one ledger transaction per call and minute).

Prints pass time p50/p99, the tick's time besides its pass (the scan of the calls: timeouts,
what is due, when each call's next segment completes), event-loop lag p99 (how late a 10 ms
timer fires), postings per call-hour, RSS, and, for the same rows, one plain executemany
transaction on the same schema (the raw SQLite figure), so the ratio does not depend on the
machine.

    .venv/bin/python bench/billing.py --calls 1000 10000 --seconds 120
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from meterchat.calls.live import Runtime
from meterchat.calls.manager import CallManager
from meterchat.calls.signalling import Hub
from meterchat.commands.serve import tune_gc
from meterchat.core.config import config_from_dict
from meterchat.core.db import Database, connect_sync, migrate_sync, now_ms, run_tx
from meterchat.money import billing, ledger

RATE = 600


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def seed(path: Path, n: int) -> list[tuple[int, int, int]]:
    """N sellers, N funded buyers, N accepted calls with their first minute held."""
    conn = connect_sync(path)
    migrate_sync(conn)

    def people(c):
        now = now_ms()
        c.executemany(
            "INSERT INTO users (id, email, password_hash, role, display_name, created_at_ms)"
            " VALUES (?, ?, 'x', ?, 'u', ?)",
            [(i, f"u{i}@example.com", "seller" if i <= n else "buyer", now)
             for i in range(1, 2 * n + 1)])
        for i in range(1, 2 * n + 1):
            ledger.create_user_accounts(c, i)
        c.executemany(
            "INSERT INTO sellers (user_id, rate_tokens_per_min, online, updated_at_ms)"
            " VALUES (?, ?, 1, ?)", [(i, RATE, now) for i in range(1, n + 1)])
        for i in range(n + 1, 2 * n + 1):
            ledger.transfer(c, ledger.CHAIN_DEPOSITS, ledger.user_account(i),
                            1_000_000 * 10_000, "bench_deposit")

    run_tx(conn, people)
    from meterchat.calls.store import accept_call_tx, create_call_tx

    def calls(c):
        out = []
        for i in range(1, n + 1):
            row = create_call_tx(c, n + i, i, RATE, None, 1, 250_000, now_ms())
            accept_call_tx(c, row.id, now_ms())
            out.append((row.id, n + i, i))
        return out

    made = run_tx(conn, calls)
    conn.close()
    return made


def raw_figure(path: Path, n: int, settle: bool) -> float:
    """The same rows a pass writes, by one plain executemany transaction, in ms."""
    conn = connect_sync(path)
    calls = conn.execute("SELECT id, buyer_available_acct, seller_acct FROM calls ORDER BY id"
                         " LIMIT ?", (n,)).fetchall()
    ids = [r[0] for r in calls]
    # Made on first use: a run shorter than a minute has settled none yet.
    commission_acct = ledger.account_id(conn, ledger.REVENUE_COMMISSION)
    base_tx = conn.execute("SELECT COALESCE(MAX(id), 0) FROM ledger_tx").fetchone()[0] + 1
    tenth = 10_000 + int(settle)  # clear of anything the run wrote
    t0 = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("INSERT INTO call_segments VALUES (?, ?, ?)",
                     [(i, tenth, 0) for i in ids])
    conn.executemany("UPDATE calls SET live_ms = live_ms + 1 WHERE id = ?",
                     [(i,) for i in ids])
    if settle:
        # One ledger transaction per call (settle the minute and hold the next, net per
        # account: buyer available, seller, commission) and the balances of those accounts.
        conn.executemany("INSERT INTO ledger_tx VALUES (?, ?, ?, ?, ?)",
                         [(base_tx + k, f"raw:{k}", "raw", None, 0) for k in range(n)])
        # The same accounts a pass writes to: each call's buyer and seller, one commission.
        postings = []
        for k, (_, buyer_acct, seller_acct) in enumerate(calls):
            postings += [(base_tx + k, buyer_acct, -6), (base_tx + k, seller_acct, 4),
                         (base_tx + k, commission_acct, 2)]
        conn.executemany("INSERT INTO postings (tx_id, account_id, amount_musdt)"
                         " VALUES (?, ?, ?)", postings)
        accts = [a for _, b, s in calls for a in (b, s)] + [commission_acct]
        conn.executemany("UPDATE accounts SET balance_musdt = balance_musdt + 0 WHERE id = ?",
                         [(a,) for a in accts])
    conn.execute("ROLLBACK")
    return (time.perf_counter() - t0) * 1000


async def run(n: int, seconds: float, tick_s: float, stagger_s: float = 0.0) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="meterchat-bench-"))
    path = tmp / "bench.sqlite3"
    t0 = time.perf_counter()
    made = seed(path, n)
    seed_s = time.perf_counter() - t0
    cfg = config_from_dict({"database": {"path": str(path)},
                            "billing": {"tick_interval_s": tick_s,
                                        "connect_timeout_s": 3600}}, tmp)
    db = Database(path)
    await db.open()
    hub = Hub(cfg.server.max_ws_connections, 30)
    manager = CallManager(db, hub, cfg)
    start = time.monotonic()
    for call_id, buyer_id, seller_id in made:
        rt = Runtime(call_id, buyer_id, seller_id, RATE, "connecting", start,
                     cfg.billing.media_timeout_s)
        manager.active[call_id] = rt
        manager.by_user[buyer_id] = manager.by_user[seller_id] = call_id
    postings_before = (await db.fetchone("SELECT COUNT(*) FROM postings"))[0]

    lags: list[float] = []
    stop = asyncio.Event()

    async def lag_probe():
        while not stop.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.010)
            lags.append((time.perf_counter() - t - 0.010) * 1000)

    counter = 0

    async def media_reports():
        """Both parties of every call report every 2 s, spread over the 2 s."""
        nonlocal counter
        runtimes = list(manager.active.values())
        begin = time.monotonic()
        # With --stagger, call k starts reporting (goes live) at k/N of the stagger window.
        starts = {rt.call_id: begin + stagger_s * k / n for k, rt in enumerate(runtimes)}
        slices = 20
        while not stop.is_set():
            for k in range(slices):
                now = time.monotonic()
                counter += 1
                for rt in runtimes[k::slices]:
                    if rt.finished or now < starts[rt.call_id]:
                        continue
                    for uid in (rt.buyer_id, rt.seller_id):
                        rt.report(uid, now, True, counter * 1000, counter * 30)
                    changed = rt.evaluate(now)
                    if changed:
                        rt.state = changed
                await asyncio.sleep(2.0 / slices)

    tune_gc()  # the collector settings `meterchat serve` runs with
    probe = asyncio.create_task(lag_probe())
    reporter = asyncio.create_task(media_reports())
    deadline = time.monotonic() + seconds
    scans: list[float] = []  # each tick's time besides its pass: the scan of the calls
    while time.monotonic() < deadline:
        await asyncio.sleep(tick_s)
        passes_before = len(manager.pass_ms)
        t0 = time.perf_counter()
        await manager.tick()
        took_ms = (time.perf_counter() - t0) * 1000
        scans.append(took_ms - sum(manager.pass_ms[passes_before:]))
    stop.set()
    await probe
    await reporter
    run_s = seconds
    live_calls = sum(1 for rt in manager.active.values() if rt.state in ("live", "paused"))
    postings = (await db.fetchone("SELECT COUNT(*) FROM postings"))[0] - postings_before
    segments = (await db.fetchone("SELECT COUNT(*) FROM call_segments"))[0]
    passes = list(manager.pass_ms)
    await db.close()
    raw_seg = statistics.median(raw_figure(path, n, False) for _ in range(3))
    raw_min = statistics.median(raw_figure(path, n, True) for _ in range(3))
    return {
        "calls": n, "seconds": run_s, "seed_s": seed_s, "live_at_end": live_calls,
        "passes": len(passes), "pass_p50_ms": pct(passes, 50), "pass_p99_ms": pct(passes, 99),
        "pass_max_ms": max(passes or [0]), "scan_p50_ms": pct(scans, 50),
        "lag_p99_ms": pct(lags, 99),
        "lag_max_ms": max(lags or [0]),
        "segments": segments, "postings": postings,
        "postings_per_call_hour": postings / (n * run_s / 3600),
        "raw_segment_pass_ms": raw_seg, "raw_minute_pass_ms": raw_min,
        "rss_mib": rss_mib(), "db_mib": path.stat().st_size / 2**20,  # noqa: ASYNC240 - after the run
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--calls", type=int, nargs="+", default=[1000, 10000])
    p.add_argument("--seconds", type=float, default=120.0)
    p.add_argument("--tick", type=float, default=1.0, help="tick interval, seconds")
    p.add_argument("--stagger", type=float, default=0.0,
                   help="spread the calls' starts over this many seconds (0: all at once)")
    args = p.parse_args()
    print(f"meterchat billing bench: {args.seconds:.0f} s per run, tick {args.tick} s, "
          f"rate {RATE} tokens/min, segment {billing.SEGMENT_MS // 1000} s, "
          f"starts spread over {args.stagger:.0f} s, "
          f"{os.cpu_count()} CPUs, SQLite WAL synchronous=NORMAL")
    for n in args.calls:
        r = asyncio.run(run(n, args.seconds, args.tick, args.stagger))
        print(
            f"N={r['calls']:>6}: passes {r['passes']:>3}  pass p50 {r['pass_p50_ms']:7.1f} ms"
            f"  p99 {r['pass_p99_ms']:7.1f} ms  max {r['pass_max_ms']:7.1f} ms"
            f" | tick besides its pass p50 {r['scan_p50_ms']:5.1f} ms"
            f" | raw executemany: segment pass {r['raw_segment_pass_ms']:6.1f} ms,"
            f" minute pass {r['raw_minute_pass_ms']:6.1f} ms"
            f" | loop lag p99 {r['lag_p99_ms']:5.1f} ms (max {r['lag_max_ms']:5.1f})"
            f" | {r['postings_per_call_hour']:.0f} postings/call-hour"
            f" ({r['segments']} segments, {r['postings']} postings)"
            f" | RSS {r['rss_mib']:.0f} MiB, db {r['db_mib']:.0f} MiB"
            f" | live at end {r['live_at_end']}/{r['calls']}, seeded in {r['seed_s']:.1f} s",
            flush=True,
        )


if __name__ == "__main__":
    main()
