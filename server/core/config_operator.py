"""Config sections of running the service: `[operator]` (disputes, holds, health, alert
mails), `[events]` and the `[[webhooks]]` tables they are delivered to, and `[mail]` (SMTP).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from meterchat.core.config_keys import key
from meterchat.core.units import usdt_to_musdt


@dataclass(frozen=True)
class OperatorConfig:
    dispute_window_days: int = key(
        14, "days after a call ends during which its buyer may dispute it", min=0
    )
    earnings_hold_hours: float = key(
        0.0, "hours a seller's earnings stay pending before they can be withdrawn (0 = none)",
        min=0,
    )
    release_interval_s: float = key(
        60.0, "seconds between passes that release held earnings", min=0.05
    )
    health_chain_timeout_s: float = key(
        2.0, "how long /api/health waits for the chain node", min=0.05
    )
    health_chain_cache_s: float = key(
        5.0, "seconds /api/health reuses its last reading of the chain node (however many "
        "ask, the node is read at most once per this)", min=0
    )
    alert_emails: list[str] = key(
        [], "addresses mailed the operator events (the same events as the webhooks), batched "
        "per event type; [] = no alert mails"
    )
    alert_batch_minutes: float = key(
        5.0, "at most one alert mail per event type per this many minutes, carrying every "
        "event of that type since the last one", min=0
    )


@dataclass(frozen=True)
class EventsConfig:
    deliver_interval_s: float = key(
        1.0, "seconds between passes of the job that delivers events to webhooks and alert "
        "mails", min=0.05
    )
    webhook_timeout_s: float = key(
        10.0, "timeout of one webhook POST (connect, send, answer)", min=0.05
    )
    retry_first_s: float = key(
        10.0, "wait after an event's first failed delivery; it doubles with each failure "
        "(with jitter: between half and all of it)", min=0.01
    )
    retry_max_s: float = key(
        3600.0, "longest wait between two attempts at delivering one event", min=0.01
    )
    max_age_hours: float = key(
        72.0, "an event a webhook has not taken (2xx) this many hours after it happened is "
        "marked dead for that webhook (shown on the operator page, re-sendable); the next "
        "ones go on", min=0
    )
    hot_wallet_low_trx: Decimal = key(
        Decimal(100), "hot_wallet.low starts when the hot wallet holds less TRX than this "
        "(energy for withdrawals) and clears when it holds this again; 0 = off",
        min=Decimal(0)
    )
    hot_wallet_low_usdt: Decimal = key(
        Decimal(0), "hot_wallet.low also starts below this much USDT; 0 = off", min=Decimal(0)
    )
    hot_wallet_check_s: float = key(
        60.0, "seconds between two readings of the hot wallet's balances for hot_wallet.low "
        "(by the withdrawal sender)", min=0.05
    )
    watcher_lag_blocks: int = key(
        100, "watcher.lagging starts when the deposit watcher is this many solidified blocks "
        "behind, or failed to read the node 3 passes in a row; clears when it caught "
        "up; 0 = off", min=0
    )

    @property
    def hot_wallet_low_sun(self) -> int:
        return int(self.hot_wallet_low_trx * 1_000_000)

    @property
    def hot_wallet_low_musdt(self) -> int:
        return usdt_to_musdt(self.hot_wallet_low_usdt)


@dataclass(frozen=True)
class WebhookConfig:
    """One `[[webhooks]]` table: where events are POSTed, signed with the secret read from
    the environment variable `secret_env`."""

    url: str = key("", "where events are POSTed (http:// or https://)")
    secret_env: str = key(
        "", "environment variable holding the webhook's signing secret (never put it here)"
    )
    events: list[str] = key(
        [], "the event types sent to this webhook, e.g. [\"deposit.credited\", "
        "\"withdrawal.review\"]; [] = every type"
    )



MAIL_TLS = ("starttls", "tls", "none")


@dataclass(frozen=True)
class MailConfig:
    smtp_host: str = key(
        "", "SMTP server; empty = no SMTP: mails stay in the outbox (`meterchat mail list`)"
    )
    smtp_port: int = key(587, "SMTP port (587 starttls, 465 tls, 25 none)", min=1, max=65535)
    smtp_tls: str = key("starttls", "starttls | tls (implicit TLS) | none", choices=MAIL_TLS)
    smtp_user: str = key("", "SMTP login; empty = no login")
    smtp_password_env: str = key(
        "SMTP_PASSWORD", "environment variable holding the SMTP login's password"
    )
    from_address: str = key(
        "meterchat <no-reply@localhost>", "the From: of every mail", toml="from"
    )
    public_url: str = key(
        "", "base URL of the links in mails (https://chat.example.com); empty = "
        "server.public_url, else http://host:port"
    )
    reset_ttl_minutes: int = key(60, "minutes a password reset link stays valid", min=1)
    verify_ttl_hours: int = key(72, "hours an email verification link stays valid", min=1)
    send_interval_s: float = key(5.0, "seconds between passes of the mail sender", min=0.05)
    smtp_timeout_s: float = key(15.0, "timeout of one SMTP connection or command", min=0.1)
    retry_max_s: float = key(
        3600.0, "longest wait between two attempts at one mail (the wait doubles from "
        "send_interval_s); a mail the server refuses for good (5xx) is marked failed", min=1
    )
