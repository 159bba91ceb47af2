"""Configuration: every key declared once (default, type, help), read from one TOML file.

Each section is a frozen dataclass; a field's metadata carries its help text and limits.
`load_config(path)` validates the whole file and raises ConfigError naming the bad key.
Money keys are read as Decimal (TOML floats are parsed with parse_float=Decimal) and exposed
in integer µUSDT by properties, so no float ever touches money.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from meterchat.core import bonus_bound
from meterchat.core.event_types import EVENT_TYPES
from meterchat.core.units import usdt_to_musdt

NETWORKS = ("devnet", "nile", "shasta", "mainnet")


class ConfigError(Exception):
    """A config file that cannot be used; the message names the key."""


class Secret:
    """A secret value that never prints: repr and str show only that it is set."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret(***)"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)


def key(default: Any, help: str, **limits: Any) -> Any:
    """Declare a config key: its default, its help text and optional limits
    (`choices`, `min`, `max`; `words`: strings a number key takes too); `toml="name"` when the file's name is no Python name
    (`[mail] from`)."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help, **limits})
    return field(default=default, metadata={"help": help, **limits})


@dataclass(frozen=True)
class ServerConfig:
    host: str = key("127.0.0.1", "address to listen on")
    port: int = key(8080, "TCP port to listen on", min=0, max=65535)
    public_url: str = key(
        "", "URL users open (https://... behind a TLS proxy); empty = http://host:port"
    )
    max_ws_connections: int = key(
        4000,
        "WebSocket connections accepted at once; keep well below the process file limit",
        min=1,
    )
    ws_heartbeat_s: float = key(
        20.0, "seconds between WebSocket pings; a socket that misses a pong is closed", min=0.5
    )
    ws_max_message_bytes: int = key(
        65536, "largest WebSocket message accepted; bigger ones get an error", min=1024
    )
    ws_messages_per_10s: int = key(
        200, "WebSocket messages one socket may send per 10 seconds", min=1
    )
    max_ws_per_user: int = key(
        8, "WebSocket connections one account may have open at once (tabs); more get 429",
        min=1,
    )
    ws_send_queue_messages: int = key(
        256, "messages that may wait to be sent to one socket; one more closes that socket",
        min=1,
    )
    ws_send_queue_bytes: int = key(
        1048576, "bytes that may wait to be sent to one socket; more close that socket",
        min=1024,
    )
    ws_send_timeout_s: float = key(
        10.0, "seconds one message may take to go out to a socket before it is closed",
        min=0.01,
    )
    presence_grace_s: float = key(
        30.0, "seconds a seller's sockets may all be gone before the seller is set offline",
        min=0,
    )
    log_level: str = key("info", "log level", choices=("debug", "info", "warning", "error"))
    event_loop: str = key(
        "auto", "event loop of `meterchat serve`: auto = uvloop when installed (pip install "
        "'meterchat[fast]'), else asyncio's own", choices=("auto", "uvloop", "asyncio"))
    trusted_proxies: list[str] = key(
        [], "addresses (IPs or CIDRs) of the reverse proxies in front of meterchat: only a "
        "request from one of them has its X-Forwarded-For (the client address) and "
        "X-Forwarded-Proto believed; [] = none, the peer is the client. Behind the shipped "
        'Caddy (deploy/Caddyfile): ["127.0.0.1"]'
    )
    login_attempts_per_account: int = key(
        10, "failed logins per account from one client address per 15 minutes before 429",
        min=1,
    )
    login_attempts_per_ip: int = key(
        30, "failed logins from one client address (IPv6: one /64), whatever the accounts, "
        "per 15 minutes before 429", min=1
    )
    login_attempts_per_account_any_address: int = key(
        100, "failed logins per account from all addresses together per 5 minutes before "
        "429 (an address that logged in to the account before is not held by it)", min=1
    )
    registrations_per_ip_per_hour: int = key(
        10, "sign-ups one client address (IPv6: one /64) may ask for per hour (each costs a "
        "password hash)", min=1
    )
    session_days: int = key(30, "days a login session stays valid", min=1)
    password_hash_time_cost: int = key(3, "argon2id passes per password hash", min=1)
    password_hash_memory_kib: int = key(
        65536, "argon2id memory per password hash, KiB (lower only on tiny test machines)",
        min=1024,
    )


@dataclass(frozen=True)
class DatabaseConfig:
    path: Path = key(Path("data/meterchat.sqlite3"), "SQLite file; relative to the config file")
    busy_timeout_ms: int = key(5000, "how long a writer waits for the database lock", min=0)


@dataclass(frozen=True)
class ChainConfig:
    network: str = key("devnet", "TRON network", choices=NETWORKS)
    endpoint: str = key("", "full node HTTP API; empty = the network's public default (or the "
                        "embedded devnet); ignored when endpoints is set")
    endpoints: list[str] = key(
        [], "full nodes' HTTP APIs, tried in this order (reads fail over to the next, "
        "broadcasts go to all); set, it takes precedence over endpoint")
    node_backoff_s: float = key(
        1.0, "a node that failed is skipped this long, doubled at each failure in a row",
        min=0)
    node_backoff_max_s: float = key(60.0, "the longest a failed node is skipped", min=0)
    api_key_env: str = key("TRONGRID_API_KEY", "environment variable holding the TronGrid API key")
    usdt_contract: str = key("", "USDT TRC20 contract; empty = the network's USDT")
    deposit_address: str = key("", "platform deposit address; empty on devnet = a generated one")
    hot_wallet_key_file: str = key(
        "", "file holding the hot wallet's private key (hex); relative to the config file"
    )
    hot_wallet_key_env: str = key("", "environment variable holding the hot wallet's private key")
    deposit_xpub: str = key(
        "", "account-level extended public key (xpub of m/44'/195'/0') the personal deposit "
        "addresses derive from (m/44'/195'/0'/0/<index>) when deposits.mode = "
        "\"address_per_user\"; watching needs nothing else; empty on devnet = a generated one"
    )
    deposit_seed_file: str = key(
        "", "file holding the BIP-39 mnemonic of deposit_xpub, read by the sweeper alone "
        "(never put the mnemonic in this file); relative to the config file"
    )
    deposit_seed_env: str = key(
        "", "environment variable holding that mnemonic (instead of deposit_seed_file)"
    )
    request_timeout_s: float = key(10.0, "timeout of one request to the node", min=0.1)


@dataclass(frozen=True)
class DevnetConfig:
    host: str = key("127.0.0.1", "address the embedded devnet node listens on")
    port: int = key(8090, "port of the embedded devnet node (0 = any free port)", min=0, max=65535)
    block_time_s: float = key(3.0, "seconds between devnet blocks", min=0.05)
    solidify_depth: int = key(19, "blocks on top before a block counts as solidified", min=0)
    path: Path = key(Path("data/devnet.sqlite3"), "devnet state file; relative to the config file")


@dataclass(frozen=True)
class DepositsConfig:
    mode: str = key(
        "unique_amount", "how a transfer finds its buyer: unique_amount = one shared address, "
        "each top-up an exact amount asked for first; address_per_user = each buyer's own "
        "address (HD-derived from chain.deposit_xpub), any amount credited, swept to the hot "
        "wallet ([sweeps])", choices=("unique_amount", "address_per_user"))
    min_usdt: Decimal = key(Decimal(3), "smallest top-up in USDT", min=Decimal("0.000001"))
    intent_ttl_minutes: int = key(60, "minutes a deposit intent stays open", min=1)
    watcher_interval_s: float = key(3.0, "seconds between deposit watcher passes", min=0.05)
    max_open_intents_per_user: int = key(
        5, "open (unexpired, unpaid) top-up intents one account may hold; more is 429 "
        "too_many_intents", min=1
    )
    claims_per_user_per_hour: int = key(
        60, "TXID claims one account may make per hour (each reads the node; the wallet page "
        "asks every 3 s until its transfer is final)", min=1
    )
    claims_per_ip_per_hour: int = key(
        180, "TXID claims from one client address (IPv6: one /64) per hour", min=1
    )

    @property
    def min_musdt(self) -> int:
        return usdt_to_musdt(self.min_usdt)


@dataclass(frozen=True)
class BillingConfig:
    commission_percent: Decimal = key(
        Decimal(25), "platform share of each charge, percent", min=Decimal(0), max=Decimal(100)
    )
    min_rate: int = key(1, "lowest rate a seller may set, tokens per minute, inclusive", min=1)
    max_rate: int = key(10000, "highest rate a seller may set, tokens per minute", min=1)
    min_prefund_minutes: int = key(1, "minutes a buyer must afford to start a call", min=0)
    reconnect_grace_s: float = key(30.0, "seconds a paused call waits before it ends", min=0)
    media_timeout_s: float = key(6.0, "a media report older than this pauses the call", min=0.5)
    refund_below_live_s: float = key(
        30.0, "calls lost with less live time than this may be refunded in full (when media "
        "never went live, or the seller's side was gone; see auto_refunds_per_day)", min=0
    )
    auto_refunds_per_day: int = key(
        3, "automatic refunds of lost calls per buyer in any 24 hours; later ones are charged "
        "and can be disputed", min=0
    )
    max_pauses_per_call: int = key(
        10, "pauses a call may have; the next one ends it (too_many_pauses)", min=0
    )
    max_paused_s_per_call: float = key(
        60.0, "seconds a call may spend paused in all; past it the call ends (too_many_pauses)",
        min=0,
    )
    ring_timeout_s: float = key(30.0, "seconds a call rings before it is missed", min=1)
    tick_interval_s: float = key(
        1.0, "seconds between ticks (timeouts, and a billing pass over every call)", min=0.05
    )
    meter_gap_s: float = key(
        0.1, "between ticks, calls whose 6-s segment completed are billed (and their meter "
        "sent) in passes at most this many seconds apart", min=0.01,
    )
    connect_timeout_s: float = key(
        30.0, "seconds an accepted call may take to go live before it ends as failed", min=1
    )


@dataclass(frozen=True)
class CallsConfig:
    chat_messages_per_10s: int = key(
        10, "chat messages one socket may send per 10 seconds; past it an error "
        "chat_rate_limited and the message is dropped", min=1
    )


@dataclass(frozen=True)
class WithdrawalsConfig:
    min_usdt: Decimal = key(Decimal(3), "smallest withdrawal in USDT", min=Decimal("0.000001"))
    fee_usdt: Decimal = key(Decimal("0.5"), "platform fee per withdrawal, USDT", min=Decimal(0))
    network_fee_usdt: Decimal | str = key(
        Decimal("1.0"), "charged per withdrawal for the TRX burned for energy, USDT; \"auto\" = "
        "the energy the transfer needs (triggerconstantcontract) times the chain's energy price "
        "(getchainparameters), converted at trx_usdt_price", min=Decimal(0), words=("auto",)
    )
    quotes_per_user_per_minute: int = key(
        60, "withdrawal quotes one account may ask for per minute while the network fee is "
        "\"auto\" (each may read the node); more is 429", min=1)
    trx_usdt_price: Decimal = key(
        Decimal("0.25"), "USDT per TRX, to convert the TRX an \"auto\" network fee burns "
        "into the USDT charged", min=Decimal("0.000001"))
    fee_limit_trx: int = key(40, "fee_limit of a USDT transfer, TRX", min=1)
    manual_review_above_usdt: Decimal = key(
        Decimal(200), "withdrawals above this wait for an operator, USDT", min=Decimal(0)
    )
    daily_limit_usdt: Decimal = key(
        Decimal(1000), "per user per day; past it withdrawals wait for an operator", min=Decimal(0)
    )
    buyer_withdrawals: bool = key(False, "let buyers withdraw too (never bonus tokens)")
    sender_interval_s: float = key(5.0, "seconds between withdrawal sender passes", min=0.05)
    expiry_margin_s: float = key(
        30.0, "seconds past a transaction's expiration (by this server's clock) before its "
        "absence from the solidified chain counts; covers clock skew", min=0)
    new_address_hold_hours: float = key(
        24.0, "hours a withdrawal to an address the user never withdrew to waits in queued "
        "(reason new_address_hold; the user is mailed and may cancel it); 0 = off", min=0)
    hold_after_security_change: bool = key(
        True, "hold every withdrawal for new_address_hold_hours after a password reset or a "
        "2FA change (a thief who took over the account cannot cash out at once)")
    require_verified_email: bool = key(
        True, "a user's email must be verified before their first withdrawal")

    @property
    def min_musdt(self) -> int:
        return usdt_to_musdt(self.min_usdt)

    @property
    def fee_musdt(self) -> int:
        return usdt_to_musdt(self.fee_usdt)

    @property
    def network_fee_auto(self) -> bool:
        return self.network_fee_usdt == "auto"

    @property
    def network_fee_musdt(self) -> int:
        """The fixed network fee; 0 when it is "auto" (read from the chain per request)."""
        fee = self.network_fee_usdt
        return 0 if isinstance(fee, str) else usdt_to_musdt(fee)

    @property
    def manual_review_above_musdt(self) -> int:
        return usdt_to_musdt(self.manual_review_above_usdt)

    @property
    def daily_limit_musdt(self) -> int:
        return usdt_to_musdt(self.daily_limit_usdt)


@dataclass(frozen=True)
class SweepsConfig:
    min_usdt: Decimal = key(
        Decimal(10), "a personal deposit address holding at least this much USDT is swept to "
        "the hot wallet", min=Decimal("0.000001"))
    interval_s: float = key(60.0, "seconds between sweeper passes", min=0.05)
    max_trx_per_sweep: Decimal = key(
        Decimal(20), "most TRX one sweep may cost (the TRX sent for its energy and "
        "bandwidth, an activation); a dearer sweep waits, saying why; also its fee_limit",
        min=Decimal("0.000001"))
    energy_price_sun: int = key(
        100, "no longer read (kept so older configs load): a sweep's energy and its price "
        "are the chain's own (triggerconstantcontract, getchainparameters' getEnergyFee)",
        min=1)
    energy: str = key(
        "burn", "how a sweep pays its energy: burn = the hot wallet sends the address the TRX "
        "to burn; delegate = the hot wallet lends it energy from its Stake 2.0 stake "
        "(delegateresource before the sweep, undelegateresource after; stake TRX for "
        "ENERGY with freezebalancev2 first)", choices=("burn", "delegate"))
    keep_trx_for_withdrawals: Decimal = key(
        Decimal(50), "TRX the hot wallet keeps for withdrawals' energy: a sweep's top-up that "
        "would leave less waits, saying why (0: no floor)", min=Decimal(0))
    expiry_margin_s: float = key(
        30.0, "seconds past a sweep transaction's expiration before its absence from the "
        "solidified chain counts", min=0)

    @property
    def min_musdt(self) -> int:
        return usdt_to_musdt(self.min_usdt)

    @property
    def max_sun(self) -> int:
        return usdt_to_musdt(self.max_trx_per_sweep)  # TRX has 6 decimals too

    @property
    def keep_sun(self) -> int:
        return usdt_to_musdt(self.keep_trx_for_withdrawals)


def parse_bonus_tiers(tiers: list[str]) -> list[tuple[int, int]]:
    """["50:5", "100:10"] -> [(50 USDT in µUSDT, 5 % in ppm), ...], sorted by threshold.
    Raises ValueError naming the bad entry."""
    out: dict[int, int] = {}
    for text in tiers:
        parts = text.split(":")
        try:
            if len(parts) != 2:
                raise ValueError
            from_usdt, percent = Decimal(parts[0].strip()), Decimal(parts[1].strip())
            if not (from_usdt.is_finite() and percent.is_finite()):
                raise ValueError
            from_musdt = usdt_to_musdt(from_usdt)
        except (ValueError, ArithmeticError):
            raise ValueError(f"{text!r} is not \"from_usdt:percent\" like \"100:10\"") from None
        if from_musdt <= 0 or not Decimal(0) < percent <= Decimal(100):
            raise ValueError(f"{text!r}: from_usdt must be above 0 and percent in (0, 100]")
        ppm = percent * 10_000
        if ppm != ppm.to_integral_value():
            raise ValueError(f"{text!r}: percent has more than 4 decimals")
        if from_musdt in out:
            raise ValueError(f"{text!r}: two tiers start at the same amount")
        out[from_musdt] = int(ppm)
    return sorted(out.items())


@dataclass(frozen=True)
class EconomyConfig:
    bonus_tiers: list[str] = key(
        [], 'top-up bonus tiers "from_usdt:percent", e.g. ["50:5", "100:10"]: a top-up of at '
        "least from_usdt gets percent extra tokens from promo:bonuses (the highest tier "
        "reached applies; bonus tokens pay for minutes, are never withdrawable or tippable; "
        "the highest tier plus any promotion must stay below the bound the lowest commission "
        "sets, 33.1557 % at 25 %)"
    )
    tip_commission_percent: Decimal = key(
        Decimal(-1), "platform share of a tip, percent; -1 = as for call minutes (the "
        "seller's own commission, else billing.commission_percent)",
        min=Decimal(-1), max=Decimal(100),
    )
    tip_window_hours: float = key(24.0, "hours after a call ends in which it can be tipped",
                                  min=0)
    max_tip_tokens: int = key(100_000, "largest single tip, whole tokens", min=1)
    limit_raise_delay_hours: float = key(
        24.0, "hours before a buyer's raised (or removed) spending limit takes effect; "
        "lowering takes effect at once", min=0,
    )
    max_self_exclusion_days: int = key(3650, "longest self-exclusion a buyer may choose",
                                       min=1)

    @property
    def bonus_tiers_ppm(self) -> list[tuple[int, int]]:
        return parse_bonus_tiers(self.bonus_tiers)


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


@dataclass(frozen=True)
class IceConfig:
    stun_urls: list[str] = key([], "STUN server URLs, e.g. stun:turn.example.com:3478")
    turn_urls: list[str] = key(
        [], "TURN server URLs, e.g. turn:chat.example.com:3478?transport=udp, "
        "turn:chat.example.com:3478?transport=tcp, turns:chat.example.com:5349?transport=tcp"
    )
    turn_secret_env: str = key(
        "TURN_SECRET", "environment variable holding coturn's static-auth-secret"
    )
    turn_ttl_s: int = key(3600, "lifetime of TURN credentials, seconds", min=60)


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


@dataclass(frozen=True)
class SecurityConfig:
    require_2fa_for_admins: bool = key(
        False, "refuse an admin's writes (403 2fa_required) until their 2FA is on; not set = "
        "true on mainnet, false elsewhere"
    )
    totp_issuer: str = key("meterchat", "the issuer name authenticator apps show")
    admin_otp_fresh_minutes: float = key(
        5.0, "minutes an admin's session may make further /api/admin/ writes after one that "
        "carried a valid code (withdrawals always need their own code)", min=0
    )
    resets_per_email_per_hour: int = key(
        3, "password reset mails one address may be sent per hour", min=1
    )
    resets_per_ip_per_hour: int = key(
        20, "password reset requests from one client address (IPv6: one /64) per hour", min=1
    )
    otp_attempts_per_account: int = key(
        10, "wrong 2FA codes per account per 15 minutes before 429", min=1
    )


@dataclass(frozen=True)
class SellersConfig:
    max_photo_bytes: int = key(
        5 * 1024 * 1024, "largest seller photo upload, bytes (larger: 413 photo_too_large)",
        min=1024)
    max_photo_pixels: int = key(
        40_000_000, "most pixels (width x height) a seller photo may decode to; more is refused"
        " as a decompression bomb (422 photo_too_many_pixels)", min=10_000)
    photo_uploads_per_hour: int = key(
        20, "seller photo uploads one seller may make per hour (more: 429)", min=1)
    photo_dir: Path = key(
        Path("data/photos"), "where the re-encoded seller photos are stored; relative to the"
        " config file")


@dataclass(frozen=True)
class FavouritesConfig:
    notice_interval_minutes: float = key(
        60.0, "at most one 'favourite online' notice (socket, and mail if opted in) per seller"
        " per buyer in this many minutes", min=0)


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    chain: ChainConfig = field(default_factory=ChainConfig)
    devnet: DevnetConfig = field(default_factory=DevnetConfig)
    deposits: DepositsConfig = field(default_factory=DepositsConfig)
    billing: BillingConfig = field(default_factory=BillingConfig)
    calls: CallsConfig = field(default_factory=CallsConfig)
    withdrawals: WithdrawalsConfig = field(default_factory=WithdrawalsConfig)
    sweeps: SweepsConfig = field(default_factory=SweepsConfig)
    ice: IceConfig = field(default_factory=IceConfig)
    operator: OperatorConfig = field(default_factory=OperatorConfig)
    economy: EconomyConfig = field(default_factory=EconomyConfig)
    mail: MailConfig = field(default_factory=MailConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    sellers: SellersConfig = field(default_factory=SellersConfig)
    favourites: FavouritesConfig = field(default_factory=FavouritesConfig)
    events: EventsConfig = field(default_factory=EventsConfig)
    # `[[webhooks]]`: an array of tables, each a WebhookConfig.
    webhooks: tuple[WebhookConfig, ...] = field(default_factory=tuple)
    # Directory relative paths were resolved against (the config file's, or the cwd).
    base_dir: Path = field(default_factory=Path.cwd, compare=False)

    def replace(self, **sections: Any) -> Config:
        """A copy with some keys changed: replace(billing={"media_timeout_s": 2})."""
        data: dict[str, Any] = {
            name: _section_to_dict(getattr(self, name)) for name in section_names()}
        data[WEBHOOKS] = [_section_to_dict(w) for w in self.webhooks]
        for name, values in sections.items():
            if name == WEBHOOKS:
                data[WEBHOOKS] = values  # replace(webhooks=[{url, secret_env, events}])
            else:
                data.setdefault(name, {}).update(values)
        return config_from_dict(data, self.base_dir)


# The one array of tables of the file.
WEBHOOKS = "webhooks"



def section_names() -> list[str]:
    """The file's [tables] (the [[webhooks]] array aside)."""
    return [f.name for f in dataclasses.fields(Config) if f.name not in ("base_dir", WEBHOOKS)]


