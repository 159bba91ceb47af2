"""The double-entry ledger: accounts, transactions of postings that sum to zero, holds, and
the audit that recomputes every balance.

Every function here is synchronous and takes a sqlite3 connection that is already inside a
BEGIN IMMEDIATE transaction (run it through `Database.tx`), so a money change is one hop onto
the database thread and atomic with whatever else the caller writes.

Amounts are integer µUSDT. Postings are never updated or deleted (triggers enforce it); a
correction is a new transaction. A transaction with an idempotency key that was seen before
returns the first transaction and moves nothing.

This module is the only code that writes `ledger_tx`, `postings` and the balances of
`accounts` (tests/test_ledger.py checks the source): `post` writes one transaction,
`post_many` many at once with the same checks (the billing pass, thousands per pass).
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from meterchat.core.db import now_ms
from meterchat.core.errors import PaymentRequired

# Platform accounts (DESIGN.md "Money").
CHAIN_DEPOSITS = "chain:deposits"
CHAIN_WITHDRAWALS = "chain:withdrawals"
REVENUE_COMMISSION = "revenue:commission"
REVENUE_WITHDRAWAL_FEES = "revenue:withdrawal_fees"
CLEARING_WITHDRAWALS = "clearing:withdrawals"
PROMO_BONUSES = "promo:bonuses"

USER_BUCKETS = ("available", "held", "pending")


class LedgerError(Exception):
    """A transaction that breaks the ledger's rules (programming error, never user input)."""


class InsufficientFunds(PaymentRequired):
    code = "insufficient_funds"


class KeysTaken(Exception):
    """`post_many` wrote nothing: these idempotency keys are already in the ledger (what they
    stand for was applied before). The caller drops what they belong to and posts the rest."""

    def __init__(self, keys: frozenset[str]) -> None:
        super().__init__(f"idempotency keys already in the ledger: {sorted(keys)[:5]}")
        self.keys = keys


def user_account(user_id: int, bucket: str = "available") -> str:
    if bucket not in USER_BUCKETS:
        raise LedgerError(f"unknown user bucket {bucket}")
    return f"user:{user_id}:{bucket}"


def may_go_negative(name: str) -> bool:
    return name.startswith("chain:") or name.startswith("promo:")


@dataclass(frozen=True)
class Posting:
    account: str
    amount_musdt: int


@dataclass(frozen=True)
class TxResult:
    tx_id: int
    replayed: bool
    postings: tuple[Posting, ...] = field(default=())


def create_user_accounts(conn: sqlite3.Connection, user_id: int) -> None:
    conn.executemany(
        "INSERT OR IGNORE INTO accounts (name, user_id, may_go_negative) VALUES (?, ?, 0)",
        [(user_account(user_id, b), user_id) for b in USER_BUCKETS],
    )


def _account_row(conn: sqlite3.Connection, name: str) -> tuple[int, int, int]:
    """(id, balance, may_go_negative); platform accounts are created on first use."""
    found = conn.execute(
        "SELECT id, balance_musdt, may_go_negative FROM accounts WHERE name = ?", (name,)
    ).fetchone()
    if found is not None:
        acc_id, balance_musdt, neg = found
        return int(acc_id), int(balance_musdt), int(neg)
    if name.startswith("user:"):
        raise LedgerError(f"no such account {name}")
    neg = 1 if may_go_negative(name) else 0
    cur = conn.execute(
        "INSERT INTO accounts (name, may_go_negative) VALUES (?, ?)", (name, neg)
    )
    return _rowid(cur), 0, neg


def account_id(conn: sqlite3.Connection, name: str) -> int:
    """The id of an account by name (a platform account is created on first use)."""
    acc_id, _, _ = _account_row(conn, name)
    return acc_id


def _rowid(cur: sqlite3.Cursor) -> int:
    if cur.lastrowid is None:
        raise LedgerError("insert without a row id")
    return cur.lastrowid


def _check_amount(account: object, amount: object) -> None:
    if type(amount) is not int:  # bool and float are not µUSDT
        raise LedgerError(f"amount for {account} is not an integer of µUSDT")


def find_tx(conn: sqlite3.Connection, idem_key: str) -> TxResult | None:
    found = conn.execute("SELECT id FROM ledger_tx WHERE idem_key = ?", (idem_key,)).fetchone()
    if found is None:
        return None
    (tx_id,) = found
    postings = conn.execute(
        "SELECT a.name, p.amount_musdt FROM postings p JOIN accounts a ON a.id = p.account_id"
        " WHERE p.tx_id = ? ORDER BY p.id",
        (tx_id,),
    ).fetchall()
    return TxResult(tx_id, True, tuple(Posting(n, a) for n, a in postings))


