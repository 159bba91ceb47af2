"""GET /metrics in Prometheus text format, with HTTP latency by route."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


async def test_metrics_show_http_latency_by_route(client):
    await client.get("/api/health")
    await client.get("/api/me")
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(await resp.text())}
    counts = {
        (s.labels["method"], s.labels["route"]): s.value
        for s in families["meterchat_http_request_seconds"].samples
        if s.name.endswith("_count")
    }
    assert counts[("GET", "/api/health")] == 1
    assert counts[("GET", "/api/me")] == 1
    assert "meterchat_ws_connections" in families


def _ws_gauge(text: str) -> float:
    families = {f.name: f for f in text_string_to_metric_families(text)}
    return families["meterchat_ws_connections"].samples[0].value


async def test_ws_connections_gauge_counts_open_sockets(client):
    import asyncio

    from tests.conftest import actor

    buyer = await actor(client)
    a = await client.ws_connect("/ws", params={"token": buyer.token})
    b = await client.ws_connect("/ws", params={"token": buyer.token})
    assert _ws_gauge(await (await client.get("/metrics")).text()) == 2
    await a.close()
    for _ in range(50):
        if _ws_gauge(await (await client.get("/metrics")).text()) == 1:
            break
        await asyncio.sleep(0.02)
    assert _ws_gauge(await (await client.get("/metrics")).text()) == 1
    await b.close()


async def test_event_loop_lag_is_measured(client):
    import asyncio

    await asyncio.sleep(0.1)  # a few probes
    families = {f.name: f for f in text_string_to_metric_families(
        await (await client.get("/metrics")).text())}
    samples = {s.name: s.value for s in families["meterchat_event_loop_lag_seconds"].samples
               if not s.labels}
    assert samples["meterchat_event_loop_lag_seconds_count"] >= 1


async def test_loop_lag_probe_sees_a_stalled_loop():
    import asyncio
    import time

    from prometheus_client import generate_latest

    from meterchat.web.metrics import Metrics, probe_loop_lag

    m = Metrics()
    probe = asyncio.create_task(probe_loop_lag(m, every_s=0.005))
    await asyncio.sleep(0.02)
    time.sleep(0.06)  # noqa: ASYNC251 - the stall measured: the probe wakes ~55 ms late
    await asyncio.sleep(0.02)
    probe.cancel()
    samples = {f.name: f for f in text_string_to_metric_families(
        generate_latest(m.registry).decode())}["meterchat_event_loop_lag_seconds"].samples
    count = next(s.value for s in samples if s.name.endswith("_count"))
    within_50ms = next(s.value for s in samples
                       if s.name.endswith("_bucket") and s.labels["le"] == "0.05")
    assert count > within_50ms  # the stall is one sample above 50 ms