def section_type(name: str) -> type:
    hint: type = typing.get_type_hints(Config)[name]
    return hint


def toml_name(f: dataclasses.Field[Any]) -> str:
    """The key's name in the TOML file (a field's own name unless declared otherwise)."""
    return str(f.metadata.get("toml", f.name))


def _section_to_dict(section: Any) -> dict[str, Any]:
    return {toml_name(f): getattr(section, f.name) for f in dataclasses.fields(section)}


def _convert(where: str, hint: Any, value: Any, meta: dict[str, Any],
             base_dir: Path) -> Any:
    def bad(expected: str) -> ConfigError:
        words = " or ".join(f'"{w}"' for w in meta.get("words", ()))
        return ConfigError(f"config key {where}: expected {expected}"
                           f"{' or ' + words if words else ''}, got {value!r}")

    if isinstance(value, str) and value in meta.get("words", ()):
        return value  # a word a number key also takes ("auto")
    if meta.get("words") and typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not str)

    if hint is bool:
        if not isinstance(value, bool):
            raise bad("true or false")
        out: Any = value
    elif hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        out = value
    elif hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            raise bad("a number")
        out = float(value)
    elif hint is Decimal:
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            raise bad("a number")
        out = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
        if not out.is_finite():
            raise bad("a finite number")
    elif hint is str:
        if not isinstance(value, str):
            raise bad("a string")
        out = value
    elif hint is Path:
        if not isinstance(value, str | Path) or str(value) == "":
            raise bad("a file path")
        out = Path(value)
        if not out.is_absolute():
            out = base_dir / out
    elif typing.get_origin(hint) is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad("a list of strings")
        out = list(value)
    else:  # pragma: no cover - a declaration error, caught by the tests
        raise ConfigError(f"config key {where}: unsupported type {hint}")
    choices = meta.get("choices")
    if choices is not None and out not in choices:
        raise ConfigError(
            f"config key {where}: {value!r} is not one of {', '.join(map(str, choices))}"
        )
    if "min" in meta and out < meta["min"]:
        raise ConfigError(f"config key {where}: {value!r} is below the minimum {meta['min']}")
    if "max" in meta and out > meta["max"]:
        raise ConfigError(f"config key {where}: {value!r} is above the maximum {meta['max']}")
    return out


