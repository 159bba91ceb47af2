"""Config sections of the server itself: `[server]` (listening, WebSockets, proxies, login
limits, password hashing), `[database]` and `[security]` (2FA, resets).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from meterchat.core.config_keys import key


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
