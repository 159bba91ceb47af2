"""The aiohttp application factory: the middlewares (request log, metrics, errors), the
resources opened at start-up and closed at shutdown (cleanup_ctx), and each room's routes.
`create_app(config)` is all a test or the CLI needs.

`error_middleware` below is the one place where a domain error (core/errors.py) or an
aiohttp HTTP exception becomes the JSON error shape {"error": {"code", "message"}}."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from aiohttp import web
from aiohttp.typedefs import Handler

from meterchat.accounts import routes as accounts_routes
from meterchat.accounts.auth import admin_2fa_middleware, client_address
from meterchat.accounts.passwords import Passwords
from meterchat.appkeys import CLOCK, CONFIG, DB, LIMITS, PASSWORDS
from meterchat.calls import routes as calls_routes
from meterchat.calls import ws as calls_ws
from meterchat.chain.prices import ChainPrices
from meterchat.chain_ctx import CHAIN_PRICES, chain_ctx
from meterchat.core import logs
from meterchat.core.clock import SYSTEM_CLOCK, Clock
from meterchat.core.config import Config
from meterchat.core.db import Database, migrate_sync
from meterchat.core.errors import ApiError
from meterchat.core.jobs import jobs_ctx
from meterchat.core.ratelimit import Limits
from meterchat.deposits import routes as deposits_routes
from meterchat.deposits.sweeper import sweeper_ctx
from meterchat.deposits.watcher import watcher_ctx
from meterchat.economy import routes as economy_routes
from meterchat.events import routes as events_routes
from meterchat.events.sender import events_ctx
from meterchat.mail.sender import mail_ctx
from meterchat.operator import admin_routes as operator_admin_routes
from meterchat.operator import routes as operator_routes
from meterchat.sellers import routes as sellers_routes
from meterchat.web import health, metrics, openapi, static, terms
from meterchat.withdrawals import routes as withdrawals_routes
from meterchat.withdrawals.sender import sender_ctx

log = logging.getLogger("meterchat.http")
# log_middleware logs every request without its query string (which may carry a WebSocket
# token); aiohttp's access log would repeat it with the query string, wherever a runner is
# created with the default access log.
logging.getLogger("aiohttp.access").setLevel(logging.WARNING)

CleanupCtx = Callable[[web.Application], AsyncIterator[None]]


class Routes(Protocol):
    """A room's HTTP module: its setup(app) adds its routes."""

    def setup(self, app: web.Application) -> None: ...


# Each room's HTTP face, one module per line: its setup(app) adds its routes, and what they
# need that lives as long as the app (calls: the call manager and its tick; operator: the
# earnings release job; their cleanup_ctx come after the ones create_app opens).
ROUTES: tuple[Routes, ...] = (
    metrics,  # GET /metrics, and the registry the middleware below counts into
    openapi,  # GET /api/openapi.json
    health,  # GET /api/health
    accounts_routes,  # /api/auth/*, /api/me
    sellers_routes,  # /api/seller/*, /api/sellers, /api/users/{id}/block|report
    economy_routes,  # tips, limits, self-exclusion, privacy, seller stats, promotions
    deposits_routes,  # /api/deposits/*, /api/ledger, /api/admin/deposits
    withdrawals_routes,  # /api/withdrawals, /api/admin/withdrawals
    calls_routes,  # /api/calls/*, /api/ice
    calls_ws,  # /ws: signalling
    operator_routes,  # disputes, moderation, audit log, reconciliation
    operator_admin_routes,  # GET /api/admin/audit
    events_routes,  # GET /api/admin/events, POST /api/admin/events/{id}/resend
    static,  # the browser client at / and /static/, GET /api/client-config, headers
    terms,  # GET /api/terms: the operator's terms file or the shipped default
)

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


def error_json(status: int, code: str, message: str,
               headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(
        {"error": {"code": code, "message": message}}, status=status, headers=headers
    )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
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
async def log_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
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


def _database_ctx(config: Config) -> CleanupCtx:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        db = Database(config.database.path, config.database.busy_timeout_ms)
        await db.open(migrate=False)
        applied = await db.call(migrate_sync)
        row = await db.fetchone("SELECT MAX(version) AS version FROM schema_migrations")
        logs.event(logging.getLogger("meterchat.db"), "database_opened",
                   path=str(config.database.path), schema_version=row["version"] if row else None,
                   migrations_applied=applied)
        app[DB] = db
        yield
        await db.close()

    return ctx


def create_app(config: Config, clock: Clock = SYSTEM_CLOCK) -> web.Application:
    """The app; `clock` is the one its calls measure time with (tests pass a FakeClock)."""
    # Handlers that raise are logged by error_middleware; the access log would repeat every
    # request with its query string, so log_middleware replaces it.
    app = web.Application(
        middlewares=[log_middleware, metrics.metrics_middleware, error_middleware,
                     admin_2fa_middleware],
        client_max_size=1 << 20,
    )
    app[CONFIG] = config
    app[CLOCK] = clock
    app[PASSWORDS] = Passwords(config.server.password_hash_time_cost,
                               config.server.password_hash_memory_kib)
    app[LIMITS] = Limits.from_config(config)
    app[CHAIN_PRICES] = ChainPrices()
    # Opened in this order at start-up, closed in the reverse order at shutdown.
    resources: list[CleanupCtx] = [
        # The one scheduler first: every job's cleanup_ctx registers on it, and leaves it
        # before its own resources (and the database) close.
        jobs_ctx,
        _database_ctx(config),
        economy_routes.bonus_tiers_ctx,  # the bonus tiers, before the watcher credits any
        chain_ctx(config),  # the gateway (and the embedded devnet node)
        watcher_ctx,  # the deposit watcher job
        sweeper_ctx,  # the sweeper job (deposits.mode = "address_per_user")
        sender_ctx,  # the withdrawal sender job
        mail_ctx,  # the mail sender job (with mail.smtp_host set)
        events_ctx,  # the webhooks and alert mails job (with either configured)
    ]
    app.cleanup_ctx.extend(resources)
    for module in ROUTES:
        module.setup(app)
    return app