def _build_section(name: str, values: Any, base_dir: Path, cls: type | None = None) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"config key {name}: expected a [{name}] table")
    cls = cls or section_type(name)
    hints = typing.get_type_hints(cls)
    fields = {toml_name(f): f for f in dataclasses.fields(cls)}
    kwargs = {}
    for k, v in values.items():
        if k not in fields:
            raise ConfigError(
                f"unknown config key {name}.{k}; keys of [{name}]: {', '.join(fields)}"
            )
        f = fields[k]
        kwargs[f.name] = _convert(f"{name}.{k}", hints[f.name], v, dict(f.metadata), base_dir)
    # Defaulted paths are relative to the config file too.
    for f in fields.values():
        if f.name not in kwargs and hints[f.name] is Path:
            kwargs[f.name] = _convert(f"{name}.{f.name}", Path, f.default, {}, base_dir)
    return cls(**kwargs)


def config_from_dict(data: dict[str, Any], base_dir: Path) -> Config:
    """Build a validated Config from parsed TOML; unknown keys and bad values raise."""
    known = section_names()
    for name in data:
        if name not in known and name != WEBHOOKS:
            raise ConfigError(
                f"unknown config section [{name}]; known sections: {', '.join(known)}"
            )
    sections = {name: _build_section(name, data.get(name, {}), base_dir) for name in known}
    security = data.get("security", {})
    if "require_2fa_for_admins" not in security:
        # Not set: required on mainnet, where the admin's account guards real money.
        sections["security"] = dataclasses.replace(
            sections["security"],
            require_2fa_for_admins=sections["chain"].network == "mainnet")
    cfg = Config(base_dir=base_dir, webhooks=_build_webhooks(data.get(WEBHOOKS, []), base_dir),
                 **sections)
    _check_across_keys(cfg)
    return cfg


