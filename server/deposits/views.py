"""The JSON shapes of deposits (API.md "Wallet", "Operator"): a deposit as its user and as the
operator sees it, an intent with its QR code, a user's deposits and intents, the operator's
list, and a user's ledger entries (each posting, or with a call's lines as one). Amounts are strings (USDT and tokens), times `iso_ms`."""

from __future__ import annotations

import sqlite3
from typing import Any

from meterchat.core.units import iso_ms, musdt_to_tokens_str, musdt_to_usdt_str
from meterchat.deposits import intents
from meterchat.deposits import store as deposits
from meterchat.deposits.rules import Intent
from meterchat.money import ledger

View = dict[str, Any]


def deposit_view(d: deposits.Deposit, admin: bool = False) -> View:
    out: View = {
        "id": str(d.id),
        "txid": d.txid,
        "status": d.status,
        "amount_usdt": musdt_to_usdt_str(d.amount_musdt),
        "tokens": musdt_to_tokens_str(d.amount_musdt),
        "block": d.block_number,
        "block_time": iso_ms(d.block_time_ms),
        "credited_at": iso_ms(d.credited_at_ms),
    }
    if admin:
        out.update({
            "log_index": d.log_index,
            "from_address": d.from_address,
            "to_address": d.to_address,
            "contract": d.contract,
            "user_id": str(d.user_id) if d.user_id is not None else None,
            "intent_id": str(d.intent_id) if d.intent_id is not None else None,
            "source": d.source,
            "recorded_at": iso_ms(d.recorded_at_ms),
        })
    return out


def intent_view(i: Intent, now: int) -> View:
    return {
        "id": str(i.id),
        "address": i.address,
        "amount_usdt": musdt_to_usdt_str(i.amount_musdt),
        "tokens": musdt_to_tokens_str(i.amount_musdt),
        "usdt_contract": i.usdt_contract,
        "status": i.status(now),
        "created_at": iso_ms(i.created_at_ms),
        "expires_at": iso_ms(i.expires_at_ms),
    }


def paid_intent_view(i: Intent, d: deposits.Deposit | None, now: int) -> View:
    """An intent with, once paid, the receipt of the transfer that paid it (`paid`: its
    TXID, when it was credited, the amount): the wallet shows that instead of the address."""
    out = intent_view(i, now)
    if d is not None:
        out["paid"] = {"txid": d.txid, "credited_at": iso_ms(d.credited_at_ms),
                       "amount_usdt": musdt_to_usdt_str(d.amount_musdt),
                       "tokens": musdt_to_tokens_str(d.amount_musdt)}
    return out


def qr_svg_data_uri(address: str) -> str:
    """The deposit address as a QR code: the plain address, the one form every TRON wallet
    reads from a scan (README "Top-up QR code"); the exact amount is typed, so it is shown
    next to the code with a copy button."""
    import segno  # the QR code library, for deposit pages alone

    uri: str = segno.make(address, error="m").svg_data_uri(scale=4, border=2)
    return uri


def user_deposits(conn: sqlite3.Connection, user_id: int, now: int) -> View:
    """GET /api/deposits: claims still confirming, then credited deposits; the intents,
    each paid one with its receipt (`paid`)."""
    confirming = [{"txid": c.txid, "status": "confirming", "claimed_at": iso_ms(c.claimed_at_ms)}
                  for c in deposits.pending_claims(conn, user_id)]
    credited = [deposit_view(d) for d in deposits.of_user(conn, user_id)]
    return {"deposits": confirming + credited,
            "intents": [paid_intent_view(i, deposits.deposit(conn, i.paid_deposit_id)
                                         if i.paid_deposit_id else None, now)
                        for i in intents.user_intents(conn, user_id)]}


def admin_deposits(conn: sqlite3.Connection, status: str | None) -> list[View]:
    return [deposit_view(d, admin=True) for d in deposits.listed(conn, status)]


def ledger_view(conn: sqlite3.Connection, user_id: int) -> list[View]:
    return [
        {
            "id": str(e["id"]),
            "at": iso_ms(e["at_ms"]),
            "kind": e["kind"],
            "bucket": e["bucket"],
            "amount": musdt_to_tokens_str(e["amount_musdt"]),
            "balance_after": musdt_to_tokens_str(e["balance_after_musdt"]),
            "ref": e["ref"],
        }
        for e in ledger.user_entries(conn, user_id)
    ]


# How many of a user's newest postings the grouped ledger reads (a long call is a few
# lines a minute; 200 groups of them fit many times over).
GROUPED_POSTINGS = 20_000
GROUPED_LINES = 200


def ledger_view_grouped(conn: sqlite3.Connection, user_id: int) -> list[View]:
    """The ledger with each call's lines (hold, settle, release, refund, tip: ref
    `call:<id>`) as one line, newest first: its net amount over the buckets (a hold and its
    release cancel out), and as balance after the sum, over the buckets the call moved, of
    each one's balance after the call's newest line (a buyer's available plus held: what
    they hold in all, so a hold never shows as the balance dropping mid-call). Other lines
    as in ledger_view."""
    entries = ledger.user_entries(conn, user_id, GROUPED_POSTINGS)
    out: list[View] = []
    groups: dict[str, View] = {}
    members: dict[str, list[int]] = {}
    for i, e in enumerate(entries):  # newest first
        ref = e["ref"] or ""
        if not ref.startswith("call:"):
            out.append({"id": str(e["id"]), "at": iso_ms(e["at_ms"]), "kind": e["kind"],
                        "bucket": e["bucket"], "amount": musdt_to_tokens_str(e["amount_musdt"]),
                        "balance_after": musdt_to_tokens_str(e["balance_after_musdt"]),
                        "ref": e["ref"]})
            continue
        if ref not in groups:
            groups[ref] = {"id": ref, "at": iso_ms(e["at_ms"]), "kind": "call", "ref": ref,
                           "call_id": ref.split(":", 1)[1], "_amount": 0, "_first": i}
            members[ref] = []
            out.append(groups[ref])
        groups[ref]["_amount"] += e["amount_musdt"]
        groups[ref]["started_at"] = iso_ms(e["at_ms"])
        members[ref].append(i)
    for ref, g in groups.items():
        buckets = sorted({entries[i]["bucket"] for i in members[ref]})
        after = 0
        for bucket in buckets:
            after += next((x["balance_after_musdt"] for x in entries[g["_first"]:]
                           if x["bucket"] == bucket), 0)
        g["bucket"] = "available" if "available" in buckets else buckets[0]
        g["buckets"] = buckets
        g["amount"] = musdt_to_tokens_str(g.pop("_amount"))
        g["balance_after"] = musdt_to_tokens_str(after)
        g["line_count"] = len(members[ref])
        g["kinds"] = sorted({entries[i]["kind"] for i in members[ref]})
        del g["_first"]
    return out[:GROUPED_LINES]
