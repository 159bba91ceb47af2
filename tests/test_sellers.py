"""The sellers listing's figures (finished calls, average rating): kept by triggers, always
equal to a recount of the calls, and filled in for calls made before they existed."""

from __future__ import annotations

import shutil

from meterchat.accounts import users as accounts
from meterchat.calls import store as calls
from meterchat.core.db import MIGRATIONS_DIR, connect_sync, migrate_sync, now_ms, run_read, run_tx
from meterchat.money import billing
from meterchat.sellers import store as sellers
from meterchat.sellers.routes import seller_json
from tests.conftest import fund_sync


def _people(conn, n_buyers: int):
    def make(c):
        s = accounts.insert_user_tx(c, "s@example.com", "x", "seller", "Sam")
        sellers.save_profile_tx(c, s.id, 600, None, None, None)
        sellers.set_online_tx(c, s.id, True)
        buyers = [accounts.insert_user_tx(c, f"b{i}@example.com", "x", "buyer", "B").id
                  for i in range(n_buyers)]
        return s.id, buyers

    seller_id, buyers = run_tx(conn, make)
    for b in buyers:
        fund_sync(conn, b, 5_000)
    return seller_id, buyers


def _call(conn, buyer_id: int, seller_id: int, live_ms: int, stars: int | None) -> int:
    call_id = run_tx(conn, calls.create_call_tx, buyer_id, seller_id, 600, None, 1, 250_000,
                     now_ms()).id
    run_tx(conn, calls.accept_call_tx, call_id, now_ms())
    if live_ms:
        run_tx(conn, billing.run_pass, [(call_id, billing.completed_tenths(live_ms))],
               now_ms())
    run_tx(conn, billing.finish_call, call_id, "ended", "hangup", live_ms, now_ms(), 0)
    if stars is not None:
        run_tx(conn, calls.rate_call_tx, call_id, buyer_id, stars, None)
    return call_id


def _recount(conn, seller_id: int) -> tuple[int, str | None]:
    n = conn.execute("SELECT COUNT(*) FROM calls WHERE seller_id = ? AND state = 'ended'"
                     " AND billed_tenths > 0", (seller_id,)).fetchone()[0]
    avg = conn.execute("SELECT AVG(rating_stars) FROM calls WHERE seller_id = ?",
                       (seller_id,)).fetchone()[0]
    return n, None if avg is None else f"{avg:.1f}"


def _listed(conn, seller_id: int) -> tuple[int, str | None]:
    shown = seller_json(run_read(conn, sellers.get_seller, seller_id))
    return shown["calls"], shown["rating"]


def test_listing_counts_billed_calls_and_averages_ratings(tmp_path):
    conn = connect_sync(tmp_path / "db.sqlite3")
    migrate_sync(conn)
    seller_id, buyers = _people(conn, 4)
    assert _listed(conn, seller_id) == (0, None)
    _call(conn, buyers[0], seller_id, 0, None)  # no live time: not counted
    assert _listed(conn, seller_id) == (0, None)
    _call(conn, buyers[1], seller_id, 14_000, 5)
    _call(conn, buyers[2], seller_id, 65_000, 2)  # crosses a minute boundary in the pass
    _call(conn, buyers[3], seller_id, 7_000, None)
    assert _listed(conn, seller_id) == _recount(conn, seller_id) == (3, "3.5")
    listed = run_read(conn, lambda c: sellers.list_sellers(c, online=True))
    assert [(s.calls, seller_json(s)["rating"]) for s in listed] == [(3, "3.5")]