def _build_webhooks(values: Any, base_dir: Path) -> tuple[WebhookConfig, ...]:
    """The `[[webhooks]]` tables, each checked like a section, named `webhooks[i]`."""
    if not isinstance(values, list):
        raise ConfigError("config key webhooks: expected [[webhooks]] tables")
    out: list[WebhookConfig] = []
    for i, table in enumerate(values):
        where = f"{WEBHOOKS}[{i}]"
        hook: WebhookConfig = _build_section(where, table, base_dir, WebhookConfig)
        if not hook.url.startswith(("http://", "https://")) or len(hook.url) < 10:
            raise ConfigError(f"config key {where}.url: expected an http:// or https:// URL, "
                              f"got {hook.url!r}")
        if not hook.secret_env:
            raise ConfigError(f"config key {where}.secret_env: name the environment variable "
                              "that holds this webhook's signing secret")
        unknown = [t for t in hook.events if t not in EVENT_TYPES]
        if unknown:
            raise ConfigError(f"config key {where}.events: unknown event types {unknown}; "
                              f"known: {', '.join(EVENT_TYPES)}")
        if any(w.url == hook.url for w in out):
            raise ConfigError(f"config key {where}.url: {hook.url} is configured twice")
        out.append(hook)
    return tuple(out)


def _check_across_keys(cfg: Config) -> None:
    if cfg.billing.min_rate > cfg.billing.max_rate:
        raise ConfigError("config key billing.min_rate: must not exceed billing.max_rate")
    try:
        tiers = parse_bonus_tiers(cfg.economy.bonus_tiers)
    except ValueError as exc:
        raise ConfigError(f"config key economy.bonus_tiers: {exc}") from None
    if -1 < cfg.economy.tip_commission_percent < 0:
        raise ConfigError("config key economy.tip_commission_percent: -1 or 0..100")
    for entry in cfg.server.trusted_proxies:
        try:
            ipaddress.ip_network(entry.strip(), strict=False)
        except ValueError:
            raise ConfigError(f"config key server.trusted_proxies: {entry!r} is not an IP "
                              "address or a CIDR like 10.0.0.0/8") from None
    _check_bonus_bound(cfg, tiers)


