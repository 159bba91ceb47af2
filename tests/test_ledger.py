"""The ledger: balanced postings, no user account below zero, immutable postings, idempotent
replays, holds; property tests over random sequences; concurrent debits never overdraw."""

from __future__ import annotations

import ast
import asyncio
import re
import sqlite3
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from meterchat.accounts import users as accounts
from meterchat.core.db import Database, connect_sync, migrate_sync, run_read, run_tx
from meterchat.money import ledger
from meterchat.money.ledger import (
    CHAIN_DEPOSITS,
    REVENUE_COMMISSION,
    InsufficientFunds,
    user_account,
)


def new_db(path: Path) -> sqlite3.Connection:
    conn = connect_sync(path)
    migrate_sync(conn)
    return conn


def make_user(conn, email: str) -> int:
    return run_tx(conn, accounts.insert_user, email, "x", "buyer", "u").id


def deposit(conn, user_id: int, amount: int, key: str | None = None):
    return run_tx(
        conn, ledger.transfer, CHAIN_DEPOSITS, user_account(user_id), amount, "deposit",
        idem_key=key,
    )


@pytest.fixture
def conn(tmp_path):
    c = new_db(tmp_path / "ledger.sqlite3")
    yield c
    c.close()


def test_transfer_moves_money_and_balances_sum_to_zero(conn):
    uid = make_user(conn, "a@example.com")
    deposit(conn, uid, 1_000_000)
    assert run_read(conn, ledger.user_balances, uid) == {
        "available": 1_000_000, "held": 0, "pending": 0}
    report = run_read(conn, ledger.audit)
    assert report.ok
    assert report.deposits_in_musdt == 1_000_000
    assert report.users_total_musdt == 1_000_000


def test_overdraft_raises_and_writes_nothing(conn):
    uid = make_user(conn, "a@example.com")
    deposit(conn, uid, 500)
    before = conn.execute("SELECT COUNT(*) FROM postings").fetchone()[0]
    with pytest.raises(InsufficientFunds):
        run_tx(conn, ledger.transfer, user_account(uid), REVENUE_COMMISSION, 501, "fee")
    assert conn.execute("SELECT COUNT(*) FROM postings").fetchone()[0] == before
    assert run_read(conn, ledger.user_balances, uid)["available"] == 500


def test_unbalanced_transaction_is_refused(conn):
    uid = make_user(conn, "a@example.com")
    with pytest.raises(ledger.LedgerError):
        run_tx(conn, ledger.post, "bad", [(CHAIN_DEPOSITS, -5), (user_account(uid), 4)])
    with pytest.raises(ledger.LedgerError):
        run_tx(conn, ledger.post, "bad", [(CHAIN_DEPOSITS, -5.0), (user_account(uid), 5.0)])


def test_post_outside_a_transaction_is_refused(conn):
    uid = make_user(conn, "a@example.com")
    with pytest.raises(ledger.LedgerError):
        ledger.transfer(conn, CHAIN_DEPOSITS, user_account(uid), 1, "deposit")


def test_replayed_key_returns_first_result_and_moves_nothing(conn):
    uid = make_user(conn, "a@example.com")
    first = deposit(conn, uid, 700, key="tx:abc:0")
    again = deposit(conn, uid, 999, key="tx:abc:0")
    assert not first.replayed and again.replayed
    assert again.tx_id == first.tx_id
    assert run_read(conn, ledger.user_balances, uid)["available"] == 700


def test_postings_cannot_be_updated_or_deleted(conn):
    uid = make_user(conn, "a@example.com")
    deposit(conn, uid, 100)
    with pytest.raises(sqlite3.IntegrityError, match="immutable"):
        conn.execute("UPDATE postings SET amount_musdt = 1")
    with pytest.raises(sqlite3.IntegrityError, match="immutable"):
        conn.execute("DELETE FROM postings")
    with pytest.raises(sqlite3.IntegrityError, match="immutable"):
        conn.execute("DELETE FROM ledger_tx")


def test_user_balance_check_constraint_backs_up_the_code(conn):
    uid = make_user(conn, "a@example.com")
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(
            "UPDATE accounts SET balance_musdt = -1 WHERE name = ?", (user_account(uid),)
        )


