"""In-memory sliding-window counters for logins, sign-ups, TXID claims and socket messages,
and the login rule built on them. Pure rules with an injectable clock, so they are tested
without a server."""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from meterchat.core.config import Config


class SlidingWindow:
    """At most `limit` events per `window_s` per key."""

    def __init__(self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self.max_keys = max_keys
        self._events: dict[str, deque[float]] = {}

    def _trim(self, key: str) -> deque[float]:
        q = self._events.get(key)
        if q is None:
            if len(self._events) >= self.max_keys:
                self._evict()
            q = self._events[key] = deque()
        cutoff = self.clock() - self.window_s
        while q and q[0] <= cutoff:
            q.popleft()
        return q

    def _evict(self) -> None:
        cutoff = self.clock() - self.window_s
        for k in [k for k, q in self._events.items() if not q or q[-1] <= cutoff]:
            del self._events[k]

    def retry_after(self, key: str) -> float:
        """Seconds until one more event is allowed (0 when allowed now)."""
        q = self._trim(key)
        if len(q) < self.limit:
            return 0.0
        return max(0.0, q[0] + self.window_s - self.clock())

    def hit(self, key: str) -> None:
        self._trim(key).append(self.clock())

    def reset(self, key: str) -> None:
        self._events.pop(key, None)


def address_key(address: str) -> str:
    """What per-address limits count: the address itself for IPv4, its /64 for IPv6 (one
    customer line holds a whole /64, so counting single IPv6 addresses would limit
    nothing)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


LOGIN_WINDOW_S = 15 * 60
LOGIN_ACCOUNT_WINDOW_S = 5 * 60
KNOWN_ADDRESS_S = 30 * 86_400


class LoginGuard:
    """Failed logins are counted three ways; a login is refused (429) while any applies:

    - per (account, client address): `per_pair` in 15 minutes, a guesser at one account;
    - per client address: `per_address` in 15 minutes, a guesser trying many accounts (or
      made-up emails);
    - per account from all addresses: `per_account` in 5 minutes, a guesser spread over
      many addresses. High and short, and not applied to an address that logged in to this
      account within 30 days: strangers cannot lock the owner out of their own account.

    Refused attempts are not counted (a locked-out guesser does not extend their own
    lock-out, nor anybody else's)."""

    def __init__(self, per_pair: int, per_address: int, per_account: int,
                 clock: Callable[[], float] = time.monotonic, max_known: int = 100_000) -> None:
        self.clock = clock
        self.pair = SlidingWindow(per_pair, LOGIN_WINDOW_S, clock)
        self.address = SlidingWindow(per_address, LOGIN_WINDOW_S, clock)
        self.account = SlidingWindow(per_account, LOGIN_ACCOUNT_WINDOW_S, clock)
        self.max_known = max_known
        self._known: OrderedDict[str, float] = OrderedDict()

    @staticmethod
    def _pair(account: str, address: str) -> str:
        return f"{address_key(address)} {account}"  # an address key has no space

    def _is_known(self, account: str, address: str) -> bool:
        at = self._known.get(self._pair(account, address))
        return at is not None and self.clock() - at < KNOWN_ADDRESS_S

    def retry_after(self, account: str, address: str) -> float:
        """Seconds until this account may be tried from this address (0 = now)."""
        waits = [self.pair.retry_after(self._pair(account, address)),
                 self.address.retry_after(address_key(address))]
        if not self._is_known(account, address):
            waits.append(self.account.retry_after(account))
        return max(waits)

    def failed(self, account: str, address: str) -> None:
        self.pair.hit(self._pair(account, address))
        self.address.hit(address_key(address))
        self.account.hit(account)

    def succeeded(self, account: str, address: str) -> None:
        key = self._pair(account, address)
        self.pair.reset(key)
        self._known[key] = self.clock()
        self._known.move_to_end(key)
        while len(self._known) > self.max_known:
            self._known.popitem(last=False)


@dataclass
class Limits:
    """The server's request limits, one object in the app."""

    login: LoginGuard
    registrations_by_address: SlidingWindow
    claims_by_user: SlidingWindow
    claims_by_address: SlidingWindow
    resets_by_address: SlidingWindow
    mails_by_email: SlidingWindow  # reset and verification mails to one address
    otp_failures: SlidingWindow  # wrong 2FA codes per account
    photo_uploads: SlidingWindow  # seller photo uploads per seller
    withdrawal_quotes: SlidingWindow  # "auto" fee quotes per account (each may read the node)

    @classmethod
    def from_config(cls, config: Config, clock: Callable[[], float] = time.monotonic) -> Limits:
        s, d, sec = config.server, config.deposits, config.security
        return cls(
            login=LoginGuard(s.login_attempts_per_account, s.login_attempts_per_ip,
                             s.login_attempts_per_account_any_address, clock),
            registrations_by_address=SlidingWindow(s.registrations_per_ip_per_hour, 3600,
                                                   clock),
            claims_by_user=SlidingWindow(d.claims_per_user_per_hour, 3600, clock),
            claims_by_address=SlidingWindow(d.claims_per_ip_per_hour, 3600, clock),
            resets_by_address=SlidingWindow(sec.resets_per_ip_per_hour, 3600, clock),
            mails_by_email=SlidingWindow(sec.resets_per_email_per_hour, 3600, clock),
            otp_failures=SlidingWindow(sec.otp_attempts_per_account, LOGIN_WINDOW_S, clock),
            photo_uploads=SlidingWindow(config.sellers.photo_uploads_per_hour, 3600, clock),
            withdrawal_quotes=SlidingWindow(config.withdrawals.quotes_per_user_per_minute, 60,
                                            clock),
        )
