"""Billing of calls: the pure rules (segment price, commission split, rounding, how much to
hold, what one pass does to one call) and the database functions that apply them.

Live time is billed in 6-second segments (tenths of a minute) by the server's clock. Money
follows "reserve ahead, settle behind, per minute": a hold of up to one minute (whole
segments, never more than the buyer's available balance or what is left of the spending cap)
moves from the buyer's `available` to `held`; every completed segment is recorded on the call
(`billed_tenths`, and one `call_segments` row); when the hold is used up the completed
segments are settled from it (floor of price x commission to the platform, the rest to the
seller) and the next hold is placed. No hold possible: the call ends at that boundary.

`run_pass` does that for every due call at once in one SQLite transaction with set-based SQL;
`finish_call` ends one call (nearest-6-s rounding, release of the unused hold, the
immediate-failure refund when `auto_refund` allows it); `recover_after_crash` ends calls a
crash left behind.
Every ledger transaction has an idempotency key per (call, minute).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from meterchat.money import ledger
from meterchat.money.ledger import REVENUE_COMMISSION

SEGMENT_MS = 6_000
TENTHS_PER_MINUTE = 10
PPM = 1_000_000
ACTIVE_STATES = ("ringing", "connecting", "live", "paused")
ACCEPTED_STATES = ("connecting", "live", "paused")
FINAL_STATES = ("ended", "declined", "missed", "cancelled")
# End reasons that may earn the immediate-failure refund (DESIGN.md "Calls and billing").
REFUNDABLE_REASONS = ("connection_lost", "failed")
DAY_MS = 86_400_000


# ---- pure rules -------------------------------------------------------------------------

def segment_price_musdt(rate_tokens_per_min: int) -> int:
    """One 6-s segment is a tenth of a minute: rate tokens/min x 10,000 µUSDT / 10, exact."""
    return rate_tokens_per_min * 1_000


def commission_split(price_musdt: int, commission_ppm: int) -> tuple[int, int]:
    """(seller, platform): the platform gets floor(price x commission), the seller the rest."""
    commission = price_musdt * commission_ppm // PPM
    return price_musdt - commission, commission


def completed_tenths(live_ms: int) -> int:
    return live_ms // SEGMENT_MS


def nearest_tenths(live_ms: int) -> int:
    """The last partial segment rounds to the nearest 6 s: 3 s or more counts in full."""
    return (live_ms + SEGMENT_MS // 2) // SEGMENT_MS


def hold_tenths(rate_tokens_per_min: int, available_musdt: int, cap_left_musdt: int | None,
                max_tenths: int = TENTHS_PER_MINUTE) -> int:
    """Segments the next hold covers: up to a minute, within balance and cap."""
    price = segment_price_musdt(rate_tokens_per_min)
    n = min(max_tenths, available_musdt // price)
    if cap_left_musdt is not None:
        n = min(n, cap_left_musdt // price)
    return max(n, 0)


def auto_refund(reason: str, live_ms: int, refund_below_live_ms: int,
                seller_side_failed: bool, refunds_last_24h: int, refunds_per_day: int) -> bool:
    """Whether a call ending now is refunded in full without anyone asking.

    Either party can report `disconnected`, so a refund for every short lost call is a
    free-minute machine. Refunded automatically: a lost call (`connection_lost`, `failed`)
    with less than refund_below_live_ms of live time whose media never went live (nothing
    was charged), or whose pause came from the seller's side being gone (the seller's
    socket closed or the seller's heartbeats stopped, while the buyer was still there: the
    buyer cannot fake that), and then only while the buyer has had fewer than
    refunds_per_day automatic refunds in the last 24 hours. Anything else is charged like
    any call; the buyer can dispute it."""
    if reason not in REFUNDABLE_REASONS or live_ms >= refund_below_live_ms:
        return False
    if live_ms <= 0:
        return True
    return seller_side_failed and refunds_last_24h < refunds_per_day


def no_hold_reason(rate_tokens_per_min: int, cap_left_musdt: int | None) -> str:
    if cap_left_musdt is not None and cap_left_musdt < segment_price_musdt(rate_tokens_per_min):
        return "spend_cap"
    return "insufficient_funds"


@dataclass(frozen=True)
class CallMoney:
    """A call's durable billing state, as one pass or the end of a call reads it."""

    call_id: int
    rate_tokens_per_min: int
    commission_ppm: int
    spend_cap_musdt: int | None
    billed_tenths: int
    settled_tenths: int
    hold_tenths: int
    held_musdt: int
    minute_no: int
    charged_musdt: int  # settled so far
    seller_earned_musdt: int
    commission_musdt: int

    @property
    def price_musdt(self) -> int:
        return segment_price_musdt(self.rate_tokens_per_min)

    def cap_left_musdt(self) -> int | None:
        if self.spend_cap_musdt is None:
            return None
        return self.spend_cap_musdt - self.charged_musdt


