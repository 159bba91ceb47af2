"""The OpenAPI description matches the routes the app really serves."""

from __future__ import annotations

from meterchat.web.openapi import OPERATIONS

# Served, but not JSON HTTP endpoints: the WebSocket, the browser client's files, the devnet
# node's own faucet routes (a separate app on devnet only).
NOT_DESCRIBED_PREFIXES = ("/ws", "/static", "/devnet")
NOT_DESCRIBED_PATHS = {"/"}


def served_routes(app) -> set[tuple[str, str]]:
    out = set()
    for route in app.router.routes():
        method = route.method.lower()
        path = route.resource.canonical if route.resource is not None else ""
        if method in ("head", "*") or path in NOT_DESCRIBED_PATHS:
            continue
        if path.startswith(NOT_DESCRIBED_PREFIXES):
            continue
        out.add((method, path))
    return out


async def test_every_route_is_described_and_every_description_is_served(client):
    served = served_routes(client.app)
    described = set(OPERATIONS)
    assert served - described == set(), "routes missing from server/web/openapi.py"
    assert described - served == set(), "described in server/openapi.py but not served"


async def test_openapi_json_is_served(client):
    resp = await client.get("/api/openapi.json")
    body = await resp.json()
    assert resp.status == 200
    assert body["openapi"].startswith("3.")
    assert "/api/auth/register" in body["paths"]
