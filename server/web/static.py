"""The browser client: index.html at `/`, static/ under `/static/`, the few public
settings the pages need (network, explorer, limits) at GET /api/client-config, and the
security headers of every response: this module is their one owner (the TLS proxy in front,
deploy/Caddyfile, adds none of them)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from aiohttp import web

from meterchat.appkeys import CONFIG
from meterchat.core.units import TOKENS_PER_USDT

STATIC_DIR = Path(str(resources.files("meterchat.static")))

# Where a TXID can be looked up; devnet has no public explorer.
EXPLORER_TX_URL = {
    "mainnet": "https://tronscan.org/#/transaction/{txid}",
    "nile": "https://nile.tronscan.org/#/transaction/{txid}",
    "shasta": "https://shasta.tronscan.org/#/transaction/{txid}",
    "devnet": "",
}

# Everything is served from this origin: no CDN, no inline script. Media and QR codes may be
# blob:/data: URLs made by the page itself.
CSP = (
    "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
    "connect-src 'self' ws: wss:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)

# On every response the app makes (pages, files, API answers, errors).
_EVERY_RESPONSE = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

# On the page: the policy above, and the camera and microphone of this origin only.
_PAGE = {
    "Content-Security-Policy": CSP,
    "Permissions-Policy": "camera=(self), microphone=(self), geolocation=()",
    "Cache-Control": "no-cache",
}

# Behind TLS (public_url https://...), browsers are told to use nothing else for a year.
HSTS = "max-age=31536000"

# The product's name without a version: aiohttp's default ("Python/3.11 aiohttp/3.x")
# tells an attacker which versions to look up.
SERVER_HEADER = "meterchat"


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers=_PAGE)


# Routes some pages use only when this server has them (the operator's tools may come later
# than the rest): the page asks for nothing that would answer 404.
OPTIONAL_FEATURES = {
    "disputes": ("POST", "/api/calls/{id}/dispute"),
    "admin_disputes": ("GET", "/api/admin/disputes"),
    "bans": ("POST", "/api/admin/users/{id}/ban"),
    "reconcile": ("GET", "/api/admin/reconcile"),
}


def served_features(app: web.Application) -> dict[str, bool]:
    served = {(r.method, r.resource.canonical) for r in app.router.routes()
              if r.resource is not None}
    return {name: route in served for name, route in OPTIONAL_FEATURES.items()}


async def client_config(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    w = config.withdrawals
    return web.json_response({
        "network": config.chain.network,
        "explorer_tx_url": EXPLORER_TX_URL.get(config.chain.network, ""),
        "tokens_per_usdt": TOKENS_PER_USDT,
        "deposit_min_usdt": str(config.deposits.min_usdt),
        "deposit_mode": config.deposits.mode,
        "withdrawal_min_usdt": str(w.min_usdt),
        "withdrawal_fee_usdt": str(w.fee_usdt),
        "withdrawal_network_fee_usdt": str(w.network_fee_usdt),
        # µUSDT ints let the page preview net amounts without floats; with an "auto" network
        # fee only GET /api/withdrawals/quote knows it (null here).
        "withdrawal_fees_musdt": None if w.network_fee_auto else w.fee_musdt + w.network_fee_musdt,
        # The default platform share of a call (a seller's own, if any, is in their profile).
        "commission_percent": format(config.billing.commission_percent.normalize(), "f"),
        "min_rate": config.billing.min_rate,
        "max_rate": config.billing.max_rate,
        "min_prefund_minutes": config.billing.min_prefund_minutes,
        "reconnect_grace_s": config.billing.reconnect_grace_s,
        "media_timeout_s": config.billing.media_timeout_s,
        "features": served_features(request.app),
    })


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    headers["Server"] = SERVER_HEADER
    for name, value in _EVERY_RESPONSE.items():
        headers[name] = value
    if request.app[CONFIG].server.public_url.startswith("https://"):
        headers["Strict-Transport-Security"] = HSTS
    if request.path.startswith("/static/"):
        # Revalidate on each load: a deploy must never leave an old module beside a new one.
        headers.setdefault("Cache-Control", "no-cache")


def setup(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/api/client-config", client_config)
    app.router.add_static("/static/", STATIC_DIR, append_version=False)
    app.on_response_prepare.append(_security_headers)
