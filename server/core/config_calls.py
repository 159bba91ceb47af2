"""Config sections of the calls: `[billing]` (commission, rates, pauses, timeouts, the
meter), `[calls]` (chat) and `[ice]` (STUN/TURN).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from meterchat.core.config_keys import key


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
        1.0, "seconds between ticks (presence, timeouts, and a billing pass over every call)",
        min=0.05,
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