def test_reserve_settle_release(conn):
    buyer = make_user(conn, "b@example.com")
    seller = make_user(conn, "s@example.com")
    deposit(conn, buyer, 100_000)
    run_tx(conn, ledger.reserve, buyer, 60_000, "call.hold", idem_key="call:1:hold:0")
    assert run_read(conn, ledger.user_balances, buyer) == {
        "available": 40_000, "held": 60_000, "pending": 0}
    run_tx(conn, ledger.settle, buyer,
           [(user_account(seller), 45_000), (REVENUE_COMMISSION, 15_000 - 5_000)],
           "call.settle", idem_key="call:1:settle:0")
    run_tx(conn, ledger.release, buyer, 5_000, "call.release", idem_key="call:1:release")
    assert run_read(conn, ledger.user_balances, buyer) == {
        "available": 45_000, "held": 0, "pending": 0}
    assert run_read(conn, ledger.user_balances, seller)["available"] == 45_000
    with pytest.raises(InsufficientFunds):
        run_tx(conn, ledger.release, buyer, 1, "call.release")
    assert run_read(conn, ledger.audit).ok


def test_audit_detects_a_tampered_cached_balance(conn):
    uid = make_user(conn, "a@example.com")
    deposit(conn, uid, 100)
    conn.execute("UPDATE accounts SET balance_musdt = 99 WHERE name = ?", (user_account(uid),))
    report = run_read(conn, ledger.audit)
    assert not report.ok
    assert report.cached_mismatches == [
        {"account": user_account(uid), "cached_musdt": 99, "recomputed_musdt": 100}]


def test_user_entries_show_running_balance_newest_first(conn):
    uid = make_user(conn, "a@example.com")
    deposit(conn, uid, 100)
    deposit(conn, uid, 50)
    run_tx(conn, ledger.transfer, user_account(uid), REVENUE_COMMISSION, 30, "fee")
    entries = run_read(conn, ledger.user_entries, uid)
    assert [(e["amount_musdt"], e["balance_after_musdt"]) for e in entries] == [
        (-30, 120), (50, 150), (100, 100)]


async def test_concurrent_debits_never_overdraw(tmp_path):
    db = Database(tmp_path / "race.sqlite3")
    await db.open()
    try:
        uid = await db.tx(accounts.insert_user, "r@example.com", "x", "buyer", "r")
        await db.tx(ledger.transfer, CHAIN_DEPOSITS, user_account(uid.id), 1_000, "deposit")

        async def debit(i: int) -> bool:
            try:
                await db.tx(ledger.transfer, user_account(uid.id), REVENUE_COMMISSION, 70,
                            "spend", idem_key=f"spend:{i}")
                return True
            except InsufficientFunds:
                return False

        results = await asyncio.gather(*(debit(i) for i in range(50)))
        assert sum(results) == 1_000 // 70
        assert (await db.read(ledger.user_balances, uid.id))["available"] == 1_000 % 70
        assert (await db.read(ledger.audit)).ok
    finally:
        await db.close()


def test_concurrent_debits_from_two_processes_never_overdraw(tmp_path):
    """Two connections (as the server and a CLI would be) racing on one account."""
    import threading

    path = tmp_path / "two.sqlite3"
    setup = new_db(path)
    uid = make_user(setup, "t@example.com")
    deposit(setup, uid, 10_000)
    ok = []

    def worker(n: int) -> None:
        c = connect_sync(path)
        for i in range(40):
            try:
                run_tx(c, ledger.transfer, user_account(uid), REVENUE_COMMISSION, 100, "spend",
                       idem_key=f"w{n}:{i}")
                ok.append(1)
            except InsufficientFunds:
                pass
        c.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ok) == 100
    assert run_read(setup, ledger.user_balances, uid)["available"] == 0
    assert run_read(setup, ledger.audit).ok