def post(
    conn: sqlite3.Connection,
    kind: str,
    postings: Iterable[Posting | tuple[str, int]],
    *,
    idem_key: str | None = None,
    ref: str | None = None,
    at_ms: int | None = None,
) -> TxResult:
    """Write one balanced transaction. Raises InsufficientFunds (and writes nothing) when a
    user account would go below zero. A seen idem_key returns the first transaction."""
    if not conn.in_transaction:
        raise LedgerError("ledger.post must run inside a transaction (Database.tx)")
    if idem_key is not None:
        seen = find_tx(conn, idem_key)
        if seen is not None:
            return seen
    items = [p if isinstance(p, Posting) else Posting(*p) for p in postings]
    for p in items:
        _check_amount(p.account, p.amount_musdt)
    if sum(p.amount_musdt for p in items) != 0:
        raise LedgerError(f"postings of {kind} do not sum to zero: {items}")
    by_account: dict[str, int] = defaultdict(int)
    for p in items:
        by_account[p.account] += p.amount_musdt
    moves = {name: amt for name, amt in by_account.items() if amt != 0}
    # Check every account before writing anything.
    rows: dict[str, tuple[int, int]] = {}
    for name, delta in moves.items():
        acc_id, balance, neg = _account_row(conn, name)
        if not neg and balance + delta < 0:
            raise InsufficientFunds(
                f"not enough tokens: {name.split(':')[-1]} balance is too low for this"
            )
        rows[name] = (acc_id, delta)
    cur = conn.execute(
        "INSERT INTO ledger_tx (idem_key, kind, ref, created_at_ms) VALUES (?, ?, ?, ?)",
        (idem_key, kind, ref, at_ms if at_ms is not None else now_ms()),
    )
    tx_id = _rowid(cur)
    conn.executemany(
        "INSERT INTO postings (tx_id, account_id, amount_musdt) VALUES (?, ?, ?)",
        [(tx_id, acc_id, delta) for acc_id, delta in rows.values()],
    )
    conn.executemany(
        "UPDATE accounts SET balance_musdt = balance_musdt + ? WHERE id = ?",
        [(delta, acc_id) for acc_id, delta in rows.values()],
    )
    return TxResult(tx_id, False, tuple(Posting(n, d) for n, d in moves.items()))


# One transaction of a bulk posting: (kind, idempotency key, ref, {account id: amount}).
# Accounts by id (the billing pass has them on the call's row; `account_id` finds one by
# name); two postings to one account are one amount.
BulkTx = tuple[str, str | None, str | None, Mapping[int, int]]

_INSERT_TX_IGNORING_TAKEN_KEYS = (
    "INSERT OR IGNORE INTO ledger_tx (id, idem_key, kind, ref, created_at_ms)"
    " VALUES (?, ?, ?, ?, ?)")


def post_many(conn: sqlite3.Connection, txs: Sequence[BulkTx], *,
              at_ms: int | None = None) -> range:
    """Write many balanced transactions at once, in order, with the checks of `post`: every
    transaction's postings sum to zero in integer µUSDT, no account but chain:* and promo:*
    goes below zero at any point of the sequence, a taken idempotency key moves nothing.
    Returns the ids of the transactions written (consecutive, in the order given).

    All or nothing: raises KeysTaken when some keys are already in the ledger,
    InsufficientFunds when an account would go below zero, LedgerError for a malformed
    transaction; in each case nothing was written. (A posting to an account id that does
    not exist raises LedgerError too, after writing: run it in Database.tx, which rolls
    back.) Set-based for the billing pass: one statement per table, one balance update per
    account, the balances read first only of the accounts that go down."""
    if not conn.in_transaction:
        raise LedgerError("ledger.post_many must run inside a transaction (Database.tx)")
    if not txs:
        return range(0)
    created = at_ms if at_ms is not None else now_ms()
    (next_id,) = conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM ledger_tx").fetchone()
    first = int(next_id)
    tx_rows: list[tuple[int, str | None, str, str | None, int]] = []
    postings: list[tuple[int, int, int]] = []
    running: dict[int, int] = {}  # account -> sum of its amounts so far
    lowest: dict[int, int] = {}  # account -> its lowest running sum, where below zero
    add_posting = postings.append
    tx_id = first
    for kind, idem_key, ref, moves in txs:
        total = 0
        for acct, amount in moves.items():
            if type(amount) is not int:
                _check_amount(acct, amount)
            if not amount:
                continue
            add_posting((tx_id, acct, amount))
            total += amount
            run = running.get(acct, 0) + amount
            running[acct] = run
            if run < 0 and run < lowest.get(acct, 0):
                lowest[acct] = run
        if total:
            raise LedgerError(f"postings of {kind} ({idem_key}) do not sum to zero: {moves}")
        tx_rows.append((tx_id, idem_key, kind, ref, created))
        tx_id += 1
    _check_lowest_points(conn, lowest)
    # The idempotency check, folded into the insert: a separate lookup of every key cost a
    # tenth of a 10,000-call billing pass. Only this insert is under the savepoint: pages
    # changed under one are copied to a statement journal first.
    conn.execute("SAVEPOINT ledger_post_many")
    try:
        inserted = conn.executemany(_INSERT_TX_IGNORING_TAKEN_KEYS, tx_rows).rowcount
        if inserted != len(tx_rows):
            conn.execute("ROLLBACK TO ledger_post_many")
            raise KeysTaken(_taken(conn, [k for _, k, _, _, _ in tx_rows if k is not None]))
    finally:
        conn.execute("RELEASE ledger_post_many")
    try:
        conn.executemany(
            "INSERT INTO postings (tx_id, account_id, amount_musdt) VALUES (?, ?, ?)", postings)
        # One UPDATE per account (the balance CHECK of `accounts` backs up the check above);
        # measured faster here than a temp table joined by UPDATE ... FROM.
        updates = [(net, acct) for acct, net in running.items() if net]
        moved = conn.executemany(
            "UPDATE accounts SET balance_musdt = balance_musdt + ? WHERE id = ?",
            updates).rowcount
    except sqlite3.IntegrityError as e:
        raise LedgerError(f"a posting of post_many names no account ({e})") from None
    if moved != len(updates):
        raise LedgerError("a posting of post_many names no account")
    return range(first, tx_id)


