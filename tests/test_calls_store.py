"""calls/store.py alone, on a real SQLite file: the rules for starting a call, rows read by
name, the JSON view, state records that come too late, the end with its media, ratings."""

from __future__ import annotations

import sqlite3

import pytest

from meterchat.accounts import users as accounts
from meterchat.calls import store
from meterchat.calls.live import MediaRecord
from meterchat.core.db import connect_sync, migrate_sync, run_read, run_tx
from meterchat.core.errors import ApiError
from meterchat.money import billing
from meterchat.sellers import store as sellers
from tests.conftest import fund_sync

NOW = 1_750_000_000_000
RATE = 600  # tokens per minute: 60 per 6-s segment


@pytest.fixture
def conn(tmp_path):
    c = connect_sync(tmp_path / "db.sqlite3")
    migrate_sync(c)
    yield c
    c.close()


def people(conn, funds: int = 1000) -> tuple[int, int]:
    def make(c):
        s = accounts.insert_user(c, "s@example.com", "x", "seller", "Sam")
        sellers.save_profile(c, s.id, RATE, None, None, None)
        sellers.set_online(c, s.id, True)
        return s.id, accounts.insert_user(c, "b@example.com", "x", "buyer", "Bo").id

    seller, buyer = run_tx(conn, make)
    if funds:
        fund_sync(conn, buyer, funds)
    return seller, buyer


def start(conn, buyer: int, seller: int, rate: int = RATE, cap: int | None = None,
          prefund_minutes: int = 1) -> store.CallRow:
    return run_tx(conn, store.create_call_tx, buyer, seller, rate, cap, prefund_minutes,
                  250_000, NOW)


def refusal(conn, fn, *args) -> str:
    with pytest.raises(ApiError) as err:
        run_tx(conn, fn, *args)
    return err.value.code


def test_a_started_call_rings_holds_its_first_minute_and_reads_by_name(conn):
    seller, buyer = people(conn)
    row = start(conn, buyer, seller)
    assert (row.buyer_id, row.seller_id, row.rate_tokens_per_min, row.state) == (
        buyer, seller, RATE, "ringing")
    assert (row.live_ms, row.billed_tenths, row.charged_musdt, row.created_at_ms) == (0, 0, 0,
                                                                                     NOW)
    assert run_read(conn, store.get_call, row.id) == row
    assert run_read(conn, store.get_call, row.id + 1) is None
    # Whatever row factory the connection has, the rows are read by name.
    conn.row_factory = None
    assert run_read(conn, store.get_call, row.id) == row
    conn.row_factory = sqlite3.Row
    view = store.call_json(row)
    assert (view["id"], view["state"], view["created_at"], view["ended_at"]) == (
        str(row.id), "ringing", "2025-06-15T15:06:40.000Z", None)


def test_starting_a_call_checks_the_seller_the_rate_and_the_funds(conn):
    seller, buyer = people(conn, funds=599)
    args = (buyer, seller, RATE, None, 1, 250_000, NOW)
    assert refusal(conn, store.create_call_tx, *args) == "insufficient_funds"
    assert refusal(conn, store.create_call_tx, buyer, seller, 500, None, 1, 250_000,
                   NOW) == "rate_changed"
    assert refusal(conn, store.create_call_tx, buyer, buyer, RATE, None, 1, 250_000,
                   NOW) == "seller_not_found"
    assert refusal(conn, store.create_call_tx, buyer, seller, RATE, 59 * 10_000, 0, 250_000,
                   NOW) == "spend_cap_too_low"
    fund_sync(conn, buyer, 1)
    start(conn, buyer, seller)
    assert refusal(conn, store.create_call_tx, *args) == "seller_busy"
    run_tx(conn, sellers.set_online, seller, False)
    assert refusal(conn, store.create_call_tx, *args) == "seller_offline"


