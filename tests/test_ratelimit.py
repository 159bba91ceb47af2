"""The limit rules without a server: the login guard's three counts and who is exempt, the
client address behind trusted proxies, the shared chain reading of /api/health, and the
per-user cap on open top-up intents. A clock is passed in; nothing sleeps."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from meterchat.accounts.auth import forwarded_client
from meterchat.core.ratelimit import (
    LOGIN_ACCOUNT_WINDOW_S,
    LOGIN_WINDOW_S,
    LoginGuard,
    SlidingWindow,
    address_key,
)
from meterchat.deposits.rules import too_many_open
from meterchat.web.health import ChainReading


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_sliding_window_forgets_events_older_than_its_window():
    clock = Clock()
    w = SlidingWindow(2, 10, clock)
    w.hit("k")
    clock.t += 4
    w.hit("k")
    assert w.retry_after("k") == pytest.approx(6)
    clock.t += 6
    assert w.retry_after("k") == 0


def test_guessing_one_account_from_one_address_is_held_there_only():
    clock = Clock()
    g = LoginGuard(per_pair=10, per_address=30, per_account=100, clock=clock)
    for _ in range(10):
        g.failed("victim@x", "203.0.113.66")
    assert g.retry_after("victim@x", "203.0.113.66") > 0
    assert g.retry_after("other@x", "203.0.113.66") == 0
    assert g.retry_after("victim@x", "198.51.100.7") == 0
    clock.t += LOGIN_WINDOW_S
    assert g.retry_after("victim@x", "203.0.113.66") == 0


def test_many_accounts_from_one_address_hold_that_address():
    clock = Clock()
    g = LoginGuard(per_pair=10, per_address=30, per_account=100, clock=clock)
    for i in range(30):
        g.failed(f"made-up-{i}@x", "203.0.113.66")
    assert g.retry_after("anyone@x", "203.0.113.66") > 0
    assert g.retry_after("anyone@x", "203.0.113.67") == 0


def test_a_spread_out_guesser_holds_an_account_for_minutes_and_never_its_owners_address():
    clock = Clock()
    g = LoginGuard(per_pair=10, per_address=30, per_account=100, clock=clock)
    g.succeeded("victim@x", "198.51.100.7")  # the owner logged in from home once
    for i in range(100):  # ten addresses, ten guesses each
        g.failed("victim@x", f"203.0.113.{i // 10}")
    assert g.retry_after("victim@x", "192.0.2.1") == pytest.approx(LOGIN_ACCOUNT_WINDOW_S)
    assert g.retry_after("victim@x", "198.51.100.7") == 0
    clock.t += LOGIN_ACCOUNT_WINDOW_S
    assert g.retry_after("victim@x", "192.0.2.1") == 0


def test_a_success_clears_only_its_own_address_count():
    clock = Clock()
    g = LoginGuard(per_pair=3, per_address=30, per_account=100, clock=clock)
    for _ in range(2):
        g.failed("a@x", "198.51.100.7")
        g.failed("a@x", "203.0.113.66")
    g.succeeded("a@x", "198.51.100.7")
    g.failed("a@x", "198.51.100.7")
    g.failed("a@x", "203.0.113.66")
    assert g.retry_after("a@x", "198.51.100.7") == 0
    assert g.retry_after("a@x", "203.0.113.66") > 0


def test_ipv6_addresses_count_per_64():
    assert address_key("2001:db8:1:2:3:4:5:6") == address_key("2001:db8:1:2::1") \
        == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("203.0.113.66") == "203.0.113.66"
    g = LoginGuard(per_pair=10, per_address=2, per_account=100, clock=Clock())
    g.failed("a@x", "2001:db8::1")
    g.failed("b@x", "2001:db8::2")
    assert g.retry_after("c@x", "2001:db8::ffff") > 0


NETS = (ipaddress.ip_network("127.0.0.1"), ipaddress.ip_network("10.0.0.0/8"))


@pytest.mark.parametrize(("peer", "headers", "client"), [
    ("127.0.0.1", ["203.0.113.66"], "203.0.113.66"),
    ("127.0.0.1", [], "127.0.0.1"),
    # What a client wrote stands left of what the proxies appended.
    ("127.0.0.1", ["6.6.6.6, 203.0.113.66"], "203.0.113.66"),
    ("127.0.0.1", ["6.6.6.6", "203.0.113.66, 10.1.2.3"], "203.0.113.66"),
    ("127.0.0.1", ["garbage, 203.0.113.66"], "203.0.113.66"),
    ("127.0.0.1", ["203.0.113.66:5123"], "203.0.113.66"),
    ("127.0.0.1", ["[2001:db8::5]:443"], "2001:db8::5"),
    ("127.0.0.1", ["10.0.0.9"], "10.0.0.9"),  # only proxies: the left-most of them
    ("::ffff:127.0.0.1", ["203.0.113.66"], "203.0.113.66"),
    # From anybody else the header means nothing.
    ("198.51.100.7", ["203.0.113.66"], "198.51.100.7"),
    (None, ["203.0.113.66"], "unknown"),
])
def test_the_client_is_the_right_most_address_no_trusted_proxy_wrote(peer, headers, client):
    assert forwarded_client(peer, headers, NETS) == client


def test_no_trusted_proxies_means_the_peer_is_the_client():
    assert forwarded_client("127.0.0.1", ["203.0.113.66"], ()) == "127.0.0.1"


def test_a_full_intent_quota_waits_until_the_first_open_intent_expires():
    assert too_many_open(4, 10_000, 5, 0) is None
    refusal = too_many_open(5, 61_500, 5, 0)
    assert refusal is not None and refusal.code == "too_many_intents" and refusal.status == 429
    assert refusal.headers["Retry-After"] == "62"


async def test_health_reads_the_node_once_per_cache_period_however_many_ask():
    clock = Clock()
    reads = 0

    async def solidified() -> int:
        nonlocal reads
        reads += 1
        await asyncio.sleep(0)
        return 41 + reads

    reading = ChainReading(solidified, timeout_s=5, max_age_s=5, clock=clock)
    answers = await asyncio.gather(*(reading.get() for _ in range(50)))
    assert reads == 1 and answers == [{"solidified_block": 42}] * 50
    clock.t += 4.9
    assert await reading.get() == {"solidified_block": 42} and reads == 1
    clock.t += 0.1
    assert await reading.get() == {"solidified_block": 43} and reads == 2


async def test_an_unreachable_node_is_also_remembered_for_the_cache_period():
    from meterchat.chain.gateway import ChainUnavailable

    clock = Clock()
    reads = 0

    async def failing() -> int:
        nonlocal reads
        reads += 1
        raise ChainUnavailable("down")

    reading = ChainReading(failing, timeout_s=5, max_age_s=5, clock=clock)
    assert [await reading.get() for _ in range(3)] == ["unreachable"] * 3
    assert reads == 1
