"""The pure rules of operator events (no I/O, the clock passed in): the list of event
types, the webhook signature (HMAC-SHA256 over "<t>.<body>") and its check, the wait
between two attempts (exponential with jitter), when a delivery is dead, the crossing of a
threshold event, and when an alert mail of a type is due."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from meterchat.core.event_types import EVENT_TYPES

DEPOSIT_CREDITED = "deposit.credited"
DEPOSIT_UNMATCHED = "deposit.unmatched"
WITHDRAWAL_REVIEW = "withdrawal.review"
WITHDRAWAL_FAILED = "withdrawal.failed"
WITHDRAWAL_CONFIRMED = "withdrawal.confirmed"
HOT_WALLET_LOW = "hot_wallet.low"
WATCHER_LAGGING = "watcher.lagging"
DISPUTE_OPENED = "dispute.opened"
REPORT_OPENED = "report.opened"
PHOTO_PENDING = "photo.pending"

TYPES = EVENT_TYPES
assert set(TYPES) == {DEPOSIT_CREDITED, DEPOSIT_UNMATCHED, WITHDRAWAL_REVIEW,
                      WITHDRAWAL_FAILED, WITHDRAWAL_CONFIRMED, HOT_WALLET_LOW,
                      WATCHER_LAGGING, DISPUTE_OPENED, REPORT_OPENED, PHOTO_PENDING}
# Fired once when their condition starts and once when it clears (data.state).
THRESHOLD_TYPES = (HOT_WALLET_LOW, WATCHER_LAGGING)
STARTED, CLEARED = "started", "cleared"

SIGNATURE_HEADER = "X-Meterchat-Signature"
EVENT_HEADER = "X-Meterchat-Event"
EVENT_ID_HEADER = "X-Meterchat-Event-Id"
# A receiver should refuse a signature older (or newer) than this; `meterchat events verify`
# does.
SIGNATURE_TOLERANCE_S = 300


def signature(secret: bytes, t: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of "<t>.<body>" under the webhook's secret."""
    return hmac.new(secret, str(t).encode() + b"." + body, hashlib.sha256).hexdigest()


def signature_header(secret: bytes, t: int, body: bytes) -> str:
    """The X-Meterchat-Signature value: `t=<unix seconds>,v1=<hex>`."""
    return f"t={t},v1={signature(secret, t, body)}"


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str


def verify(secret: bytes, header: str, body: bytes, now_s: int,
           tolerance_s: int = SIGNATURE_TOLERANCE_S) -> Verdict:
    """Check a signature header against the body: well formed, one v1 that matches (compared
    in constant time), and a timestamp within `tolerance_s` of now (an old one is a replay)."""
    t: int | None = None
    given: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isascii() and value.isdigit():
            t = int(value)
        elif name == "v1":
            given.append(value)
    if t is None or not given:
        return Verdict(False, "the header is not t=<unix seconds>,v1=<hex>")
    expected = signature(secret, t, body)
    if not any(hmac.compare_digest(expected, v) for v in given):
        return Verdict(False, "the signature does not match this body and secret")
    if abs(now_s - t) > tolerance_s:
        return Verdict(False, f"the timestamp is {abs(now_s - t)} s away from now (more than "
                              f"{tolerance_s} s): refused as a replay")
    return Verdict(True, "the signature is valid")


def retry_wait_ms(attempts: int, first_ms: int, max_ms: int, jitter: float) -> int:
    """The wait after the `attempts`-th failed attempt: first_ms doubling, at most max_ms,
    then between half and all of it (`jitter` in [0, 1), drawn by the caller), so receivers
    that came back are not hit by every sender at once."""
    base = min(max_ms, first_ms * 2 ** min(max(attempts - 1, 0), 40))
    return int(base / 2 + base / 2 * min(max(jitter, 0.0), 1.0))


def is_dead(now_ms: int, dead_at_ms: int) -> bool:
    """A delivery still failing at or after its dead line is given up (until resent)."""
    return now_ms >= dead_at_ms


def crossing(last_state: str | None, active: bool) -> str | None:
    """The state a threshold event reports now, or None when nothing crossed: `started` when
    the condition holds and was not already started; `cleared` when it no longer holds after
    it started. A condition never seen started clears nothing."""
    if active and last_state != STARTED:
        return STARTED
    if not active and last_state == STARTED:
        return CLEARED
    return None


# Failed passes in a row after which a watcher that cannot read the node is lagging.
NODE_FAILURES_LAGGING = 3


def watcher_lagging(lag_blocks: int | None, failures: int, max_lag_blocks: int) -> bool:
    """The deposit watcher lags when it is `max_lag_blocks` or more solidified blocks behind,
    or has failed to read the node NODE_FAILURES_LAGGING passes in a row (0 = never)."""
    if max_lag_blocks <= 0:
        return False
    return failures >= NODE_FAILURES_LAGGING or (lag_blocks or 0) >= max_lag_blocks


def hot_wallet_low(trx_sun: int, usdt_musdt: int, min_sun: int, min_musdt: int) -> bool:
    """The hot wallet is low below either configured floor (a floor of 0 is off)."""
    return (min_sun > 0 and trx_sun < min_sun) or (min_musdt > 0 and usdt_musdt < min_musdt)


def alert_due(last_sent_ms: int | None, now_ms: int, batch_ms: int) -> bool:
    """An alert mail of one type may go when none went in the last `batch_ms`."""
    return last_sent_ms is None or now_ms - last_sent_ms >= batch_ms


def is_success(http_status: int) -> bool:
    return 200 <= http_status < 300