class LedgerMachine(RuleBasedStateMachine):
    """Random transfers, holds, settles, releases and replays keep the ledger's invariants."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.TemporaryDirectory()
        self.conn = new_db(Path(self.dir.name) / "prop.sqlite3")
        self.users = [make_user(self.conn, f"p{i}@example.com") for i in range(3)]
        self.keys: list[str] = []
        self.n = 0

    def teardown(self) -> None:
        self.conn.close()
        self.dir.cleanup()

    def _try(self, fn, *args, **kw) -> None:
        self.n += 1
        key = f"k{self.n}"
        try:
            run_tx(self.conn, fn, *args, idem_key=key, **kw)
        except InsufficientFunds:
            # Nothing was written, so the key is free: a retry after funding may succeed.
            assert self.conn.execute(
                "SELECT COUNT(*) FROM ledger_tx WHERE idem_key = ?", (key,)).fetchone()[0] == 0
            return
        self.keys.append(key)

    users_idx = st.integers(0, 2)
    amounts = st.integers(0, 5_000_000)

    @rule(u=users_idx, amount=amounts)
    def deposit(self, u, amount):
        self._try(ledger.transfer, CHAIN_DEPOSITS, user_account(self.users[u]), amount, "deposit")

    @rule(a=users_idx, b=users_idx, amount=amounts)
    def pay(self, a, b, amount):
        self._try(ledger.transfer, user_account(self.users[a]), user_account(self.users[b]),
                  amount, "pay")

    @rule(u=users_idx, amount=amounts)
    def hold(self, u, amount):
        self._try(ledger.reserve, self.users[u], amount, "hold")

    @rule(u=users_idx, amount=amounts)
    def release(self, u, amount):
        self._try(ledger.release, self.users[u], amount, "release")

    @rule(u=users_idx, s=users_idx, amount=amounts, pct=st.integers(0, 100))
    def settle(self, u, s, amount, pct):
        commission = amount * pct // 100
        self._try(ledger.settle, self.users[u],
                  [(user_account(self.users[s]), amount - commission),
                   (REVENUE_COMMISSION, commission)], "settle")

    @rule(data=st.data())
    def replay(self, data):
        if not self.keys:
            return
        key = data.draw(st.sampled_from(self.keys))
        before = self.conn.execute("SELECT COUNT(*), SUM(ABS(balance_musdt)) FROM accounts"
                                   ).fetchone()
        postings = self.conn.execute("SELECT COUNT(*) FROM postings").fetchone()[0]
        u = self.users[0]
        run_tx(self.conn, ledger.transfer, CHAIN_DEPOSITS, user_account(u), 123, "deposit",
               idem_key=key)
        assert self.conn.execute("SELECT COUNT(*) FROM postings").fetchone()[0] == postings
        assert self.conn.execute("SELECT COUNT(*), SUM(ABS(balance_musdt)) FROM accounts"
                                 ).fetchone() == before

    @invariant()
    def ledger_adds_up(self):
        report = run_read(self.conn, ledger.audit)
        assert report.ok, report
        assert report.sum_of_all_postings_musdt == 0
        neg = self.conn.execute(
            "SELECT COUNT(*) FROM accounts WHERE name LIKE 'user:%' AND balance_musdt < 0"
        ).fetchone()[0]
        assert neg == 0


TestLedgerProperties = LedgerMachine.TestCase
TestLedgerProperties.settings = settings(
    max_examples=40, stateful_step_count=25, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


# ---- post_many: many transactions at once, with the checks of post --------------------------

def ids(conn, *names: str) -> list[int]:
    return [run_tx(conn, ledger.account_id, n) for n in names]


def test_post_many_writes_every_transaction_and_the_balances(conn):
    a, b = make_user(conn, "a@example.com"), make_user(conn, "b@example.com")
    deposit(conn, a, 1_000)
    avail_a, avail_b, held_a, fees = ids(conn, user_account(a), user_account(b),
                                         user_account(a, "held"), REVENUE_COMMISSION)
    written = run_tx(conn, ledger.post_many, [
        ("hold", "k:1", "call:1", {avail_a: -600, held_a: 600}),
        ("settle", "k:2", "call:1", {held_a: -600, avail_b: 450, fees: 150, avail_a: 0}),
        ("tip", None, None, {avail_a: -400, avail_b: 400}),
    ], at_ms=123)
    assert len(written) == 3
    assert run_read(conn, ledger.user_balances, a) == {"available": 0, "held": 0, "pending": 0}
    assert run_read(conn, ledger.user_balances, b)["available"] == 850
    assert run_read(conn, ledger.balance, REVENUE_COMMISSION) == 150
    rows = conn.execute("SELECT id, idem_key, kind, ref, created_at_ms FROM ledger_tx"
                        " WHERE id >= ? ORDER BY id", (written[0],)).fetchall()
    assert [tuple(r) for r in rows] == [
        (written[0], "k:1", "hold", "call:1", 123), (written[1], "k:2", "settle", "call:1", 123),
        (written[2], None, "tip", None, 123)]
    # Zero amounts are no postings; the others are in the order given.
    assert conn.execute("SELECT COUNT(*) FROM postings WHERE tx_id = ?",
                        (written[1],)).fetchone()[0] == 3
    assert run_read(conn, ledger.audit).ok


def test_post_many_refuses_unbalanced_or_non_integer_postings_and_writes_nothing(conn):
    a = make_user(conn, "a@example.com")
    deposit(conn, a, 1_000)
    (avail, held) = ids(conn, user_account(a), user_account(a, "held"))
    before = conn.execute("SELECT COUNT(*) FROM ledger_tx").fetchone()[0]
    for bad in ({avail: -5, held: 4}, {avail: -5.0, held: 5.0}, {avail: True, held: -1}):
        with pytest.raises(ledger.LedgerError):
            run_tx(conn, ledger.post_many, [("ok", "k:ok", None, {avail: -1, held: 1}),
                                            ("bad", "k:bad", None, bad)])
    with pytest.raises(ledger.LedgerError, match="twice"):
        run_tx(conn, ledger.post_many, [("a", "k:1", None, {avail: -1, held: 1}),
                                        ("b", "k:1", None, {avail: -1, held: 1})])
    for moves in ({avail: -1, 999_999: 1}, {999_999: -1, avail: 1}):
        # Found before writing when the account goes down, else by the database (the
        # transaction of Database.tx or run_tx rolls back).
        with pytest.raises(ledger.LedgerError, match="no account"):
            run_tx(conn, ledger.post_many, [("a", "k:1", None, moves)])
    with pytest.raises(ledger.LedgerError, match="inside a transaction"):
        ledger.post_many(conn, [("a", None, None, {avail: -1, held: 1})])
    assert conn.execute("SELECT COUNT(*) FROM ledger_tx").fetchone()[0] == before
    assert run_read(conn, ledger.user_balances, a)["available"] == 1_000


def test_post_many_never_takes_a_balance_below_zero_at_any_point(conn):
    a, b = make_user(conn, "a@example.com"), make_user(conn, "b@example.com")
    deposit(conn, a, 100)
    avail_a, avail_b = ids(conn, user_account(a), user_account(b))
    # Overdrawn at the end.
    with pytest.raises(InsufficientFunds, match="available"):
        run_tx(conn, ledger.post_many, [("x", "k:1", None, {avail_a: -60, avail_b: 60}),
                                        ("x", "k:2", None, {avail_a: -60, avail_b: 60})])
    # Back above zero at the end, but below it in between: post would refuse the first.
    with pytest.raises(InsufficientFunds):
        run_tx(conn, ledger.post_many, [("x", "k:1", None, {avail_a: -150, avail_b: 150}),
                                        ("x", "k:2", None, {avail_a: 100, avail_b: -100})])
    assert run_read(conn, ledger.user_balances, a)["available"] == 100
    assert conn.execute("SELECT COUNT(*) FROM ledger_tx WHERE idem_key LIKE 'k:%'"
                        ).fetchone()[0] == 0
    # Received first, then spent: fine, as it would be one by one.
    deposit(conn, b, 100)
    run_tx(conn, ledger.post_many, [("x", "k:1", None, {avail_b: -100, avail_a: 100}),
                                    ("x", "k:2", None, {avail_a: -150, avail_b: 150})])
    assert run_read(conn, ledger.user_balances, a)["available"] == 50
    # Platform chain accounts may go below zero.
    chain = run_tx(conn, ledger.account_id, CHAIN_DEPOSITS)
    run_tx(conn, ledger.post_many, [("deposit", None, None, {chain: -7, avail_b: 7})])
    assert run_read(conn, ledger.audit).ok


def test_post_many_reports_taken_keys_and_moves_nothing(conn):
    a, b = make_user(conn, "a@example.com"), make_user(conn, "b@example.com")
    deposit(conn, a, 1_000, key="deposit:1")
    avail_a, avail_b = ids(conn, user_account(a), user_account(b))
    run_tx(conn, ledger.post_many, [("pay", "pay:1", None, {avail_a: -10, avail_b: 10})])
    postings = conn.execute("SELECT COUNT(*) FROM postings").fetchone()[0]
    with pytest.raises(ledger.KeysTaken) as taken:
        run_tx(conn, ledger.post_many, [("pay", "pay:2", None, {avail_a: -10, avail_b: 10}),
                                        ("pay", "pay:1", None, {avail_a: -10, avail_b: 10}),
                                        ("pay", "deposit:1", None, {avail_a: -1, avail_b: 1})])
    assert taken.value.keys == {"pay:1", "deposit:1"}
    assert conn.execute("SELECT COUNT(*) FROM postings").fetchone()[0] == postings
    assert conn.execute("SELECT COUNT(*) FROM ledger_tx WHERE idem_key = 'pay:2'"
                        ).fetchone()[0] == 0
    assert run_read(conn, ledger.user_balances, a)["available"] == 990
    # The caller drops what the taken keys stand for and posts the rest.
    run_tx(conn, ledger.post_many, [("pay", "pay:2", None, {avail_a: -10, avail_b: 10})])
    assert run_read(conn, ledger.user_balances, a)["available"] == 980
    assert run_read(conn, ledger.audit).ok


def test_post_many_inside_a_larger_transaction_keeps_what_came_before(conn):
    """A refused bulk rolls back only itself (a savepoint), not the caller's other writes."""
    a, b = make_user(conn, "a@example.com"), make_user(conn, "b@example.com")
    deposit(conn, a, 100)
    avail_a, avail_b = ids(conn, user_account(a), user_account(b))

    def both(c):
        ledger.transfer(c, user_account(a), user_account(b), 30, "pay", idem_key="pay:1")
        with pytest.raises(InsufficientFunds):
            ledger.post_many(c, [("x", "k:1", None, {avail_a: -71, avail_b: 71})])
        ledger.post_many(c, [("x", "k:2", None, {avail_a: -70, avail_b: 70})])

    run_tx(conn, both)
    assert run_read(conn, ledger.user_balances, b)["available"] == 100
    assert run_read(conn, ledger.audit).ok