def test_the_view_of_an_active_call_counts_recorded_segments_as_charged(conn):
    seller, buyer = people(conn)
    call = start(conn, buyer, seller)
    run_tx(conn, store.accept_call_tx, call.id, NOW)
    run_tx(conn, billing.run_pass, [(call.id, 2)], NOW + 12_000)
    row = run_read(conn, store.get_call, call.id)
    assert (row.state, row.billed_tenths, row.settled_tenths) == ("connecting", 2, 0)
    view = store.call_json(row, live_ms=12_500)
    assert (view["charged"], view["live_seconds"], view["billed_tenths"]) == ("120", 12, 2)


def test_state_records_pauses_and_media_and_a_late_one_changes_nothing(conn):
    seller, buyer = people(conn)
    call = start(conn, buyer, seller)
    assert refusal(conn, store.accept_call_tx, call.id + 1, NOW) == "invalid_state"
    run_tx(conn, store.accept_call_tx, call.id, NOW)
    assert refusal(conn, store.accept_call_tx, call.id, NOW) == "invalid_state"
    media = [MediaRecord(call.id, buyer, 3, 2, "connected", 900, 30, NOW + 900, True,
                         NOW + 1_000),
             MediaRecord(call.id, seller, 3, 0, "disconnected", None, None, None, False,
                         NOW + 1_000)]
    run_tx(conn, store.record_state_tx, call.id, "live", NOW + 500)
    run_tx(conn, store.record_state_tx, call.id, "paused", NOW + 1_000,
           billing.Pauses(1, 0, "seller"), media)
    row = run_read(conn, store.get_call, call.id)
    assert (row.state, row.pauses, row.paused_by) == ("paused", 1, "seller")
    kept = conn.execute("SELECT user_id, good_reports, socket_open FROM call_media"
                        " WHERE call_id = ? ORDER BY user_id", (call.id,)).fetchall()
    assert sorted(tuple(r) for r in kept) == sorted([(buyer, 2, 1), (seller, 0, 0)])
    done = run_tx(conn, store.finish_call_tx, media, call.id, "ended", "seller_hangup", 500,
                  NOW + 2_000, 0, seller_side_failed=False, refunds_per_day=0,
                  pauses=billing.Pauses(1, 1_000, "seller"))
    assert done is not None and done.state == "ended"
    run_tx(conn, store.record_state_tx, call.id, "live", NOW + 3_000)  # too late
    events = conn.execute("SELECT state, detail FROM call_events WHERE call_id = ?"
                          " ORDER BY id", (call.id,)).fetchall()
    assert [tuple(e) for e in events] == [("ringing", None), ("connecting", None),
                                          ("live", None), ("paused", "seller"),
                                          ("ended", "seller_hangup")]
    row = run_read(conn, store.get_call, call.id)
    assert (row.state, row.end_reason, row.ended_at_ms) == ("ended", "seller_hangup",
                                                            NOW + 2_000)


def test_only_the_buyer_of_a_call_that_cost_something_rates_it_once(conn):
    seller, buyer = people(conn)
    call = start(conn, buyer, seller)
    run_tx(conn, store.accept_call_tx, call.id, NOW)
    assert refusal(conn, store.rate_call_tx, call.id, buyer, 5, None) == "invalid_state"
    run_tx(conn, billing.run_pass, [(call.id, 1)], NOW + 6_000)
    run_tx(conn, billing.finish_call, call.id, "ended", "buyer_hangup", 6_000, NOW + 6_000, 0)
    assert refusal(conn, store.rate_call_tx, call.id, seller, 5, None) == "call_not_found"
    row = run_tx(conn, store.rate_call_tx, call.id, buyer, 4, "fine")
    assert row.rating_stars == 4 and store.call_json(row)["rating"] == 4
    assert refusal(conn, store.rate_call_tx, call.id, buyer, 5, None) == "already_rated"
    listed = run_read(conn, store.list_calls_of, seller)
    assert [c.id for c in listed] == [call.id]
