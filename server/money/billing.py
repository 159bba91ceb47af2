"""Billing of calls against the database: the first hold of a new call, the billing pass,
the end of a call and the recovery after a crash. The rules they apply (segment price,
commission split, rounding, holds, plans) are pure, in `money/billing_rules.py`; every token
moves through `money/ledger.py`.

`run_pass` bills every due call at once in one SQLite transaction with set-based SQL: one
statement per table, the ledger transactions of all minute boundaries in one
`ledger.post_many`. `finish_call` ends one call (nearest-6-s rounding, release of the unused
hold, the immediate-failure refund when `auto_refund` allows it); `recover_after_crash` ends
calls a crash left behind. Every ledger transaction has an idempotency key per (call,
minute).

The names of the rules that other rooms use are importable from here too (`billing.X`).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field, fields, replace
from typing import Any, NamedTuple

from meterchat.core.units import DAY_MS
from meterchat.money import ledger
from meterchat.money.billing_rules import (
    ACCEPTED_STATES,
    ACTIVE_STATES,
    FINAL_STATES,
    REFUNDABLE_REASONS,
    SEGMENT_MS,
    TENTHS_PER_MINUTE,
    CallMoney,
    Hold,
    PassOutcome,
    Pauses,
    Plan,
    Settlement,
    Step,
    auto_refund,
    boundary_step,
    commission_split,
    completed_tenths,
    hold_tenths,
    idem_hold,
    idem_settle,
    minute_moves,
    nearest_tenths,
    outcome,
    plan_finish,
    plan_outcome,
    plan_pass,
    segment_price_musdt,
    tenths_left,
)
from meterchat.money.ledger import REVENUE_COMMISSION

__all__ = [
    "ACCEPTED_STATES", "ACTIVE_STATES", "FINAL_STATES", "REFUNDABLE_REASONS", "SEGMENT_MS",
    "TENTHS_PER_MINUTE", "CallMoney", "Finished", "Hold", "PassOutcome", "Pauses", "Plan",
    "Settlement", "Step", "auto_refund", "auto_refunds_since", "boundary_step",
    "commission_split", "completed_tenths", "finish_call", "first_hold", "hold_tenths",
    "idem_hold", "idem_settle", "nearest_tenths", "plan_finish", "plan_pass",
    "recover_after_crash", "run_pass", "segment_price_musdt", "tenths_left",
]

# The call's columns of CallMoney, by name.
_MONEY_FIELDS = tuple(f.name for f in fields(CallMoney))
_MONEY_SQL = ", ".join("c.id AS call_id" if n == "call_id" else f"c.{n}" for n in _MONEY_FIELDS)


def _money_of(row: sqlite3.Row) -> CallMoney:
    return CallMoney(**{name: row[name] for name in _MONEY_FIELDS})


def first_hold(conn: sqlite3.Connection, call_id: int, buyer_id: int, rate: int,
               cap_musdt: int | None, available_musdt: int) -> Hold | None:
    """Hold the first minute of a new call (inside its creating transaction)."""
    n = hold_tenths(rate, available_musdt, cap_musdt)
    if n == 0:
        return None
    amount = n * segment_price_musdt(rate)
    ledger.reserve(conn, buyer_id, amount, "call_hold", idem_key=idem_hold(call_id, 1),
                   ref=f"call:{call_id}")
    conn.execute(
        "UPDATE calls SET hold_tenths = ?, held_musdt = ?, minute_no = 1 WHERE id = ?",
        (n, amount, call_id),
    )
    return Hold(1, n, amount)


# ---- the billing pass -----------------------------------------------------------------------

class DueCall(NamedTuple):
    """A call a pass bills, as the pass reads it: its money, how far to bill it, its
    accounts and the buyer's available balance. The pass reads plain tuples in this order
    (sqlite3.Row costs more per row) and unpacks them by these names."""

    call_id: int
    rate_tokens_per_min: int
    commission_ppm: int
    spend_cap_musdt: int | None
    billed_tenths: int
    settled_tenths: int
    hold_tenths: int
    held_musdt: int
    minute_no: int
    charged_musdt: int
    seller_earned_musdt: int
    commission_musdt: int
    to_tenths: int
    buyer_id: int
    buyer_available_acct: int
    buyer_held_acct: int
    seller_acct: int
    available_musdt: int


_SELECT_DUE = (
    f"SELECT {_MONEY_SQL}, d.to_tenths, c.buyer_id, c.buyer_available_acct,"
    " c.buyer_held_acct, c.seller_acct, a.balance_musdt AS available_musdt"
    " FROM bill_due d JOIN calls c ON c.id = d.call_id"
    " JOIN accounts a ON a.id = c.buyer_available_acct"
    " WHERE c.state IN ('connecting', 'live', 'paused') AND d.to_tenths > c.billed_tenths"
)


def _temp_tables(conn: sqlite3.Connection) -> None:
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS bill_due (call_id INTEGER PRIMARY KEY,"
        " to_tenths INTEGER NOT NULL)"
    )
    conn.execute("DELETE FROM bill_due")


def _select_due(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
    cur = conn.cursor()
    cur.row_factory = None  # plain tuples, in the order of DueCall
    rows: list[tuple[Any, ...]] = cur.execute(_SELECT_DUE).fetchall()
    if rows and tuple(d[0] for d in cur.description) != DueCall._fields:
        raise AssertionError("the pass's SELECT and DueCall disagree")
    return rows


def run_pass(conn: sqlite3.Connection, due: list[tuple[int, int]], now_ms: int,
             ) -> list[PassOutcome]:
    """One billing pass in one transaction: for every (call_id, completed_tenths) that is
    ahead of its recorded segments, record the segments, settle used-up holds, place the
    next holds, and end the calls that cannot be held further. One statement per table;
    the ledger transactions of the pass in one `ledger.post_many`.

    Most calls in a pass only complete a segment inside their hold: they are written with
    plain integers here. Calls that reach the end of their hold go to `_boundary_pass`."""
    if not due:
        return []
    _temp_tables(conn)
    conn.executemany("INSERT INTO bill_due VALUES (?, ?)", due)
    rows = _select_due(conn)
    if not rows:
        return []
    segments: list[tuple[int, int, int]] = []
    tenth_updates: list[tuple[int, int]] = []
    outcomes: list[PassOutcome] = []
    boundary: list[tuple[Any, ...]] = []
    for r in rows:
        (call_id, rate, _ppm, cap, billed, settled, hold, held, _minute, charged, _earned,
         _commission, to, _buyer, _avail_acct, _held_acct, _seller_acct, available) = r
        if to < settled + hold:
            # The segments fit in the hold and its end is not reached.
            if to == billed + 1:
                segments.append((call_id, to, now_ms))
            else:
                segments += [(call_id, t, now_ms) for t in range(billed + 1, to + 1)]
            tenth_updates.append((to, call_id))
            outcomes.append(outcome(call_id, segment_price_musdt(rate), cap, to, settled, hold,
                                    held, charged, available))
        else:
            boundary.append(r)
    if boundary:
        _boundary_pass(conn, boundary, now_ms, segments, tenth_updates, outcomes)
    conn.executemany("INSERT INTO call_segments (call_id, tenth, at_ms) VALUES (?, ?, ?)",
                     segments)
    conn.executemany("UPDATE calls SET billed_tenths = ? WHERE id = ?", tenth_updates)
    return outcomes


def _boundary_pass(conn: sqlite3.Connection, rows: list[tuple[Any, ...]], now_ms: int,
                   segments: list[tuple[int, int, int]], tenth_updates: list[tuple[int, int]],
                   outcomes: list[PassOutcome]) -> None:
    """The calls of a pass whose hold is used up (rows of DueCall): settle, hold the next
    minute, or end. At 10,000 calls going live together every one of them lands here in the
    same pass: the ledger transactions of all of them go in one `ledger.post_many`."""
    commission_acct = ledger.account_id(conn, REVENUE_COMMISSION)
    out = _boundary_rows(rows, commission_acct, now_ms)
    try:
        ledger.post_many(conn, out.txs, at_ms=now_ms)
    except ledger.KeysTaken as taken:
        # A key already in the ledger means that state was applied before: such a call is
        # skipped whole rather than billed twice; the others are billed as if alone.
        bad = {call_id for (_, key, _, _), call_id in zip(out.txs, out.tx_calls, strict=True)
               if key in taken.keys}
        out = _boundary_rows(rows, commission_acct, now_ms, skip=bad)
        ledger.post_many(conn, out.txs, at_ms=now_ms)
    conn.executemany(
        "UPDATE calls SET billed_tenths = ?, settled_tenths = ?, hold_tenths = ?,"
        " held_musdt = ?, minute_no = ?, charged_musdt = ?, seller_earned_musdt = ?,"
        " commission_musdt = ? WHERE id = ?",
        out.money_updates,
    )
    conn.executemany(
        "UPDATE calls SET state = 'ended', end_reason = ?, ended_at_ms = ?, live_ms = ?"
        " WHERE id = ?",
        out.end_updates,
    )
    if out.events:
        conn.executemany(
            "INSERT INTO call_events (call_id, at_ms, state, detail) VALUES (?, ?, ?, ?)",
            out.events)
    segments += out.segments
    tenth_updates += out.tenth_updates
    outcomes += out.outcomes


@dataclass
class _Rows:
    """What the boundary calls of a pass write, built before anything is written."""

    txs: list[ledger.BulkTx] = field(default_factory=list)
    tx_calls: list[int] = field(default_factory=list)  # the call of each transaction
    segments: list[tuple[int, int, int]] = field(default_factory=list)
    tenth_updates: list[tuple[int, int]] = field(default_factory=list)
    money_updates: list[tuple[int, ...]] = field(default_factory=list)
    end_updates: list[tuple[str, int, int, int]] = field(default_factory=list)
    events: list[tuple[int, int, str, str]] = field(default_factory=list)
    outcomes: list[PassOutcome] = field(default_factory=list)


def _net(moves: list[tuple[int, int]]) -> dict[int, int]:
    """Amounts per account (two roles on one account add up)."""
    out: dict[int, int] = {}
    for acct, amount in moves:
        out[acct] = out.get(acct, 0) + amount
    return out


def _boundary_rows(rows: list[tuple[Any, ...]], commission_acct: int, now_ms: int,
                   skip: frozenset[int] | set[int] = frozenset()) -> _Rows:
    """Plan every call (`boundary_step`, the common case in plain integers, else
    `plan_pass`) and build the rows the pass writes for it; the calls in `skip` are left
    out whole."""
    out = _Rows()
    txs, tx_calls, segments = out.txs, out.tx_calls, out.segments
    available: dict[int, int] = {}  # buyer's available account -> balance after this pass
    for r in rows:
        (call_id, rate, ppm, cap, billed, settled, hold, held, minute, charged, earned,
         commission, to, _buyer, avail_acct, held_acct, seller_acct, available_musdt) = r
        if call_id in skip:
            continue
        avail = available.get(avail_acct, available_musdt)
        st = boundary_step(call_id, rate, ppm, cap, settled, hold, charged, to, avail)
        if st is not None:
            available[avail_acct] = st.available_after_musdt
            if to == billed + 1:
                segments.append((call_id, to, now_ms))
            else:
                segments += [(call_id, t, now_ms) for t in range(billed + 1, to + 1)]
            # Net per account, as minute_moves: a full minute settled and held leaves `held`
            # be (a zero amount is no posting).
            moves = {held_acct: st.held_musdt - st.settled_musdt, seller_acct: st.seller_musdt,
                     commission_acct: st.commission_musdt, avail_acct: -st.held_musdt}
            if len(moves) != 4:
                moves = _net([(held_acct, st.held_musdt - st.settled_musdt),
                              (seller_acct, st.seller_musdt),
                              (commission_acct, st.commission_musdt),
                              (avail_acct, -st.held_musdt)])
            txs.append(("call_minute", idem_settle(call_id, minute), f"call:{call_id}", moves))
            tx_calls.append(call_id)
            out.money_updates.append((
                to, settled + hold, st.new_hold_tenths, st.held_musdt, minute + 1,
                st.charged_musdt, earned + st.seller_musdt, commission + st.commission_musdt,
                call_id))
            out.outcomes.append(st.outcome)
            continue
        plan = plan_pass(CallMoney(call_id, rate, ppm, cap, billed, settled, hold, held,
                                   minute, charged, earned, commission), to, avail)
        available[avail_acct] = plan.available_after_musdt
        _plan_rows(out, plan, (avail_acct, held_acct, seller_acct, commission_acct), now_ms)
    return out


def _plan_rows(out: _Rows, plan: Plan, accounts: tuple[int, int, int, int],
               now_ms: int) -> None:
    """The rows of one call planned by `plan_pass`."""
    a = plan.after
    call_id = a.call_id
    avail_acct, held_acct, seller_acct, commission_acct = accounts
    by_role = {"avail": avail_acct, "held": held_acct, "seller": seller_acct,
               "commission": commission_acct}
    ref = f"call:{call_id}"
    out.segments += [(call_id, t, now_ms) for t in plan.new_segments]
    for key, by_amount in minute_moves(call_id, plan):
        moves: dict[int, int] = {}
        for role, amount in by_amount.items():
            acct = by_role[role]
            moves[acct] = moves.get(acct, 0) + amount
        out.txs.append(("call_minute", key, ref, moves))
        out.tx_calls.append(call_id)
    ended = plan.end_reason is not None
    # Only the columns that changed: writing `state` would touch four indexes per row.
    # An ending call's final figures go in before its state (the sellers' call count
    # trigger reads billed_tenths when the state changes).
    if plan.settlements or plan.holds or ended:
        out.money_updates.append((
            a.billed_tenths, a.settled_tenths, a.hold_tenths, a.held_musdt, a.minute_no,
            a.charged_musdt, a.seller_earned_musdt, a.commission_musdt, call_id))
    else:
        out.tenth_updates.append((a.billed_tenths, call_id))
    if plan.end_reason is not None:
        out.end_updates.append((plan.end_reason, now_ms, a.billed_tenths * SEGMENT_MS,
                                call_id))
        out.events.append((call_id, now_ms, "ended", plan.end_reason))
    out.outcomes.append(plan_outcome(plan))


# ---- the end of a call ----------------------------------------------------------------------

@dataclass(frozen=True)
class Finished:
    call_id: int
    state: str
    end_reason: str
    billed_tenths: int
    refunded_musdt: int


def _call_to_finish(conn: sqlite3.Connection, call_id: int) -> sqlite3.Row | None:
    cur = conn.cursor()
    cur.row_factory = sqlite3.Row
    row: sqlite3.Row | None = cur.execute(
        f"SELECT {_MONEY_SQL}, c.state, c.buyer_id, s.name AS seller_account"
        " FROM calls c JOIN accounts s ON s.id = c.seller_acct WHERE c.id = ?",
        (call_id,),
    ).fetchone()
    return row


def auto_refunds_since(conn: sqlite3.Connection, buyer_id: int, since_ms: int) -> int:
    (n,) = conn.execute(
        "SELECT COUNT(*) FROM calls WHERE buyer_id = ? AND auto_refunded = 1"
        " AND ended_at_ms > ?", (buyer_id, since_ms)).fetchone()
    return int(n)


def finish_call(conn: sqlite3.Connection, call_id: int, state: str, reason: str,
                final_live_ms: int | None, now_ms: int, refund_below_live_ms: int, *,
                seller_side_failed: bool = False, refunds_per_day: int = 0,
                pauses: Pauses | None = None) -> Finished | None:
    """End one call (inside a transaction): record the last segment rounded to the nearest
    6 s, settle from the hold, release the rest, refund an immediate failure in full where
    `auto_refund` allows it. `state` is the final state (ended, declined, missed,
    cancelled). None when the call was already over."""
    row = _call_to_finish(conn, call_id)
    if row is None or row["state"] in FINAL_STATES:
        return None
    m = _money_of(row)
    # The seller earns into the account the call was opened with: `available`, or `pending`
    # while earnings_hold_hours > 0 (run_pass credits the same account).
    buyer_id, seller_acct = row["buyer_id"], row["seller_account"]
    live_ms = final_live_ms if final_live_ms is not None else m.billed_tenths * SEGMENT_MS
    live_ms = max(live_ms, 0)
    refund = auto_refund(
        reason, live_ms, refund_below_live_ms, seller_side_failed,
        auto_refunds_since(conn, buyer_id, now_ms - DAY_MS) if refunds_per_day else 0,
        refunds_per_day)
    before = m
    after, release, s = plan_finish(m, nearest_tenths(live_ms), refund)
    ref = f"call:{call_id}"
    refunded = 0
    conn.executemany("INSERT INTO call_segments (call_id, tenth, at_ms) VALUES (?, ?, ?)",
                     [(call_id, t, now_ms)
                      for t in range(before.billed_tenths + 1, after.billed_tenths + 1)])
    if s is not None:
        ledger.settle(
            conn, buyer_id,
            [(seller_acct, s.seller_musdt),
             (REVENUE_COMMISSION, s.commission_musdt)],
            "call_settle", idem_key=idem_settle(call_id, s.minute_no), ref=ref,
        )
    if release:
        ledger.release(conn, buyer_id, release, "call_release",
                       idem_key=f"call:{call_id}:release", ref=ref)
    if refund:
        refunded = (after.billed_tenths - after.settled_tenths) * after.price_musdt
        if after.charged_musdt:
            try:
                ledger.post(conn, "call_refund", [
                    (seller_acct, -after.seller_earned_musdt),
                    (REVENUE_COMMISSION, -after.commission_musdt),
                    (ledger.user_account(buyer_id), after.charged_musdt),
                ], idem_key=f"call:{call_id}:refund", ref=ref)
                refunded += after.charged_musdt
                after = replace(after, charged_musdt=0, seller_earned_musdt=0,
                                commission_musdt=0)
            except ledger.InsufficientFunds:
                # The seller has already moved the earnings on; the operator settles it.
                pass
    if pauses is not None:
        conn.execute("UPDATE calls SET pauses = ?, paused_ms = ?, paused_by = ? WHERE id = ?",
                     (pauses.count, pauses.paused_ms, pauses.paused_by, call_id))
    conn.execute(
        "UPDATE calls SET state = ?, end_reason = ?, ended_at_ms = ?, live_ms = ?,"
        " billed_tenths = ?, settled_tenths = ?, hold_tenths = 0, held_musdt = 0,"
        " charged_musdt = ?, seller_earned_musdt = ?, commission_musdt = ?,"
        " refunded_musdt = ?, auto_refunded = ? WHERE id = ?",
        (state, reason, now_ms, live_ms, after.billed_tenths,
         after.billed_tenths if not refund else after.settled_tenths,
         after.charged_musdt, after.seller_earned_musdt, after.commission_musdt, refunded,
         int(refunded > 0), call_id),
    )
    conn.execute("INSERT INTO call_events (call_id, at_ms, state, detail) VALUES (?, ?, ?, ?)",
                 (call_id, now_ms, state, reason))
    return Finished(call_id, state, reason, after.billed_tenths, refunded)


def recover_after_crash(conn: sqlite3.Connection, now_ms: int) -> list[Finished]:
    """On start-up: calls a crash left active are ended. Accepted calls end at their last
    recorded segment (recorded but unsettled segments are settled, the rest of the hold
    released); calls still ringing are missed."""
    out = []
    for call_id, state in conn.execute(
        "SELECT id, state FROM calls WHERE state IN ('ringing', 'connecting', 'live', 'paused')"
    ).fetchall():
        if state == "ringing":
            f = finish_call(conn, call_id, "missed", "server_restart", 0, now_ms, 0)
        else:
            f = finish_call(conn, call_id, "ended", "server_restart", None, now_ms, 0)
        if f is not None:
            out.append(f)
    return out
