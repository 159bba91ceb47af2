"""What the operator finds: users by id, email or display name (search_rules.py says how a
query matches), one user's whole picture (balances, calls, deposits, withdrawals, reports by
and about them, audit-log lines) and the list of calls, live now or recent. The SQL only:
rows read by name into the dataclasses below; finder_views.py makes the JSON.

Every list is bounded: the search and the calls list by their page, a user's lists by
USER_LIST_LIMIT each, newest first. One row more than asked is read to say whether more
exist."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, fields
from typing import Any

from meterchat.calls.store import CallRow
from meterchat.core.errors import NotFound
from meterchat.deposits import store as deposits
from meterchat.economy import bonuses
from meterchat.money.billing import ACTIVE_STATES, FINAL_STATES
from meterchat.operator import audit_log
from meterchat.operator.moderation import REPORT_CALL_SQL
from meterchat.operator.search_rules import LIKE_ESCAPE, UserQuery
from meterchat.withdrawals import store as withdrawals

USER_LIST_LIMIT = 20
CALLS_DEFAULT_LIMIT = 50
CALLS_MAX_LIMIT = 200
CALL_STATUSES = ("live", "recent")


@dataclass(frozen=True)
class UserHit:
    """A user as a search or a user's page shows them."""

    id: int
    email: str
    role: str
    display_name: str
    created_at_ms: int
    banned_at_ms: int | None
    ban_reason: str | None
    withdrawals_blocked: bool
    email_verified: bool
    two_factor: bool
    available_musdt: int
    held_musdt: int
    pending_musdt: int
    matched: str  # id | email | email_prefix | display_name (a search), "" (a user's page)


@dataclass(frozen=True)
class Party:
    id: int
    display_name: str
    email: str


@dataclass(frozen=True)
class ListedCall:
    """A call with the names of its two parties."""

    call: CallRow
    buyer: Party
    seller: Party


@dataclass(frozen=True)
class ReportRow:
    id: int
    reporter: Party
    reported: Party
    reason: str | None
    created_at_ms: int
    closed_at_ms: int | None
    outcome: str | None
    call_id: int | None


@dataclass(frozen=True)
class UserPage:
    user: UserHit
    bonus: dict[str, Any]
    calls: list[ListedCall]
    deposits: list[deposits.Deposit]
    withdrawals: list[withdrawals.Withdrawal]
    reports_by: list[ReportRow]
    reports_about: list[ReportRow]
    audit_log: list[dict[str, Any]]
    more: dict[str, bool]  # list name -> rows beyond USER_LIST_LIMIT exist
    limit: int


def _balance(bucket: str) -> str:
    return (f"(SELECT a.balance_musdt FROM accounts a"
            f" WHERE a.name = 'user:' || u.id || ':{bucket}')")


_USER_COLUMNS = (
    "u.id, u.email, u.role, u.display_name, u.created_at_ms, u.banned_at_ms, u.ban_reason,"
    " u.withdrawals_blocked, u.email_verified_at_ms, u.totp_enabled_at_ms,"
    f" COALESCE({_balance('available')}, 0) AS available_musdt,"
    f" COALESCE({_balance('held')}, 0) AS held_musdt,"
    f" COALESCE({_balance('pending')}, 0) AS pending_musdt")


def _hit(row: sqlite3.Row, matched: str) -> UserHit:
    return UserHit(
        id=row["id"], email=row["email"], role=row["role"], display_name=row["display_name"],
        created_at_ms=row["created_at_ms"], banned_at_ms=row["banned_at_ms"],
        ban_reason=row["ban_reason"], withdrawals_blocked=bool(row["withdrawals_blocked"]),
        email_verified=row["email_verified_at_ms"] is not None,
        two_factor=row["totp_enabled_at_ms"] is not None,
        available_musdt=row["available_musdt"], held_musdt=row["held_musdt"],
        pending_musdt=row["pending_musdt"], matched=matched)


# The keys in the order their hits are listed, each a condition that leaves out the rows
# an earlier key found (so a user is listed once, under the first key it matches).
# The escape character is written in the SQL: SQLite reads an email prefix from the
# users_email_nocase index only when it is a literal (migration 0017).
_ESC = f"ESCAPE '{LIKE_ESCAPE}'"
_KEYS = (
    ("id", "u.id = :id"),
    ("email", "u.email = :email AND u.id <> :id"),
    ("email_prefix", f"u.email LIKE :prefix {_ESC} AND u.email <> :email AND u.id <> :id"),
    ("display_name", f"u.display_name LIKE :part {_ESC}"
     f" AND NOT u.email LIKE :prefix {_ESC} AND u.id <> :id"),
)


def search_users(conn: sqlite3.Connection, q: UserQuery | None, limit: int, offset: int
                 ) -> tuple[list[UserHit], bool]:
    """Users matching `q`: the id first, then the exact email, then emails beginning with
    it, then display names containing it, each group newest first; without `q`, every
    user, newest first. (hits, more exist).

    One query per key, each reading no more rows than the page still needs: a name found
    in most users stops the scan at the page's end instead of sorting them all."""
    if q is None:
        rows = conn.execute(
            f"SELECT {_USER_COLUMNS} FROM users u ORDER BY u.id DESC LIMIT ? OFFSET ?",
            (limit + 1, offset)).fetchall()
        return [_hit(r, "") for r in rows[:limit]], len(rows) > limit
    args = {"id": q.user_id if q.user_id is not None else -1, "email": q.email,
            "prefix": q.email_prefix, "part": q.name_part}
    need = offset + limit + 1
    found: list[UserHit] = []
    for matched, where in _KEYS:
        if matched == "id" and q.user_id is None:
            continue
        rows = conn.execute(
            f"SELECT {_USER_COLUMNS} FROM users u WHERE {where} ORDER BY u.id DESC LIMIT :n",
            {**args, "n": need - len(found)}).fetchall()
        found += [_hit(r, matched) for r in rows]
        if len(found) >= need:
            break
    return found[offset:offset + limit], len(found) > offset + limit


