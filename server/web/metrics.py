"""Prometheus metrics: one registry per app (so several apps in one process never share
figures), the HTTP latency middleware, and GET /metrics. Figures that live in the database
(calls by state, deposits, withdrawals and sweeps by status) are read at scrape time, so no domain
has to keep a counter in step with its tables. The hot wallet's balances are read from the
chain at scrape time too, at most once a minute. A probe measures how late the event loop
runs a timer (`meterchat_event_loop_lag_seconds`): every socket, request and billing pass
waits that long for its turn."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from meterchat.appkeys import CONFIG, DB
from meterchat.calls.manager import HUB
from meterchat.chain.failover import FailoverGateway
from meterchat.chain.gateway import ChainError
from meterchat.chain_ctx import CHAIN_INFO, DEVNET, GATEWAY
from meterchat.core.units import MUSDT_PER_USDT, SUN_PER_TRX

# The hot wallet's balances are read from the node at most this often (a scrape every 15 s
# would otherwise cost TronGrid requests the operator pays for).
HOT_WALLET_EVERY_S = 60.0
# The event-loop lag probe sleeps this long and records how much later than that it woke.
LOOP_LAG_PROBE_S = 0.025


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http_seconds = Histogram(
            "meterchat_http_request_seconds", "HTTP request latency by route",
            ["method", "route"], registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.ws_connections = Gauge(
            "meterchat_ws_connections", "open WebSocket connections", registry=r)
        self.segments_settled = Counter(
            "meterchat_segments_billed_total", "6-second segments billed", registry=r)
        self.tick_seconds = Histogram(
            "meterchat_billing_pass_seconds", "duration of one billing pass", registry=r,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1),
        )
        self.tick_lag_seconds = Gauge(
            "meterchat_billing_tick_lag_seconds", "how late the last billing pass started",
            registry=r)
        self.loop_lag_seconds = Histogram(
            "meterchat_event_loop_lag_seconds",
            f"how late the event loop ran a timer due every {LOOP_LAG_PROBE_S * 1000:g} ms",
            registry=r,
            buckets=(0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03,
                     0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.watcher_lag_blocks = Gauge(
            "meterchat_deposit_watcher_lag_blocks",
            "solidified blocks the deposit watcher has not read yet", registry=r)
        self.live_calls = Gauge(
            "meterchat_live_calls", "calls live right now (in memory)", registry=r)
        self.calls = Gauge("meterchat_calls", "calls by state", ["state"], registry=r)
        self.deposits = Gauge("meterchat_deposits", "deposits by status", ["status"], registry=r)
        self.withdrawals = Gauge(
            "meterchat_withdrawals", "withdrawals by status", ["status"], registry=r)
        self.sweeps = Gauge(
            "meterchat_sweeps", "sweeps of personal deposit addresses by status (waiting: "
            "GET /api/admin/sweeps says why)", ["status"], registry=r)
        self.event_deliveries = Gauge(
            "meterchat_event_deliveries", "webhook deliveries of operator events by status "
            "(dead: past events.max_age_hours; GET /api/admin/events lists them to resend)",
            ["status"], registry=r)
        self.http_responses = Counter(
            "meterchat_http_responses", "HTTP responses by status code", ["code"], registry=r)
        self.hot_wallet_usdt = Gauge(
            "meterchat_hot_wallet_usdt", "USDT the hot wallet holds on chain (read at most "
            "once a minute; absent without a hot wallet)", registry=r)
        self.hot_wallet_trx = Gauge(
            "meterchat_hot_wallet_trx", "TRX the hot wallet holds for energy (read at most "
            "once a minute; absent without a hot wallet)", registry=r)
        self.hot_wallet_read_at = float("-inf")


METRICS = web.AppKey("metrics", Metrics)


class _SendQueues:
    """The sockets' send queues (calls/signalling.py), read at scrape time."""

    def __init__(self, app: web.Application) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        hub = self.app.get(HUB)
        if hub is None:
            return
        yield GaugeMetricFamily(
            "meterchat_ws_send_queue_peak_messages", "most messages waiting to be sent to one "
            "socket since the last scrape (one past server.ws_send_queue_messages closes it)",
            value=hub.take_queue_peak())
        yield CounterMetricFamily(
            "meterchat_ws_slow_consumers_closed", "sockets closed because they did not read "
            "(send queue full or a send timed out)", value=hub.slow_consumers_closed)