@dataclass(frozen=True)
class Settlement:
    minute_no: int
    tenths: int
    amount_musdt: int
    seller_musdt: int
    commission_musdt: int


@dataclass(frozen=True)
class Hold:
    minute_no: int
    tenths: int
    amount_musdt: int


@dataclass
class Plan:
    """What one pass does to one call: segments to record, minutes to settle, holds to
    place, and the end reason when no further hold could be placed."""

    after: CallMoney
    new_segments: list[int] = field(default_factory=list)
    settlements: list[Settlement] = field(default_factory=list)
    holds: list[Hold] = field(default_factory=list)
    end_reason: str | None = None
    available_after_musdt: int = 0


def settle_used(m: CallMoney, tenths: int) -> tuple[CallMoney, Settlement | None]:
    """Settle `tenths` segments from the hold (the rest of the hold stays)."""
    if tenths <= 0:
        return m, None
    amount = tenths * m.price_musdt
    seller, commission = commission_split(amount, m.commission_ppm)
    s = Settlement(m.minute_no, tenths, amount, seller, commission)
    return replace(
        m,
        settled_tenths=m.settled_tenths + tenths,
        hold_tenths=m.hold_tenths - tenths,
        held_musdt=m.held_musdt - amount,
        charged_musdt=m.charged_musdt + amount,
        seller_earned_musdt=m.seller_earned_musdt + seller,
        commission_musdt=m.commission_musdt + commission,
    ), s


def plan_pass(m: CallMoney, to_tenths: int, available_musdt: int) -> Plan:
    """Record segments up to `to_tenths`; whenever the hold is used up, settle it and place
    the next one; end the call at the boundary where no hold can be placed.
    (Plain integers inside: a pass plans thousands of these.)"""
    plan = Plan(after=m, available_after_musdt=available_musdt)
    price = segment_price_musdt(m.rate_tokens_per_min)
    ppm, cap = m.commission_ppm, m.spend_cap_musdt
    billed, settled, hold, held = m.billed_tenths, m.settled_tenths, m.hold_tenths, m.held_musdt
    minute, charged = m.minute_no, m.charged_musdt
    earned, commission = m.seller_earned_musdt, m.commission_musdt
    avail = available_musdt
    while True:
        if billed == settled + hold:
            # The hold is used up (or empty): settle what it paid for, hold the next minute.
            if hold:
                amount = hold * price
                seller, comm = commission_split(amount, ppm)
                plan.settlements.append(Settlement(minute, hold, amount, seller, comm))
                settled += hold
                held -= amount
                charged += amount
                earned += seller
                commission += comm
                hold = 0
            cap_left = None if cap is None else cap - charged
            n = hold_tenths(m.rate_tokens_per_min, avail, cap_left)
            if n == 0:
                plan.end_reason = no_hold_reason(m.rate_tokens_per_min, cap_left)
                break
            minute += 1
            hold, held = n, n * price
            avail -= held
            plan.holds.append(Hold(minute, n, held))
        if billed >= to_tenths:
            break
        upto = min(to_tenths, settled + hold)
        plan.new_segments.extend(range(billed + 1, upto + 1))
        billed = upto
    plan.after = replace(
        m, billed_tenths=billed, settled_tenths=settled, hold_tenths=hold, held_musdt=held,
        minute_no=minute, charged_musdt=charged, seller_earned_musdt=earned,
        commission_musdt=commission)
    plan.available_after_musdt = avail
    return plan


