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
