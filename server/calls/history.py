"""Call history for both sides: a user's calls newest first, a page at a time (`before` an id),
each with the other party, its live time, and what it cost the buyer or earned the seller,
tips and refunds apart. The amounts are read from the ledger itself (the user's postings in
the call's transactions, ref `call:<id>`), so the history always equals the ledger: a hold
and its release cancel out, settled minutes count (after commission for a seller), a tip
counts for the buyer whole and for the seller after the tip commission, an automatic or a
dispute refund comes back to the buyer and out of the seller's earnings. A receipt is one
call's figures and its ledger lines. Reads only; synchronous over a sqlite3 connection."""

from __future__ import annotations

import sqlite3
from typing import Any

from meterchat.calls.store import CallRow, call_json
from meterchat.core.errors import NotFound
from meterchat.core.units import iso_ms, musdt_to_tokens_str

# One page of GET /api/calls: as many as the list answered before it was paged.
PAGE_SIZE = 50
TIP_KINDS = frozenset({"tip"})
REFUND_KINDS = frozenset({"call_refund", "dispute_refund"})

_SELECT = """
SELECT c.*, ub.display_name AS buyer_name, us.display_name AS seller_name
FROM calls c JOIN users ub ON ub.id = c.buyer_id JOIN users us ON us.id = c.seller_id
"""


def _rows(conn: sqlite3.Connection, sql: str, args: tuple[Any, ...]) -> sqlite3.Cursor:
    """A cursor whose rows are read by name, whatever the connection's row factory."""
    cur = conn.cursor()
    cur.row_factory = sqlite3.Row
    return cur.execute(sql, args)


def _ref(call_id: int) -> str:
    return f"call:{call_id}"


def _sums(conn: sqlite3.Connection, user_id: int, call_ids: list[int]
          ) -> dict[int, dict[str, int]]:
    """Per call: the user's net postings in its transactions, as minutes, tips, refunds."""
    out = {cid: {"minutes": 0, "tips": 0, "refunds": 0} for cid in call_ids}
    if not call_ids:
        return out
    marks = ", ".join("?" for _ in call_ids)
    rows = _rows(
        conn, "SELECT t.ref, t.kind, SUM(p.amount_musdt) AS amount FROM ledger_tx t"
        " JOIN postings p ON p.tx_id = t.id JOIN accounts a ON a.id = p.account_id"
        f" WHERE t.ref IN ({marks}) AND a.user_id = ? GROUP BY t.ref, t.kind",
        (*[_ref(c) for c in call_ids], user_id)).fetchall()
    for r in rows:
        part = ("tips" if r["kind"] in TIP_KINDS else
                "refunds" if r["kind"] in REFUND_KINDS else "minutes")
        out[int(r["ref"].split(":", 1)[1])][part] += int(r["amount"])
    return out


def _item(row: sqlite3.Row, user_id: int, sums: dict[str, int]) -> dict[str, Any]:
    call = call_json(CallRow.of(row))
    buyer = row["buyer_id"] == user_id
    tok = musdt_to_tokens_str
    if buyer:
        # What left the buyer: minutes and tips; what came back: refunds.
        minutes, tips, refunds = -sums["minutes"], -sums["tips"], sums["refunds"]
        total = minutes + tips - refunds
        figures = {"cost": tok(minutes), "tips": tok(tips), "refunds": tok(refunds),
                   "total": tok(total)}
    else:
        # What reached the seller after commission; refunds taken back from it.
        minutes, tips, refunds = sums["minutes"], sums["tips"], -sums["refunds"]
        total = minutes + tips - refunds
        figures = {"earned": tok(minutes), "tips": tok(tips), "refunds": tok(refunds),
                   "total": tok(total)}
    other_id, other_name = ((row["seller_id"], row["seller_name"]) if buyer
                            else (row["buyer_id"], row["buyer_name"]))
    return {**call, "role": "buyer" if buyer else "seller",
            "with": {"id": str(other_id), "display_name": other_name},
            "amounts": figures}


def page(conn: sqlite3.Connection, user_id: int, before: int | None,
         limit: int = PAGE_SIZE) -> tuple[list[dict[str, Any]], int | None]:
    """A page of the user's calls (as buyer or seller), newest first, with ids below
    `before`; and the `before` of the next page (None on the last)."""
    rows = _rows(
        conn, _SELECT + " WHERE (c.buyer_id = ? OR c.seller_id = ?) AND c.id < ?"
        " ORDER BY c.id DESC LIMIT ?",
        (user_id, user_id, before if before is not None else 1 << 62, limit + 1)).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    sums = _sums(conn, user_id, [r["id"] for r in rows])
    items = [_item(r, user_id, sums[r["id"]]) for r in rows]
    return items, (rows[-1]["id"] if more and rows else None)


def receipt(conn: sqlite3.Connection, user_id: int, call_id: int) -> dict[str, Any]:
    """One call of the user's with its figures and the user's ledger lines of it (oldest
    first); 404 call_not_found for anybody but its two parties."""
    row = _rows(conn, _SELECT + " WHERE c.id = ?", (call_id,)).fetchone()
    if row is None or user_id not in (row["buyer_id"], row["seller_id"]):
        raise NotFound("no such call of yours", "call_not_found")
    item = _item(row, user_id, _sums(conn, user_id, [call_id])[call_id])
    lines = _rows(
        conn, "SELECT p.id, t.created_at_ms, t.kind, a.name, p.amount_musdt FROM ledger_tx t"
        " JOIN postings p ON p.tx_id = t.id JOIN accounts a ON a.id = p.account_id"
        " WHERE t.ref = ? AND a.user_id = ? ORDER BY p.id", (_ref(call_id), user_id)).fetchall()
    item["lines"] = [{"at": iso_ms(r["created_at_ms"]), "kind": r["kind"],
                      "bucket": r["name"].rsplit(":", 1)[1],
                      "amount": musdt_to_tokens_str(r["amount_musdt"])} for r in lines]
    tips = _rows(conn, "SELECT amount_musdt, seller_musdt, created_at_ms FROM tips"
                 " WHERE call_id = ? ORDER BY id", (call_id,)).fetchall()
    seller = item["role"] == "seller"
    item["tip_list"] = [{"at": iso_ms(t["created_at_ms"]),
                         "amount": musdt_to_tokens_str(t["seller_musdt"] if seller
                                                       else t["amount_musdt"])} for t in tips]
    return item