def plan_finish(m: CallMoney, final_tenths: int, refund: bool) -> tuple[CallMoney, int,
                                                                       Settlement | None]:
    """End of a call: bill up to final_tenths (never beyond the hold), settle, and say how
    much of the hold goes back. Returns (after, release_musdt, settlement)."""
    final = max(m.billed_tenths, min(final_tenths, m.settled_tenths + m.hold_tenths))
    m = replace(m, billed_tenths=final)
    if refund:
        release = m.held_musdt
        return replace(m, hold_tenths=0, held_musdt=0), release, None
    m, s = settle_used(m, final - m.settled_tenths)
    release = m.held_musdt
    return replace(m, hold_tenths=0, held_musdt=0), release, s


# ---- database ---------------------------------------------------------------------------

_MONEY_COLS = (
    "c.id, c.rate_tokens_per_min, c.commission_ppm, c.spend_cap_musdt, c.billed_tenths,"
    " c.settled_tenths, c.hold_tenths, c.held_musdt, c.minute_no, c.charged_musdt,"
    " c.seller_earned_musdt, c.commission_musdt"
)


def _money(row) -> CallMoney:
    return CallMoney(*row[:12])


def idem_hold(call_id: int, minute_no: int) -> str:
    return f"call:{call_id}:hold:{minute_no}"


def idem_settle(call_id: int, minute_no: int) -> str:
    return f"call:{call_id}:settle:{minute_no}"


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


class PassOutcome(NamedTuple):
    """What a pass did to one call (a tuple: a pass makes 10,000 of these)."""

    call_id: int
    billed_tenths: int
    charged_musdt: int  # every recorded segment, settled or not
    buyer_balance_musdt: int  # available + what is left of this call's hold
    minutes_left_tenths: int  # segments the buyer can still afford (balance and cap)
    end_reason: str | None


def _temp_tables(conn: sqlite3.Connection) -> None:
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS bill_due (call_id INTEGER PRIMARY KEY,"
        " to_tenths INTEGER NOT NULL)"
    )
    conn.execute("DELETE FROM bill_due")