def test_a_call_ended_by_the_billing_pass_is_counted(tmp_path):
    conn = connect_sync(tmp_path / "db.sqlite3")
    migrate_sync(conn)
    seller_id, buyers = _people(conn, 1)
    # The buyer can pay for 2 segments only: the pass ends the call at its boundary.
    conn.execute("UPDATE accounts SET balance_musdt = 0 WHERE name = ?",
                 (f"user:{buyers[0]}:available",))
    fund_sync(conn, buyers[0], 120)
    call_id = run_tx(conn, calls.create_call_tx, buyers[0], seller_id, 600, None, 0, 250_000,
                     now_ms()).id
    run_tx(conn, calls.accept_call_tx, call_id, now_ms())
    out = run_tx(conn, billing.run_pass, [(call_id, 5)], now_ms())
    assert out[0].end_reason == "insufficient_funds" and out[0].billed_tenths == 2
    assert _listed(conn, seller_id) == _recount(conn, seller_id) == (1, None)


def test_the_migration_fills_in_calls_made_before_it(tmp_path):
    older = tmp_path / "migrations"
    older.mkdir()
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        if not path.name.startswith("0007"):
            shutil.copy(path, older / path.name)
    conn = connect_sync(tmp_path / "db.sqlite3")
    migrate_sync(conn, older)

    def people(c):
        # Straight SQL: the profile functions already read the new columns.
        s = accounts.insert_user_tx(c, "s@example.com", "x", "seller", "Sam")
        c.execute("INSERT INTO sellers (user_id, rate_tokens_per_min, online, updated_at_ms)"
                  " VALUES (?, 600, 1, 0)", (s.id,))
        return s.id, [accounts.insert_user_tx(c, f"b{i}@example.com", "x", "buyer", "B").id
                      for i in range(2)]

    seller_id, buyers = run_tx(conn, people)
    for b in buyers:
        fund_sync(conn, b, 5_000)

    def call_then_rate(c, buyer_id, stars):
        call_id = calls.create_call_tx(c, buyer_id, seller_id, 600, None, 1, 250_000, now_ms()).id
        calls.accept_call_tx(c, call_id, now_ms())
        billing.finish_call(c, call_id, "ended", "hangup", 30_000, now_ms(), 0)
        c.execute("UPDATE calls SET rating_stars = ? WHERE id = ?", (stars, call_id))

    run_tx(conn, call_then_rate, buyers[0], 4)
    run_tx(conn, call_then_rate, buyers[1], 1)
    assert migrate_sync(conn) == ["0007_seller_listing"]
    assert _listed(conn, seller_id) == _recount(conn, seller_id) == (2, "2.5")


def test_busy_follows_the_sellers_call(tmp_path):
    conn = connect_sync(tmp_path / "db.sqlite3")
    migrate_sync(conn)
    seller_id, buyers = _people(conn, 2)

    def busy() -> bool:
        return run_read(conn, sellers.get_seller, seller_id).busy

    assert not busy()
    call_id = run_tx(conn, calls.create_call_tx, buyers[0], seller_id, 600, None, 1, 250_000,
                     now_ms()).id
    assert busy()  # ringing
    run_tx(conn, billing.finish_call, call_id, "declined", "declined", 0, now_ms(), 0)
    assert not busy()
    call_id = run_tx(conn, calls.create_call_tx, buyers[1], seller_id, 600, None, 1, 250_000,
                     now_ms()).id
    run_tx(conn, calls.accept_call_tx, call_id, now_ms())
    assert busy()
    assert run_tx(conn, billing.recover_after_crash, now_ms())  # a restart ends it
    assert not busy()


def test_the_listing_walks_its_index_instead_of_sorting_every_seller(tmp_path):
    conn = connect_sync(tmp_path / "db.sqlite3")
    migrate_sync(conn)
    seller_id, buyers = _people(conn, 1)
    seen: list[str] = []
    conn.set_trace_callback(seen.append)
    run_read(conn, lambda c: sellers.list_sellers(c, online=True, viewer_id=buyers[0]))
    conn.set_trace_callback(None)
    query = next(q for q in seen if "ORDER BY" in q)
    plan = " | ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + query))
    assert "sellers_listing" in plan and "TEMP B-TREE" not in plan, plan