# ---- the ledger is the only writer of ledger_tx, postings and balances -----------------------

LEDGER_TABLES = r"(ledger_tx|postings|accounts)"
WRITES_LEDGER = re.compile(
    rf"\b(?:insert|replace)\s+(?:or\s+\w+\s+)?into\s+(?:main\.|temp\.)?{LEDGER_TABLES}\b"
    rf"|\bupdate\s+(?:or\s+\w+\s+)?(?:main\.)?{LEDGER_TABLES}\b"
    rf"|\bdelete\s+from\s+(?:main\.)?{LEDGER_TABLES}\b",
    re.IGNORECASE)
SOURCE_ROOT = Path(__file__).resolve().parent.parent
THE_LEDGER = SOURCE_ROOT / "server" / "money" / "ledger.py"


def sql_writes_of_ledger_tables(source: str) -> list[str]:
    """Every string constant of a module (f-string parts included) that writes the ledger's
    tables, and any such SQL in the source text itself (strings split over lines)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found += [m.group(0) for m in WRITES_LEDGER.finditer(node.value)]
    joined = re.sub(r"[\"']\s*[\"']", "", source)  # "INSERT INTO " "postings"
    found += [m.group(0) for m in WRITES_LEDGER.finditer(joined)]
    return found


def test_the_checker_sees_writes_of_the_ledger_tables():
    assert sql_writes_of_ledger_tables('x = "INSERT OR IGNORE INTO ledger_tx (id) VALUES (1)"')
    assert sql_writes_of_ledger_tables('c.execute(f"update accounts SET b = {x}")')
    assert sql_writes_of_ledger_tables('q = ("INSERT INTO "\n     "postings VALUES (?)")')
    assert sql_writes_of_ledger_tables('q = "DELETE FROM postings"')
    assert not sql_writes_of_ledger_tables('q = "SELECT * FROM postings JOIN accounts"')
    assert not sql_writes_of_ledger_tables('q = "UPDATE calls SET held_musdt = 0"')


def test_only_the_ledger_writes_ledger_tx_postings_and_balances():
    writers = []
    for folder in ("server", "chain", "tools"):
        for path in sorted((SOURCE_ROOT / folder).rglob("*.py")):
            if path == THE_LEDGER:
                continue
            for sql in sql_writes_of_ledger_tables(path.read_text()):
                writers.append(f"{path.relative_to(SOURCE_ROOT)}: {sql}")
    assert not writers, "move tokens through meterchat.money.ledger:\n" + "\n".join(writers)