def _check_lowest_points(conn: sqlite3.Connection, lowest: dict[int, int]) -> None:
    """Raise InsufficientFunds if an account that may not go below zero would, at its lowest
    point of a bulk (one read of the accounts that go down)."""
    if not lowest:
        return
    cur = conn.cursor()
    cur.row_factory = None  # plain tuples: 10,000 of them in a billing pass
    found = 0
    for acct, balance_musdt, neg in cur.execute(
            "SELECT id, balance_musdt, may_go_negative FROM accounts"
            " WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(list(lowest)),)):
        found += 1
        if not neg and balance_musdt + lowest[acct] < 0:
            (name,) = conn.execute("SELECT name FROM accounts WHERE id = ?", (acct,)).fetchone()
            raise InsufficientFunds(
                f"not enough tokens: {str(name).split(':')[-1]} balance is too low for this")
    if found != len(lowest):
        raise LedgerError("a posting of post_many names no account")


def _taken(conn: sqlite3.Connection, keys: list[str]) -> frozenset[str]:
    """The keys of a refused bulk that are already in the ledger."""
    if len(set(keys)) != len(keys):
        raise LedgerError("post_many was given one idempotency key twice")
    taken = frozenset(k for (k,) in conn.execute(
        "SELECT idem_key FROM ledger_tx WHERE idem_key IN (SELECT value FROM json_each(?))",
        (json.dumps(keys),)))
    if not taken:
        raise LedgerError("post_many: a transaction was refused, and not for its key")
    return taken


def transfer(
    conn: sqlite3.Connection,
    src: str,
    dst: str,
    amount_musdt: int,
    kind: str,
    *,
    idem_key: str | None = None,
    ref: str | None = None,
) -> TxResult:
    if amount_musdt < 0:
        raise LedgerError("transfer amount must not be negative")
    return post(conn, kind, [(src, -amount_musdt), (dst, amount_musdt)], idem_key=idem_key, ref=ref)


def reserve(conn: sqlite3.Connection, user_id: int, amount_musdt: int, kind: str, *,
            idem_key: str | None = None, ref: str | None = None) -> TxResult:
    """Hold: available -> held. Raises InsufficientFunds if available is short."""
    return transfer(
        conn, user_account(user_id), user_account(user_id, "held"), amount_musdt, kind,
        idem_key=idem_key, ref=ref,
    )


def release(conn: sqlite3.Connection, user_id: int, amount_musdt: int, kind: str, *,
            idem_key: str | None = None, ref: str | None = None) -> TxResult:
    """Give back a hold: held -> available."""
    return transfer(
        conn, user_account(user_id, "held"), user_account(user_id), amount_musdt, kind,
        idem_key=idem_key, ref=ref,
    )


def settle(
    conn: sqlite3.Connection,
    user_id: int,
    splits: Iterable[tuple[str, int]],
    kind: str,
    *,
    idem_key: str | None = None,
    ref: str | None = None,
) -> TxResult:
    """Pay out of a hold: held -> each (account, amount) of splits."""
    paid = [(a, amt) for a, amt in splits if amt]
    total = sum(amt for _, amt in paid)
    if any(amt < 0 for _, amt in paid):
        raise LedgerError("settle splits must not be negative")
    return post(
        conn,
        kind,
        [(user_account(user_id, "held"), -total), *paid],
        idem_key=idem_key,
        ref=ref,
    )


def balance(conn: sqlite3.Connection, name: str) -> int:
    found = conn.execute(
        "SELECT balance_musdt FROM accounts WHERE name = ?", (name,)).fetchone()
    return int(found[0]) if found else 0


def user_balances(conn: sqlite3.Connection, user_id: int) -> dict[str, int]:
    rows = conn.execute(
        "SELECT name, balance_musdt FROM accounts WHERE user_id = ?", (user_id,)
    ).fetchall()
    out = dict.fromkeys(USER_BUCKETS, 0)
    for name, bal in rows:
        out[name.rsplit(":", 1)[1]] = bal
    return out


def user_entries(conn: sqlite3.Connection, user_id: int,
                 limit: int = 200) -> list[dict[str, Any]]:
    """A user's ledger lines, newest first: one line per (transaction, bucket), with the
    bucket's balance after it (a running sum over that account's postings)."""
    rows = conn.execute(
        """
        SELECT * FROM (
            SELECT p.id, t.created_at_ms, t.kind, t.ref, a.name, p.amount_musdt,
                   SUM(p.amount_musdt) OVER (PARTITION BY p.account_id ORDER BY p.id)
                       AS balance_after
            FROM postings p
            JOIN accounts a ON a.id = p.account_id
            JOIN ledger_tx t ON t.id = p.tx_id
            WHERE a.user_id = ?
        ) ORDER BY id DESC LIMIT ?
        """,
        (user_id, limit),
    ).fetchall()
    return [
        {
            "id": posting_id,
            "at_ms": at_ms,
            "kind": kind,
            "ref": ref,
            "bucket": name.rsplit(":", 1)[1],
            "amount_musdt": amount,
            "balance_after_musdt": after,
        }
        for posting_id, at_ms, kind, ref, name, amount, after in rows
    ]


@dataclass
class AuditReport:
    ok: bool
    accounts: int
    transactions: int
    postings: int
    sum_of_all_postings_musdt: int
    unbalanced_transactions: list[int]
    cached_mismatches: list[dict[str, Any]]
    negative_accounts: list[str]
    users_total_musdt: int
    deposits_in_musdt: int
    withdrawals_out_musdt: int
    revenue_musdt: int
    clearing_musdt: int
    promo_given_musdt: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def audit(conn: sqlite3.Connection) -> AuditReport:
    """Recompute every balance from postings and check the ledger's invariants."""
    recomputed: dict[str, int] = dict(
        conn.execute(
            "SELECT a.name, COALESCE(SUM(p.amount_musdt), 0) FROM accounts a"
            " LEFT JOIN postings p ON p.account_id = a.id GROUP BY a.id"
        ).fetchall()
    )
    cached: dict[str, int] = dict(
        conn.execute("SELECT name, balance_musdt FROM accounts").fetchall())
    mismatches = [
        {"account": n, "cached_musdt": cached[n], "recomputed_musdt": recomputed.get(n, 0)}
        for n in cached
        if cached[n] != recomputed.get(n, 0)
    ]
    unbalanced = [
        tx_id
        for (tx_id,) in conn.execute(
            "SELECT tx_id FROM postings GROUP BY tx_id HAVING SUM(amount_musdt) <> 0"
        )
    ]
    negative = [
        n for n, bal in recomputed.items() if bal < 0 and not may_go_negative(n)
    ]
    (total,) = conn.execute("SELECT COALESCE(SUM(amount_musdt), 0) FROM postings").fetchone()
    (n_tx,) = conn.execute("SELECT COUNT(*) FROM ledger_tx").fetchone()
    (n_postings,) = conn.execute("SELECT COUNT(*) FROM postings").fetchone()

    def total_of(prefix: str) -> int:
        return sum(b for n, b in recomputed.items() if n.startswith(prefix))

    report = AuditReport(
        ok=not mismatches and not unbalanced and not negative and total == 0,
        accounts=len(recomputed),
        transactions=n_tx,
        postings=n_postings,
        sum_of_all_postings_musdt=total,
        unbalanced_transactions=unbalanced,
        cached_mismatches=mismatches,
        negative_accounts=negative,
        users_total_musdt=total_of("user:"),
        deposits_in_musdt=-recomputed.get(CHAIN_DEPOSITS, 0),
        withdrawals_out_musdt=recomputed.get(CHAIN_WITHDRAWALS, 0),
        revenue_musdt=total_of("revenue:"),
        clearing_musdt=total_of("clearing:"),
        promo_given_musdt=-total_of("promo:"),
    )
    return report
