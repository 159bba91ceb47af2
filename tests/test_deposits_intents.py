"""Handing out intents (deposits/intents.py) on a real database: an amount is never shared
by two reserved intents, and an expired one's amount stays reserved 24 hours."""

from __future__ import annotations

import pytest

from meterchat.chain.address import to_base58
from meterchat.chain.networks import NETWORKS
from meterchat.core.db import connect_sync, migrate_sync, run_read, run_tx
from meterchat.core.errors import TooManyRequests
from meterchat.deposits import intents

USDT = NETWORKS["mainnet"].usdt_contract
ADDR = to_base58("41cdae4e9a6287333a3f7df432b050af7b17e79e63")
TTL = 60 * 60_000
DAY = 24 * 3600_000


@pytest.fixture
def conn(tmp_path):
    conn = connect_sync(tmp_path / "db.sqlite3")
    migrate_sync(conn)
    conn.execute("INSERT INTO users (id, email, password_hash, role, display_name,"
                 " created_at_ms) VALUES (1, 'a@b.co', 'x', 'buyer', 'a', 0)")
    yield conn
    conn.close()


def test_expired_amount_is_not_handed_out_again_for_24_hours(conn):
    def new(at_ms: int) -> int:
        i = run_tx(conn, intents.create_intent_tx, 1, 10_000_000, ADDR, USDT, TTL, at_ms, min)
        return i.amount_musdt - 10_000_000

    assert new(0) == 1
    assert new(1000) == 2  # open: never shared
    assert new(TTL + DAY - 1) == 3  # both expired, still reserved for late transfers
    assert new(TTL + DAY + 1) == 1  # 24 h after expiry the first amount is free again
    amounts = {new(TTL + DAY + 2) for _ in range(300)}
    assert len(amounts) == 300 and 1 not in amounts


def test_an_intent_reads_back_as_it_was_handed_out_and_the_open_ones_are_bounded(conn):
    first = run_tx(conn, intents.create_intent_tx, 1, 10_000_000, ADDR, USDT, TTL, 5, min,
                   max_open=2)
    assert (first.user_id, first.amount_musdt, first.address, first.usdt_contract) == \
        (1, 10_000_001, ADDR, USDT)
    assert (first.created_at_ms, first.expires_at_ms, first.reserved_until_ms) == \
        (5, 5 + TTL, 5 + TTL + DAY)
    assert first.paid_deposit_id is None
    run_tx(conn, intents.create_intent_tx, 1, 10_000_000, ADDR, USDT, TTL, 6, max_open=2)
    with pytest.raises(TooManyRequests) as err:
        run_tx(conn, intents.create_intent_tx, 1, 10_000_000, ADDR, USDT, TTL, 7, max_open=2)
    assert err.value.code == "too_many_intents"
    assert err.value.headers == {"Retry-After": str(-(-(5 + TTL - 7) // 1000))}
    listed = run_read(conn, intents.user_intents, 1)
    assert [i.id for i in listed] == [first.id + 1, first.id] and listed[1] == first
