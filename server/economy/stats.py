"""Seller statistics: earnings per UTC day, week and month, calls, minutes and busiest hours,
the top supporters, the earnings chart (a standalone SVG), and the public supporters board.
Supporters are named, on the board and in the seller's own stats alike, only when they opted
in (show_on_leaderboard), by rank and display name, never with amounts. The per-period sums and the chart are pure
functions at the top, tested alone; the queries below them."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections import defaultdict
from typing import Any, NamedTuple
from xml.sax.saxutils import escape

from meterchat.core.errors import NotFound
from meterchat.core.units import (
    DAY_MS,
    HOUR_MS,
    MUSDT_PER_TOKEN,
    musdt_to_tokens_str,
    tokens_to_musdt,
)
from meterchat.economy.rules import SPEND_KINDS, Entry, day_key, day_start_ms, month_key, week_key
from meterchat.money import ledger

# ---- pure views ------------------------------------------------------------------------


def buckets(entries: list[tuple[int, int]], now_ms: int) -> dict[str, list[dict[str, str]]]:
    """Amounts (at_ms, musdt) summed per UTC day (last 30), week (last 12, from Monday)
    and month (last 12), oldest first, with empty periods as zero."""
    today = dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC).date()
    days = [(today - dt.timedelta(days=i)).isoformat() for i in range(29, -1, -1)]
    monday = today - dt.timedelta(days=today.weekday())
    weeks = [(monday - dt.timedelta(weeks=i)).isoformat() for i in range(11, -1, -1)]
    months = []
    y, m = today.year, today.month
    for _ in range(12):
        months.append(f"{y:04d}-{m:02d}")
        y, m = (y, m - 1) if m > 1 else (y - 1, 12)
    months.reverse()
    sums: dict[str, dict[str, int]] = {"day": defaultdict(int), "week": defaultdict(int),
                                       "month": defaultdict(int)}
    for at, amount in entries:
        sums["day"][day_key(at)] += amount
        sums["week"][week_key(at)] += amount
        sums["month"][month_key(at)] += amount
    return {
        "per_day": [{"day": k, "earned": musdt_to_tokens_str(sums["day"].get(k, 0))}
                    for k in days],
        "per_week": [{"week_of": k, "earned": musdt_to_tokens_str(sums["week"].get(k, 0))}
                     for k in weeks],
        "per_month": [{"month": k, "earned": musdt_to_tokens_str(sums["month"].get(k, 0))}
                      for k in months],
    }


def chart_svg(title: str, bars: list[tuple[str, int]], width: int = 640,
              height: int = 220) -> str:
    """A bar chart as a standalone SVG document (no script, no external resources).
    bars: (label, µUSDT); labels are shown for the first, middle and last bar."""
    pad_l, pad_r, pad_t, pad_b = 56, 12, 28, 28
    plot_w, plot_h = width - pad_l - pad_r, height - pad_t - pad_b
    top = max([v for _, v in bars] + [0])
    scale_top = top if top > 0 else MUSDT_PER_TOKEN
    n = max(len(bars), 1)
    slot = plot_w / n
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}"'
        ' font-family="system-ui, sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="{pad_l}" y="16" font-size="13" fill="#222">{escape(title)}</text>',
        f'<line x1="{pad_l}" y1="{pad_t + plot_h}" x2="{width - pad_r}" y2="{pad_t + plot_h}"'
        ' stroke="#999"/>',
        f'<text x="{pad_l - 6}" y="{pad_t + 4}" text-anchor="end" fill="#555">'
        f"{escape(musdt_to_tokens_str(top))}</text>",
        f'<text x="{pad_l - 6}" y="{pad_t + plot_h}" text-anchor="end" fill="#555">0</text>',
    ]
    for i, (label, value) in enumerate(bars):
        h = 0.0 if value <= 0 else max(1.0, plot_h * value / scale_top)
        x = pad_l + i * slot + slot * 0.15
        y = pad_t + plot_h - h
        out.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}"'
            f' fill="#3b6fd8"><title>{escape(label)}: {escape(musdt_to_tokens_str(value))}'
            " tokens</title></rect>")
        if i in (0, n // 2, n - 1):
            out.append(
                f'<text x="{pad_l + (i + 0.5) * slot:.1f}" y="{height - 8}"'
                f' text-anchor="middle" fill="#555">{escape(label)}</text>')
    out.append("</svg>")
    return "\n".join(out)


# ---- queries ---------------------------------------------------------------------------

class Supporter(NamedTuple):
    buyer_id: int
    display_name: str
    paid_musdt: int


def _earning_entries(conn: sqlite3.Connection, seller_id: int, since_ms: int) -> list[Entry]:
    """Per ledger transaction since a moment, what the seller earned (available + pending)
    from calls and tips (negative for refunds)."""
    accts = [r["id"] for r in conn.execute(
        "SELECT id FROM accounts WHERE name IN (?, ?)",
        (ledger.user_account(seller_id), ledger.user_account(seller_id, "pending")))]
    if not accts:
        return []
    marks = ",".join("?" * len(accts))
    kinds = ",".join("?" * len(SPEND_KINDS))
    return [Entry(r["at_ms"], r["ref"], r["kind"], r["musdt"]) for r in conn.execute(
        f"SELECT t.created_at_ms AS at_ms, t.ref, t.kind, SUM(p.amount_musdt) AS musdt"
        f" FROM postings p JOIN ledger_tx t ON t.id = p.tx_id WHERE p.account_id IN ({marks})"
        f" AND t.kind IN ({kinds}) AND t.created_at_ms >= ? GROUP BY t.id",
        (*accts, *SPEND_KINDS, since_ms))]


def supporter_totals(conn: sqlite3.Connection, seller_id: int) -> list[Supporter]:
    """Buyers by what they paid the seller for calls and tips, biggest first (banned users
    left out)."""
    rows = conn.execute(
        "SELECT b AS buyer_id, u.display_name, SUM(amt) AS total FROM ("
        " SELECT buyer_id AS b, charged_musdt AS amt FROM calls WHERE seller_id = ?"
        " UNION ALL SELECT buyer_id, amount_musdt FROM tips WHERE seller_id = ?)"
        " JOIN users u ON u.id = b WHERE u.banned_at_ms IS NULL"
        " GROUP BY b HAVING total > 0 ORDER BY total DESC, b",
        (seller_id, seller_id)).fetchall()
    return [Supporter(r["buyer_id"], r["display_name"], r["total"]) for r in rows]


def _tenths(tenths: int) -> str:
    """Tenths of a minute as "12.3"."""
    return f"{tenths // 10}.{tenths % 10}"


def seller_stats(conn: sqlite3.Connection, seller_id: int, now_ms: int) -> dict[str, Any]:
    entries = _earning_entries(conn, seller_id, 0)
    view = buckets([(e.at_ms, e.musdt) for e in entries], now_ms)
    total = sum(e.musdt for e in entries)
    tips_total = sum(e.musdt for e in entries if e.kind == "tip")
    calls = conn.execute(
        "SELECT COUNT(*) AS n, COALESCE(SUM(billed_tenths), 0) AS tenths,"
        " AVG(live_ms) AS avg_live_ms FROM calls"
        " WHERE seller_id = ? AND state = 'ended' AND live_ms > 0 AND refunded_musdt = 0",
        (seller_id,)).fetchone()
    hours = {r["hour"]: r["tenths"] for r in conn.execute(
        f"SELECT (s.at_ms / {HOUR_MS}) % 24 AS hour, COUNT(*) AS tenths FROM call_segments s"
        " JOIN calls c ON c.id = s.call_id WHERE c.seller_id = ? AND c.refunded_musdt = 0"
        " GROUP BY 1", (seller_id,))}
    shown, hidden = _board(conn, seller_id, 10)
    return {
        **view,
        "earned_total": musdt_to_tokens_str(total),
        "tips_total": musdt_to_tokens_str(tips_total),
        "calls": calls["n"],
        "minutes_billed": _tenths(calls["tenths"]),
        "average_call_seconds": int((calls["avg_live_ms"] or 0) // 1000),
        # The rule the buyer is told (wallet, terms): named only after opting in, display
        # name and rank only, never amounts; the public board shows the same list.
        "top_supporters": shown,
        "supporters_not_shown": hidden,
        "busiest_hours": [{"hour_utc": h, "minutes": _tenths(hours.get(h, 0))}
                          for h in range(24)],
    }


def stats_chart(conn: sqlite3.Connection, seller_id: int, now_ms: int) -> str:
    """The seller's earnings per day over the last 30 days as an SVG bar chart."""
    entries = _earning_entries(conn, seller_id, day_start_ms(now_ms) - 29 * DAY_MS)
    per_day = buckets([(e.at_ms, e.musdt) for e in entries], now_ms)["per_day"]
    bars = [(d["day"][5:], tokens_to_musdt(d["earned"])) for d in per_day]
    return chart_svg("Earnings per day, last 30 days (tokens)", bars)


def _board(conn: sqlite3.Connection, seller_id: int,
           limit: int) -> tuple[list[dict[str, Any]], int]:
    """The supporters who opted in (show_on_leaderboard), by what they paid, as rank and
    display name only; and how many paying supporters did not opt in (a count, no names)."""
    opted_in = {r["user_id"] for r in conn.execute(
        "SELECT user_id FROM buyer_controls WHERE show_on_leaderboard = 1")}
    everyone = supporter_totals(conn, seller_id)
    names = [s.display_name for s in everyone if s.buyer_id in opted_in][:limit]
    hidden = sum(1 for s in everyone if s.buyer_id not in opted_in)
    return [{"rank": i + 1, "display_name": n} for i, n in enumerate(names)], hidden


def supporters_board(conn: sqlite3.Connection, seller_id: int,
                     limit: int = 10) -> list[dict[str, Any]]:
    """The public board: buyers who opted in, display name only, by what they paid."""
    if conn.execute("SELECT 1 FROM sellers WHERE user_id = ?", (seller_id,)).fetchone() is None:
        raise NotFound("no such seller", "seller_not_found")
    return _board(conn, seller_id, limit)[0]
