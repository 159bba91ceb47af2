"""The terms of service at GET /api/terms: the operator's own text, read from `terms.md`
beside the database (the state directory), or else the default shipped in `static/terms.md`.
The text is a small markdown subset (`#` headings, paragraphs, `- ` lists) that the page
renders as text, never as HTML. A few `{{name}}` placeholders are filled with this server's
figures (commission, refund and dispute windows, withdrawal fees, contact)."""

from __future__ import annotations

import logging
from decimal import Decimal
from pathlib import Path

from aiohttp import web

from meterchat.appkeys import CONFIG
from meterchat.core.config import Config
from meterchat.web.static import STATIC_DIR

log = logging.getLogger("meterchat.web")

DEFAULT_TERMS = STATIC_DIR / "terms.md"
TERMS_FILE = "terms.md"
# A larger file is refused (the default is served, and a warning logged): terms are pages of
# text, not a place to store data.
MAX_TERMS_BYTES = 256 * 1024
CONTACT_PLACEHOLDER = "the operator's contact address (to be filled in by the operator)"


def operator_terms_path(config: Config) -> Path:
    """Where the operator puts their own terms: beside the database file."""
    return config.database.path.parent / TERMS_FILE


def _plain(d: Decimal | float) -> str:
    """25.0 -> "25", 0.5 -> "0.5": a figure as a person writes it."""
    return format(Decimal(str(d)).normalize(), "f")


def placeholders(config: Config) -> dict[str, str]:
    mail_from = config.mail.from_address
    contact = mail_from if mail_from and "@localhost" not in mail_from else CONTACT_PLACEHOLDER
    w = config.withdrawals
    tip = config.economy.tip_commission_percent
    hold = config.operator.earnings_hold_hours
    return {
        "tip_commission": (
            "the same share of each tip" if tip < 0 else f"{_plain(tip)} % of each tip"),
        "earnings_hold": (
            f"Earnings are held for {_plain(hold)} hours before they can be withdrawn."
            if hold > 0 else "Earnings can be withdrawn as soon as a call ends."),
        "contact": contact,
        "commission_percent": _plain(config.billing.commission_percent),
        "refund_below_live_s": _plain(config.billing.refund_below_live_s),
        "dispute_window_days": str(config.operator.dispute_window_days),
        "withdrawal_min_usdt": _plain(w.min_usdt),
        "withdrawal_fee_usdt": _plain(w.fee_usdt),
        # "auto": the TRX the transfer burns, read from the chain and shown before confirming.
        "withdrawal_network_fee": (
            "what the transfer burns in TRX at the time, in USDT (shown before you confirm)"
            if isinstance(w.network_fee_usdt, str) else f"{_plain(w.network_fee_usdt)} USDT"),
    }


def read_terms(config: Config) -> tuple[str, str]:
    """(source, text): "operator" with the state directory's file when it is there and
    readable, else "default" with the shipped text; placeholders filled in both."""
    path = operator_terms_path(config)
    source, text = "default", DEFAULT_TERMS.read_text(encoding="utf-8")
    try:
        if path.is_file():
            raw = path.read_bytes()
            if len(raw) > MAX_TERMS_BYTES:
                log.warning("terms file %s is over %d bytes; serving the default terms",
                            path, MAX_TERMS_BYTES)
            else:
                source, text = "operator", raw.decode("utf-8", errors="replace")
    except OSError as exc:
        log.warning("terms file %s could not be read (%s); serving the default terms",
                    path, exc.strerror)
    for name, value in placeholders(config).items():
        text = text.replace("{{" + name + "}}", value)
    return source, text.replace("\r\n", "\n")


async def terms(request: web.Request) -> web.Response:
    source, text = read_terms(request.app[CONFIG])
    return web.json_response({"source": source, "format": "markdown-subset", "text": text},
                             headers={"Cache-Control": "no-cache"})


def setup(app: web.Application) -> None:
    app.router.add_get("/api/terms", terms)