def user(conn: sqlite3.Connection, user_id: int) -> UserHit:
    row = conn.execute(f"SELECT {_USER_COLUMNS} FROM users u WHERE u.id = ?",
                       (user_id,)).fetchone()
    if row is None:
        raise NotFound("no such user", "user_not_found")
    return _hit(row, "")


# -- calls

_CALL_COLUMNS = ", ".join(f"c.{f.name}" for f in fields(CallRow))
_CALL_SELECT = (
    f"SELECT {_CALL_COLUMNS}, b.display_name AS buyer_name, b.email AS buyer_email,"
    " s.display_name AS seller_name, s.email AS seller_email FROM calls c"
    " JOIN users b ON b.id = c.buyer_id JOIN users s ON s.id = c.seller_id")


def _listed_call(row: sqlite3.Row) -> ListedCall:
    call = CallRow.of(row)
    return ListedCall(call=call,
                      buyer=Party(call.buyer_id, row["buyer_name"], row["buyer_email"]),
                      seller=Party(call.seller_id, row["seller_name"], row["seller_email"]))


def _states(states: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{s}'" for s in states) + ")"


_CALL_WHERE = {"live": f"c.state IN {_states(ACTIVE_STATES)}",
               "recent": f"c.state IN {_states(FINAL_STATES)}", None: "1"}


def list_calls(conn: sqlite3.Connection, status: str | None, before_id: int | None,
               limit: int) -> tuple[list[ListedCall], bool]:
    """Calls under way (`live`: ringing, connecting, live or paused), over (`recent`) or
    all, newest first; `before_id` pages back. (calls, more exist)."""
    where = _CALL_WHERE[status]
    rows = conn.execute(
        f"{_CALL_SELECT} WHERE {where} AND c.id < ? ORDER BY c.id DESC LIMIT ?",
        (before_id if before_id is not None else 2**63 - 1, limit + 1)).fetchall()
    return [_listed_call(r) for r in rows[:limit]], len(rows) > limit


# -- a user's page

def _report(row: sqlite3.Row) -> ReportRow:
    return ReportRow(
        id=row["id"],
        reporter=Party(row["reporter_id"], row["reporter_name"], row["reporter_email"]),
        reported=Party(row["reported_id"], row["reported_name"], row["reported_email"]),
        reason=row["reason"], created_at_ms=row["created_at_ms"],
        closed_at_ms=row["closed_at_ms"], outcome=row["outcome"], call_id=row["call_id"])


def _reports(conn: sqlite3.Connection, column: str, user_id: int, n: int) -> list[ReportRow]:
    rows = conn.execute(
        "SELECT r.id, r.reporter_id, ru.display_name AS reporter_name,"
        " ru.email AS reporter_email, r.reported_id, tu.display_name AS reported_name,"
        " tu.email AS reported_email, r.reason, r.created_at_ms, r.closed_at_ms, r.outcome,"
        f" {REPORT_CALL_SQL} AS call_id FROM user_reports r"
        " JOIN users ru ON ru.id = r.reporter_id JOIN users tu ON tu.id = r.reported_id"
        f" WHERE r.{column} = ? ORDER BY r.id DESC LIMIT ?", (user_id, n)).fetchall()
    return [_report(r) for r in rows]


def _cut(rows: list[Any], limit: int) -> tuple[list[Any], bool]:
    return rows[:limit], len(rows) > limit


def user_page(conn: sqlite3.Connection, user_id: int, limit: int = USER_LIST_LIMIT
              ) -> UserPage:
    """Everything the operator looks at about one user, in one read."""
    found = user(conn, user_id)
    n = limit + 1
    lists: dict[str, tuple[list[Any], bool]] = {
        "calls": _cut([_listed_call(r) for r in conn.execute(
            f"{_CALL_SELECT} WHERE c.id IN (SELECT id FROM calls WHERE buyer_id = :u"
            " UNION SELECT id FROM calls WHERE seller_id = :u) ORDER BY c.id DESC LIMIT :n",
            {"u": user_id, "n": n})], limit),
        "deposits": _cut(deposits.of_user(conn, user_id, n), limit),
        "withdrawals": _cut([withdrawals.withdrawal_from_row(r) for r in conn.execute(
            withdrawals.select("w.user_id = ? ORDER BY w.id DESC LIMIT ?"), (user_id, n))],
            limit),
        "reports_by": _cut(_reports(conn, "reporter_id", user_id, n), limit),
        "reports_about": _cut(_reports(conn, "reported_id", user_id, n), limit),
        "audit_log": _cut(audit_log.about_user(conn, user_id, n), limit),
    }
    return UserPage(
        user=found, bonus=bonuses.bonus_view(conn, user_id),
        calls=lists["calls"][0], deposits=lists["deposits"][0],
        withdrawals=lists["withdrawals"][0], reports_by=lists["reports_by"][0],
        reports_about=lists["reports_about"][0], audit_log=lists["audit_log"][0],
        more={name: more for name, (_, more) in lists.items()}, limit=limit)

