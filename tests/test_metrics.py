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
