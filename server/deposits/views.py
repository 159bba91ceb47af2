"""The JSON shapes of deposits (API.md "Wallet", "Operator"): a deposit as its user and as the
operator sees it, an intent with its QR code, a user's deposits and intents, the operator's
list, and a user's ledger entries. Amounts are strings (USDT and tokens), times `iso_ms`."""

from __future__ import annotations

import sqlite3
from typing import Any

import segno

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


def qr_svg_data_uri(address: str) -> str:
    """The deposit address as a QR code (wallets scan the address; the exact amount is
    typed, so it is shown next to the code)."""
    uri: str = segno.make(address, error="m").svg_data_uri(scale=4, border=2)
    return uri


def user_deposits(conn: sqlite3.Connection, user_id: int, now: int) -> View:
    """GET /api/deposits: claims still confirming, then credited deposits; the intents."""
    confirming = [{"txid": c.txid, "status": "confirming", "claimed_at": iso_ms(c.claimed_at_ms)}
                  for c in deposits.pending_claims(conn, user_id)]
    credited = [deposit_view(d) for d in deposits.of_user(conn, user_id)]
    return {"deposits": confirming + credited,
            "intents": [intent_view(i, now) for i in intents.user_intents(conn, user_id)]}


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