def tenths_left(m: CallMoney, available_musdt: int) -> int:
    """Segments the buyer can still pay for: the rest of the hold plus available, within
    the cap."""
    price = m.price_musdt
    in_hold = m.settled_tenths + m.hold_tenths - m.billed_tenths
    more = available_musdt // price
    cap = m.cap_left_musdt()
    if cap is not None:
        more = min(more, max(0, (cap - m.hold_tenths * price) // price))
    return in_hold + more


def run_pass(conn: sqlite3.Connection, due: list[tuple[int, int]], now_ms: int,
             ) -> list[PassOutcome]:
    """One billing pass in one transaction: for every (call_id, completed_tenths) that is
    ahead of its recorded segments, record the segments, settle used-up holds, place the
    next holds, and end the calls that cannot be held further. One statement per table;
    balances are updated per account from the aggregate of the pass's postings.

    Most calls in a pass only complete a segment inside their hold: they take a fast path
    with plain integers. Calls that reach the end of their hold go through plan_pass."""
    if not due:
        return []
    _temp_tables(conn)
    conn.executemany("INSERT INTO bill_due VALUES (?, ?)", due)
    cur = conn.cursor()
    cur.row_factory = None  # plain tuples: sqlite3.Row costs more per row
    rows = cur.execute(
        f"SELECT {_MONEY_COLS}, d.to_tenths, c.buyer_id, c.buyer_available_acct,"
        " c.buyer_held_acct, c.seller_acct, a.balance_musdt"
        " FROM bill_due d JOIN calls c ON c.id = d.call_id"
        " JOIN accounts a ON a.id = c.buyer_available_acct"
        " WHERE c.state IN ('connecting', 'live', 'paused') AND d.to_tenths > c.billed_tenths"
    ).fetchall()
    if not rows:
        return []
    segments: list[tuple[int, int, int]] = []
    tenth_updates: list[tuple[int, int]] = []
    outcomes: list[PassOutcome] = []
    boundary = []
    for r in rows:
        (call_id, rate, _ppm, cap, billed, settled, hold, held, _minute, charged, _se, _co,
         to) = r[:13]
        if to < settled + hold:
            # Fast path: the segments fit in the hold and its end is not reached.
            price = rate * 1_000
            segments.extend((call_id, t, now_ms) for t in range(billed + 1, to + 1))
            tenth_updates.append((to, call_id))
            avail = r[17]
            more = avail // price
            if cap is not None:
                more = min(more, max(0, (cap - charged - hold * price) // price))
            outcomes.append(PassOutcome(
                call_id, to, charged + (to - settled) * price,
                avail + held - (to - settled) * price, settled + hold - to + more, None))
        else:
            boundary.append(r)
    if boundary:
        _boundary_pass(conn, boundary, now_ms, segments, tenth_updates, outcomes)
    conn.executemany("INSERT INTO call_segments (call_id, tenth, at_ms) VALUES (?, ?, ?)",
                     segments)
    conn.executemany("UPDATE calls SET billed_tenths = ? WHERE id = ?", tenth_updates)
    return outcomes


def _ledger_txs(call_id: int, plan: Plan) -> list[tuple[str, dict[str, int]]]:
    """One ledger transaction per minute boundary: the used hold settled to seller and
    platform and the next minute held, keyed by (call, settled minute). Postings are net
    per account, so a full minute settled and a full minute held leaves `held` unchanged."""
    out = []
    holds = {h.minute_no: h for h in plan.holds}
    for s in plan.settlements:
        nxt = holds.pop(s.minute_no + 1, None)
        hold = nxt.amount_musdt if nxt else 0
        out.append((idem_settle(call_id, s.minute_no), {
            "held": hold - s.amount_musdt, "seller": s.seller_musdt,
            "commission": s.commission_musdt, "avail": -hold}))
    for h in holds.values():
        out.append((idem_hold(call_id, h.minute_no), {"avail": -h.amount_musdt,
                                                      "held": h.amount_musdt}))
    return out


class Step(NamedTuple):
    """One minute boundary crossed the common way (see `boundary_step`)."""

    new_hold_tenths: int
    settled_musdt: int
    seller_musdt: int
    commission_musdt: int
    held_musdt: int  # the new hold
    charged_musdt: int  # settled so far, after this step
    available_after_musdt: int
    tenths_left: int  # what the buyer can still afford after `to_tenths`


def boundary_step(rate_tokens_per_min: int, commission_ppm: int, cap_musdt: int | None,
                  settled: int, hold: int, charged_musdt: int, to_tenths: int,
                  available_musdt: int) -> Step | None:
    """The common case of a minute boundary, in plain integers: the hold is used up by
    `to_tenths`, it is settled, the next hold can be placed and covers `to_tenths`. None
    for anything else (no hold possible, two boundaries in one pass, an empty hold): those
    go through `plan_pass`, which this must always agree with."""
    end = settled + hold
    if hold <= 0 or to_tenths < end:
        return None
    price = rate_tokens_per_min * 1_000
    amount = hold * price
    commission = amount * commission_ppm // PPM
    charged = charged_musdt + amount
    n = min(TENTHS_PER_MINUTE, available_musdt // price)
    if cap_musdt is not None:
        n = min(n, (cap_musdt - charged) // price)
    if n <= 0 or to_tenths >= end + n:
        return None
    held = n * price
    avail = available_musdt - held
    more = avail // price
    if cap_musdt is not None:
        more = min(more, max(0, (cap_musdt - charged - held) // price))
    return Step(n, amount, amount - commission, commission, held, charged, avail,
                end + n - to_tenths + more)


def _boundary_pass(conn: sqlite3.Connection, rows: list, now_ms: int, segments: list,
                   tenth_updates: list, outcomes: list) -> None:
    """The calls of a pass whose hold is used up: settle, hold the next minute, or end.
    At 10,000 calls going live together every one of them lands here in the same pass, so
    the common case is plain integers (`boundary_step`) and rows written straight away."""
    commission_acct = ledger._account_row(conn, REVENUE_COMMISSION)[0]
    available: dict[int, int] = {}
    fast: list[tuple] = []  # (row, step)
    plans = []
    for r in rows:
        buyer_avail_acct = r[14]
        avail = available.get(buyer_avail_acct, r[17])
        step = boundary_step(r[1], r[2], r[3], r[5], r[6], r[9], r[12], avail)
        if step is not None:
            available[buyer_avail_acct] = step.available_after_musdt
            fast.append((r, step))
            continue
        plan = plan_pass(_money(r), r[12], avail)
        available[buyer_avail_acct] = plan.available_after_musdt
        plans.append((r, plan))

    next_tx = conn.execute("SELECT COALESCE(MAX(id), 0) FROM ledger_tx").fetchone()[0] + 1
    out = _boundary_rows(fast, plans, commission_acct, next_tx, now_ms)
    if out.txs:
        # Idempotency guard, folded into the insert: a key already in the ledger means that
        # state was applied before, and such a call is skipped whole rather than billed
        # twice. (A separate lookup of every key cost a tenth of a 10,000-call pass.)
        conn.execute("SAVEPOINT bill_boundary")
        inserted = conn.executemany(_INSERT_TX.replace("INSERT", "INSERT OR IGNORE", 1),
                                    out.txs).rowcount
        if inserted != len(out.txs):
            conn.execute("ROLLBACK TO bill_boundary")
            taken = {k for (k,) in conn.execute(
                "SELECT idem_key FROM ledger_tx WHERE idem_key IN"
                " (SELECT value FROM json_each(?))", (json.dumps([t[1] for t in out.txs]),))}
            bad = {int(k.split(":")[1]) for k in taken}
            fast = [(r, st) for r, st in fast if r[0] not in bad]
            plans = [(r, p) for r, p in plans if r[0] not in bad]
            out = _boundary_rows(fast, plans, commission_acct, next_tx, now_ms)
            conn.executemany(_INSERT_TX, out.txs)
        conn.execute("RELEASE bill_boundary")
        conn.executemany(
            "INSERT INTO postings (tx_id, account_id, amount_musdt) VALUES (?, ?, ?)",
            out.postings)
        deltas: dict[int, int] = {}
        for _, acct, amount in out.postings:
            deltas[acct] = deltas.get(acct, 0) + amount
        # One UPDATE per account, each checked against the balance CHECK; measured faster
        # here than a temp table joined by UPDATE ... FROM.
        conn.executemany("UPDATE accounts SET balance_musdt = balance_musdt + ? WHERE id = ?",
                         [(d, a) for a, d in deltas.items() if d])
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


_INSERT_TX = ("INSERT INTO ledger_tx (id, idem_key, kind, ref, created_at_ms)"
              " VALUES (?, ?, ?, ?, ?)")


@dataclass
class _Rows:
    """What the boundary calls of a pass write, built before anything is written."""

    txs: list = field(default_factory=list)
    postings: list = field(default_factory=list)
    segments: list = field(default_factory=list)
    tenth_updates: list = field(default_factory=list)
    money_updates: list = field(default_factory=list)
    end_updates: list = field(default_factory=list)
    events: list = field(default_factory=list)
    outcomes: list = field(default_factory=list)


def _boundary_rows(fast: list, plans: list, commission_acct: int, next_tx: int,
                   now_ms: int) -> _Rows:
    out = _Rows()
    txs, postings, segments, outcomes = out.txs, out.postings, out.segments, out.outcomes
    for r, st in fast:
        (call_id, rate, _ppm, _cap, billed, settled, hold, _held, minute, _charged, earned,
         commission, to, _buyer, buyer_avail, buyer_held, seller_acct) = r[:17]
        price = rate * 1_000
        segments += [(call_id, t, now_ms) for t in range(billed + 1, to + 1)]
        txs.append((next_tx, idem_settle(call_id, minute), "call_minute", f"call:{call_id}",
                    now_ms))
        # Net per account, as _ledger_txs: a full minute settled and held leaves `held` be.
        for acct, amount in ((buyer_held, st.held_musdt - st.settled_musdt),
                             (seller_acct, st.seller_musdt),
                             (commission_acct, st.commission_musdt),
                             (buyer_avail, -st.held_musdt)):
            if amount:
                postings.append((next_tx, acct, amount))
        next_tx += 1
        end = settled + hold
        out.money_updates.append((to, end, st.new_hold_tenths, st.held_musdt, minute + 1,
                                  st.charged_musdt, earned + st.seller_musdt,
                                  commission + st.commission_musdt, call_id))
        unsettled = (to - end) * price
        outcomes.append(PassOutcome(
            call_id, to, st.charged_musdt + unsettled,
            st.available_after_musdt + st.held_musdt - unsettled, st.tenths_left, None))
    for r, plan in plans:
        call_id, buyer_avail, buyer_held, seller_acct = r[0], r[14], r[15], r[16]
        accts = {"avail": buyer_avail, "held": buyer_held, "seller": seller_acct,
                 "commission": commission_acct}
        ref = f"call:{call_id}"
        segments += [(call_id, t, now_ms) for t in plan.new_segments]
        for key, moves in _ledger_txs(call_id, plan):
            txs.append((next_tx, key, "call_minute", ref, now_ms))
            postings += [(next_tx, accts[who], amt) for who, amt in moves.items() if amt]
            next_tx += 1
        a = plan.after
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
        if ended:
            out.end_updates.append((plan.end_reason, now_ms, a.billed_tenths * SEGMENT_MS,
                                    call_id))
            out.events.append((call_id, now_ms, "ended", plan.end_reason))
        unsettled = (a.billed_tenths - a.settled_tenths) * a.price_musdt
        outcomes.append(PassOutcome(
            call_id, a.billed_tenths, a.charged_musdt + unsettled,
            plan.available_after_musdt + a.held_musdt - unsettled,
            0 if ended else tenths_left(a, plan.available_after_musdt), plan.end_reason,
        ))
    return out


@dataclass(frozen=True)
class Finished:
    call_id: int
    state: str
    end_reason: str
    billed_tenths: int
    refunded_musdt: int


def _row_for_finish(conn: sqlite3.Connection, call_id: int):
    return conn.execute(
        f"SELECT {_MONEY_COLS}, c.state, c.buyer_id, c.seller_id, c.live_ms, s.name"
        " FROM calls c JOIN accounts s ON s.id = c.seller_acct WHERE c.id = ?",
        (call_id,),
    ).fetchone()


@dataclass(frozen=True)
class Pauses:
    """A call's pauses, as the record keeps them: how many, how long in all, and the side
    the current (or last, for an ended call) pause came from."""

    count: int = 0
    paused_ms: int = 0
    paused_by: str | None = None


def auto_refunds_since(conn: sqlite3.Connection, buyer_id: int, since_ms: int) -> int:
    return conn.execute(
        "SELECT COUNT(*) FROM calls WHERE buyer_id = ? AND auto_refunded = 1"
        " AND ended_at_ms > ?", (buyer_id, since_ms)).fetchone()[0]


def finish_call(conn: sqlite3.Connection, call_id: int, state: str, reason: str,
                final_live_ms: int | None, now_ms: int, refund_below_live_ms: int, *,
                seller_side_failed: bool = False, refunds_per_day: int = 0,
                pauses: Pauses | None = None) -> Finished | None:
    """End one call (inside a transaction): record the last segment rounded to the nearest
    6 s, settle from the hold, release the rest, refund an immediate failure in full where
    `auto_refund` allows it. `state` is the final state (ended, declined, missed,
    cancelled). None when the call was already over."""
    row = _row_for_finish(conn, call_id)
    if row is None or row[12] in FINAL_STATES:
        return None
    m = _money(row)
    # The seller earns into the account the call was opened with: `available`, or `pending`
    # while earnings_hold_hours > 0 (run_pass credits the same account).
    buyer_id, seller_acct = row[13], row[16]
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
    for t in range(before.billed_tenths + 1, after.billed_tenths + 1):
        conn.execute("INSERT INTO call_segments (call_id, tenth, at_ms) VALUES (?, ?, ?)",
                     (call_id, t, now_ms))
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
