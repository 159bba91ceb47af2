"""Prometheus metrics: one registry per app (so several apps in one process never share
figures), the HTTP latency middleware, and GET /metrics. Figures that live in the database
(calls by state, deposits and withdrawals by status) are read at scrape time, so no domain
has to keep a counter in step with its tables."""

from __future__ import annotations

import sqlite3
import time

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from meterchat.appkeys import DB


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
        self.watcher_lag_blocks = Gauge(
            "meterchat_deposit_watcher_lag_blocks",
            "solidified blocks the deposit watcher has not read yet", registry=r)
        self.live_calls = Gauge(
            "meterchat_live_calls", "calls live right now (in memory)", registry=r)
        self.calls = Gauge("meterchat_calls", "calls by state", ["state"], registry=r)
        self.deposits = Gauge("meterchat_deposits", "deposits by status", ["status"], registry=r)
        self.withdrawals = Gauge(
            "meterchat_withdrawals", "withdrawals by status", ["status"], registry=r)


METRICS = web.AppKey("metrics", Metrics)

# (gauge attribute, table, column) read at scrape time when the table exists.
_DB_GAUGES = (
    ("calls", "calls", "state"),
    ("deposits", "deposits", "status"),
    ("withdrawals", "withdrawals", "status"),
)


def _db_figures(conn: sqlite3.Connection) -> dict[str, list[tuple[str, int]]]:
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    out = {}
    for attr, table, column in _DB_GAUGES:
        if table in tables:
            out[attr] = conn.execute(
                f"SELECT {column}, COUNT(*) FROM {table} GROUP BY {column}").fetchall()
    return out


async def metrics_handler(request: web.Request) -> web.Response:
    m = request.app[METRICS]
    figures = await request.app[DB].read(_db_figures)
    for attr, rows in figures.items():
        gauge = getattr(m, attr)
        gauge.clear()
        for label, count in rows:
            gauge.labels(label).set(count)
    body = generate_latest(m.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


@web.middleware
async def metrics_middleware(request: web.Request, handler) -> web.StreamResponse:
    started = time.perf_counter()
    try:
        return await handler(request)
    finally:
        info = request.match_info.route.resource
        route = info.canonical if info is not None else "unmatched"
        request.app[METRICS].http_seconds.labels(request.method, route).observe(
            time.perf_counter() - started)


def setup(app: web.Application) -> None:
    app[METRICS] = Metrics()
    app.router.add_get("/metrics", metrics_handler)
