"""The aiohttp application factory: middlewares (errors, request log), resources opened and
closed in cleanup_ctx, and each domain's routes. `create_app(config)` is all a test or the
CLI needs."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web

from meterchat.accounts.auth import client_address
from meterchat.accounts.users import Passwords
from meterchat.appkeys import CLOCK, CONFIG, DB, LIMITS, PASSWORDS
from meterchat.core import logs
from meterchat.core.clock import SYSTEM_CLOCK, Clock
from meterchat.core.config import Config
from meterchat.core.db import Database
from meterchat.core.errors import ApiError
from meterchat.core.ratelimit import Limits
from meterchat.web import metrics, openapi

log = logging.getLogger("meterchat.http")
# log_middleware logs every request without its query string (which may carry a WebSocket
# token); aiohttp's access log would repeat it with the query string, wherever a runner is
# created with the default access log.
logging.getLogger("aiohttp.access").setLevel(logging.WARNING)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    422: "invalid_value",
    429: "rate_limited",
}


def error_json(status: int, code: str, message: str, headers: dict | None = None) -> web.Response:
    return web.json_response(
        {"error": {"code": code, "message": message}}, status=status, headers=headers
    )


@web.middleware
async def error_middleware(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_json(exc.status, exc.code, exc.message, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        message = exc.reason if exc.status != 404 else "no such endpoint or resource"
        headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
        return error_json(exc.status, code, message, headers)
    except Exception:
        log.exception("unhandled error", extra={"fields": {"path": request.path}})
        return error_json(500, "internal_error", "something went wrong on our side")


@web.middleware
async def log_middleware(request: web.Request, handler) -> web.StreamResponse:
    started = time.perf_counter()
    response = await handler(request)
    # The path only: a query string may carry a WebSocket token. The client is the address
    # behind a trusted proxy (server.trusted_proxies), else the peer.
    logs.event(
        log,
        "request",
        method=request.method,
        path=request.path,
        client=client_address(request),
        status=response.status,
        ms=round((time.perf_counter() - started) * 1000, 2),
    )
    return response


def _database_ctx(config: Config):
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        db = Database(config.database.path, config.database.busy_timeout_ms)
        await db.open(migrate=True)
        app[DB] = db
        yield
        await db.close()

    return ctx


def create_app(config: Config, clock: Clock = SYSTEM_CLOCK) -> web.Application:
    """The app; `clock` is the one its calls measure time with (tests pass a FakeClock)."""
    # Handlers that raise are logged by error_middleware; the access log would repeat every
    # request with its query string, so log_middleware replaces it.
    app = web.Application(
        middlewares=[log_middleware, metrics.metrics_middleware, error_middleware],
        client_max_size=1 << 20,
    )
    app[CONFIG] = config
    app[CLOCK] = clock
    app[PASSWORDS] = Passwords(config.server.password_hash_time_cost,
                               config.server.password_hash_memory_kib)
    app[LIMITS] = Limits.from_config(config)
    app.cleanup_ctx.append(_database_ctx(config))
    from meterchat.economy import routes as economy_routes

    app.cleanup_ctx.append(economy_routes.bonus_tiers_ctx)  # before the deposit watcher
    from meterchat.chain_ctx import chain_ctx
    from meterchat.deposits.watcher import watcher_ctx

    app.cleanup_ctx.append(chain_ctx(config))
    app.cleanup_ctx.append(watcher_ctx)
    from meterchat.withdrawals.sender import sender_ctx

    app.cleanup_ctx.append(sender_ctx)

    from meterchat.accounts import routes as accounts
    from meterchat.calls import routes as calls_routes
    from meterchat.calls import ws as ws_routes
    from meterchat.deposits import routes as deposits
    from meterchat.operator import admin_routes as admin
    from meterchat.operator import routes as operator_routes
    from meterchat.sellers import routes as sellers_routes
    from meterchat.web import health
    from meterchat.withdrawals import routes as withdrawals

    for module in (metrics, openapi, health, accounts, admin, deposits, calls_routes,
                   sellers_routes, ws_routes, withdrawals, operator_routes,
                   economy_routes):
        module.setup(app)
    from meterchat.web import static as static_routes

    static_routes.setup(app)  # the browser client at / and /static/
    return app