def _check_bonus_bound(cfg: Config, tiers: list[tuple[int, int]]) -> None:
    """A tier so high that spending a whole top-up and its bonus on a colluding seller pays
    more than the top-up cost is refused (core/bonus_bound.py has the rule)."""
    floor = bonus_bound.commission_floor_ppm(cfg.billing.commission_percent,
                                         cfg.economy.tip_commission_percent)
    allowed = bonus_bound.max_bonus_ppm(floor)
    top = max((p for _, p in tiers), default=0)
    if top > allowed:
        raise ConfigError(
            f"config key economy.bonus_tiers: a {Decimal(top) / 10_000} % tier with a"
            f" {Decimal(floor) / 10_000} % commission (the lower of billing.commission_percent"
            " and economy.tip_commission_percent) would let a buyer who spends a top-up and"
            " its bonus on a colluding seller take out more than the top-up cost; with this"
            f" commission a tier (plus any promotion) may be at most"
            f" {Decimal(allowed) / 10_000} %")


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read and validate a TOML config file; None means every default (paths under ./)."""
    if path is None:
        return config_from_dict({}, Path.cwd())
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {p}: {exc.strerror}") from exc
    try:
        data = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {p} is not valid TOML: {exc}") from exc
    return config_from_dict(data, p.resolve().parent)


def describe_keys() -> list[tuple[str, str, Any, str]]:
    """(section, key, default, help) for every declared key, for docs and tests."""
    out = []
    for name in section_names():
        for f in dataclasses.fields(section_type(name)):
            # Every key has a default or (lists) a default factory.
            default = f.default_factory() if callable(f.default_factory) else f.default
            out.append((name, toml_name(f), default, f.metadata.get("help", "")))
    return out


def describe_webhook_keys() -> list[tuple[str, str, Any, str]]:
    """(\"webhooks\", key, default, help) for each key of a `[[webhooks]]` table."""
    return [(WEBHOOKS, toml_name(f),
             f.default_factory() if callable(f.default_factory) else f.default,
             f.metadata.get("help", "")) for f in dataclasses.fields(WebhookConfig)]