class _ChainNodes:
    """Each chain node's state (chain/failover.py), read at scrape time."""

    def __init__(self, app: web.Application) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        gateway = self.app.get(GATEWAY)
        nodes = gateway.stats() if isinstance(gateway, FailoverGateway) else []
        if not nodes:
            return
        up = GaugeMetricFamily("meterchat_chain_node_up", "1 while a chain node answers, 0 "
                               "after it failed (until it answers again)", labels=["endpoint"])
        failovers = CounterMetricFamily(
            "meterchat_chain_failovers", "reads moved from this node to the next after an "
            "error or a timeout", labels=["endpoint"])
        errors = CounterMetricFamily(
            "meterchat_chain_node_errors", "failed requests to this node (reads and "
            "broadcasts)", labels=["endpoint"])
        for n in nodes:
            up.add_metric([n.label], 1 if n.up else 0)
            failovers.add_metric([n.label], n.failovers)
            errors.add_metric([n.label], n.errors)
        yield up
        yield failovers
        yield errors


# (gauge attribute, table, column) read at scrape time when the table exists.
_DB_GAUGES = (
    ("calls", "calls", "state"),
    ("deposits", "deposits", "status"),
    ("withdrawals", "withdrawals", "status"),
    ("sweeps", "sweeps", "status"),
    ("event_deliveries", "event_deliveries", "status"),
)


def _db_figures(conn: sqlite3.Connection) -> dict[str, list[tuple[str, int]]]:
    """{gauge attribute: [(label, count), ...]} of the tables that exist."""
    tables = {r["name"] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type='table'")}
    out = {}
    for attr, table, column in _DB_GAUGES:
        if table in tables:
            out[attr] = [(r["label"], r["n"]) for r in conn.execute(
                f"SELECT {column} AS label, COUNT(*) AS n FROM {table} GROUP BY {column}")]
    return out


async def _read_hot_wallet(app: web.Application, m: Metrics) -> None:
    now = time.monotonic()
    if now - m.hot_wallet_read_at < HOT_WALLET_EVERY_S:
        return
    m.hot_wallet_read_at = now
    info, gateway = app.get(CHAIN_INFO), app.get(GATEWAY)
    if info is None or gateway is None:
        return
    address = info.hot_wallet_address
    if address is None and app.get(DEVNET) is not None:
        address = app[DEVNET].hot_wallet_address
    if not address:
        return
    try:
        async with asyncio.timeout(app[CONFIG].operator.health_chain_timeout_s):
            musdt = await gateway.usdt_balance(address)
            sun = await gateway.trx_balance_sun(address)
    except (TimeoutError, ChainError):
        return  # the last figures stay; the watcher's lag shows a node that is gone
    # A reading for alerts, not money: Prometheus values are floats anyway.
    m.hot_wallet_usdt.set(musdt / MUSDT_PER_USDT)
    m.hot_wallet_trx.set(sun / SUN_PER_TRX)


async def metrics_handler(request: web.Request) -> web.Response:
    m = request.app[METRICS]
    await _read_hot_wallet(request.app, m)
    figures = await request.app[DB].read(_db_figures)
    for attr, rows in figures.items():
        gauge = getattr(m, attr)
        gauge.clear()
        for label, count in rows:
            gauge.labels(label).set(count)
    body = generate_latest(m.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status: int | None = 500  # what an exception becomes (error_middleware answers within)
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except asyncio.CancelledError:
        status = None  # the client went away: no answer was sent
        raise
    finally:
        m = request.app[METRICS]
        info = request.match_info.route.resource
        route = info.canonical if info is not None else "unmatched"
        m.http_seconds.labels(request.method, route).observe(time.perf_counter() - started)
        if status is not None:
            m.http_responses.labels(str(status)).inc()


async def probe_loop_lag(m: Metrics, every_s: float = LOOP_LAG_PROBE_S) -> None:
    """Sleep `every_s` again and again; how much later than asked each wake-up comes is
    the time the loop was busy with something else (a handler, a pass, a collection)."""
    clock = time.monotonic
    while True:
        due = clock() + every_s
        await asyncio.sleep(every_s)
        m.loop_lag_seconds.observe(max(0.0, clock() - due))


async def _loop_lag_ctx(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.get_running_loop().create_task(probe_loop_lag(app[METRICS]))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def setup(app: web.Application) -> None:
    app[METRICS] = Metrics()
    app[METRICS].registry.register(_SendQueues(app))
    app[METRICS].registry.register(_ChainNodes(app))
    app.cleanup_ctx.append(_loop_lag_ctx)
    app.router.add_get("/metrics", metrics_handler)
