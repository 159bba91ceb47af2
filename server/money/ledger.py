"""The double-entry ledger: accounts, transactions of postings that sum to zero, holds, and
the audit that recomputes every balance.

Every function here is synchronous and takes a sqlite3 connection that is already inside a
BEGIN IMMEDIATE transaction (run it through `Database.tx`), so a money change is one hop onto
the database thread and atomic with whatever else the caller writes.

Amounts are integer µUSDT. Postings are never updated or deleted (triggers enforce it); a
correction is a new transaction. A transaction with an idempotency key that was seen before
returns the first transaction and moves nothing.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

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
    row = conn.execute(
        "SELECT id, balance_musdt, may_go_negative FROM accounts WHERE name = ?", (name,)
    ).fetchone()
    if row is not None:
        return row[0], row[1], row[2]
    if name.startswith("user:"):
        raise LedgerError(f"no such account {name}")
    neg = 1 if may_go_negative(name) else 0
    cur = conn.execute(
        "INSERT INTO accounts (name, may_go_negative) VALUES (?, ?)", (name, neg)
    )
    return cur.lastrowid, 0, neg


def find_tx(conn: sqlite3.Connection, idem_key: str) -> TxResult | None:
    row = conn.execute("SELECT id FROM ledger_tx WHERE idem_key = ?", (idem_key,)).fetchone()
    if row is None:
        return None
    postings = conn.execute(
        "SELECT a.name, p.amount_musdt FROM postings p JOIN accounts a ON a.id = p.account_id"
        " WHERE p.tx_id = ? ORDER BY p.id",
        (row[0],),
    ).fetchall()
    return TxResult(row[0], True, tuple(Posting(n, a) for n, a in postings))


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
        if not isinstance(p.amount_musdt, int) or isinstance(p.amount_musdt, bool):
            raise LedgerError(f"amount for {p.account} is not an integer of µUSDT")
    if sum(p.amount_musdt for p in items) != 0:
        raise LedgerError(f"postings of {kind} do not sum to zero: {items}")
    by_account: dict[str, int] = defaultdict(int)
    for p in items:
        by_account[p.account] += p.amount_musdt
    moves = {name: amt for name, amt in by_account.items() if amt != 0}
    # Check every account before writing anything.
    rows = {}
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
    tx_id = cur.lastrowid
    conn.executemany(
        "INSERT INTO postings (tx_id, account_id, amount_musdt) VALUES (?, ?, ?)",
        [(tx_id, acc_id, delta) for acc_id, delta in rows.values()],
    )
    conn.executemany(
        "UPDATE accounts SET balance_musdt = balance_musdt + ? WHERE id = ?",
        [(delta, acc_id) for acc_id, delta in rows.values()],
    )
    return TxResult(tx_id, False, tuple(Posting(n, d) for n, d in moves.items()))


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


def reserve(conn, user_id: int, amount_musdt: int, kind: str, *, idem_key=None, ref=None):
    """Hold: available -> held. Raises InsufficientFunds if available is short."""
    return transfer(
        conn, user_account(user_id), user_account(user_id, "held"), amount_musdt, kind,
        idem_key=idem_key, ref=ref,
    )


def release(conn, user_id: int, amount_musdt: int, kind: str, *, idem_key=None, ref=None):
    """Give back a hold: held -> available."""
    return transfer(
        conn, user_account(user_id, "held"), user_account(user_id), amount_musdt, kind,
        idem_key=idem_key, ref=ref,
    )


def settle(
    conn,
    user_id: int,
    splits: Iterable[tuple[str, int]],
    kind: str,
    *,
    idem_key=None,
    ref=None,
):
    """Pay out of a hold: held -> each (account, amount) of splits."""
    splits = [(a, amt) for a, amt in splits if amt]
    total = sum(amt for _, amt in splits)
    if any(amt < 0 for _, amt in splits):
        raise LedgerError("settle splits must not be negative")
    return post(
        conn,
        kind,
        [(user_account(user_id, "held"), -total), *splits],
        idem_key=idem_key,
        ref=ref,
    )


def balance(conn: sqlite3.Connection, name: str) -> int:
    row = conn.execute("SELECT balance_musdt FROM accounts WHERE name = ?", (name,)).fetchone()
    return row[0] if row else 0


def user_balances(conn: sqlite3.Connection, user_id: int) -> dict[str, int]:
    rows = conn.execute(
        "SELECT name, balance_musdt FROM accounts WHERE user_id = ?", (user_id,)
    ).fetchall()
    out = dict.fromkeys(USER_BUCKETS, 0)
    for name, bal in rows:
        out[name.rsplit(":", 1)[1]] = bal
    return out


def user_entries(conn: sqlite3.Connection, user_id: int, limit: int = 200) -> list[dict]:
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
            "id": r[0],
            "at_ms": r[1],
            "kind": r[2],
            "ref": r[3],
            "bucket": r[4].rsplit(":", 1)[1],
            "amount_musdt": r[5],
            "balance_after_musdt": r[6],
        }
        for r in rows
    ]


@dataclass
class AuditReport:
    ok: bool
    accounts: int
    transactions: int
    postings: int
    sum_of_all_postings_musdt: int
    unbalanced_transactions: list[int]
    cached_mismatches: list[dict]
    negative_accounts: list[str]
    users_total_musdt: int
    deposits_in_musdt: int
    withdrawals_out_musdt: int
    revenue_musdt: int
    clearing_musdt: int
    promo_given_musdt: int

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def audit(conn: sqlite3.Connection) -> AuditReport:
    """Recompute every balance from postings and check the ledger's invariants."""
    recomputed = dict(
        conn.execute(
            "SELECT a.name, COALESCE(SUM(p.amount_musdt), 0) FROM accounts a"
            " LEFT JOIN postings p ON p.account_id = a.id GROUP BY a.id"
        ).fetchall()
    )
    cached = dict(conn.execute("SELECT name, balance_musdt FROM accounts").fetchall())
    mismatches = [
        {"account": n, "cached_musdt": cached[n], "recomputed_musdt": recomputed.get(n, 0)}
        for n in cached
        if cached[n] != recomputed.get(n, 0)
    ]
    unbalanced = [
        r[0]
        for r in conn.execute(
            "SELECT tx_id FROM postings GROUP BY tx_id HAVING SUM(amount_musdt) <> 0"
        )
    ]
    negative = [
        n for n, bal in recomputed.items() if bal < 0 and not may_go_negative(n)
    ]
    total = conn.execute("SELECT COALESCE(SUM(amount_musdt), 0) FROM postings").fetchone()[0]
    n_tx = conn.execute("SELECT COUNT(*) FROM ledger_tx").fetchone()[0]
    n_postings = conn.execute("SELECT COUNT(*) FROM postings").fetchone()[0]

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
