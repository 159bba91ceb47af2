"""A user's claim of a TXID (POST /api/deposits/claim): the one flow of deposits that reads the
node. It asks the gateway for the transaction, keeps the USDT Transfer logs that pay the
deposit address (rules.deposit_logs), and:

- not in a block yet, or in a block not solidified: 202 `confirming` (a claim is noted; the
  transfer is recorded once final, by the watcher or a later claim), refused at once when no
  log would pay one of this user's intents;
- solidified: records the logs in one transaction (credits.record_transfer_tx) and answers
  200 with the deposit credited to this user, 409 when it was credited before or pays
  someone else's intent (or none).

Claims are optional: the watcher credits every final transfer without them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from meterchat.chain.gateway import ChainGateway, ChainUnavailable
from meterchat.core.db import Database, now_ms
from meterchat.core.errors import NotFound, Unavailable
from meterchat.core.units import musdt_to_usdt_str
from meterchat.deposits import credits
from meterchat.deposits import store as deposits
from meterchat.deposits.intents import preview_owner
from meterchat.deposits.rules import AlreadyCredited, UnmatchedTransfer, deposit_logs
from meterchat.deposits.views import View, deposit_view


@dataclass(frozen=True)
class ClaimAnswer:
    status: int
    deposit: View


async def claim(db: Database, gateway: ChainGateway, usdt_contract: str, deposit_address: str,
                user_id: int, txid: str) -> ClaimAnswer:
    """Claim a (well-formed) TXID for this user."""
    seen = await db.read(credits.recorded_of_txid, txid)
    if seen:
        return await _answer(db, seen, user_id)
    try:
        tx = await gateway.get_transaction(txid)
    except ChainUnavailable as exc:
        raise Unavailable("the TRON node is not answering; try again in a minute",
                          "chain_unavailable") from exc
    if tx is None:
        raise NotFound("no transaction with this TXID on chain (if you just sent it, wait a "
                       "few seconds and try again)", "tx_not_found")
    pending: View = {"txid": txid, "status": "confirming"}
    if not tx.in_block:
        await db.tx(credits.note_claim_tx, txid, user_id, now_ms())
        return ClaimAnswer(202, pending)
    logs = deposit_logs(tx, usdt_contract, deposit_address)
    block_time = tx.block_time_ms or now_ms()
    if not tx.solidified:
        owners = [await db.read(preview_owner, t, block_time) for t in logs]
        if user_id not in owners:
            raise _unmatched()
        await db.tx(credits.note_claim_tx, txid, user_id, now_ms())
        return ClaimAnswer(202, {**pending, "amount_usdt": musdt_to_usdt_str(
            sum(t.amount for t, o in zip(logs, owners, strict=True) if o == user_id))})
    block_number = tx.block_number or 0

    def record_all(conn: sqlite3.Connection) -> list[credits.Recorded]:
        at = now_ms()
        return [credits.record_transfer_tx(conn, t, block_number, block_time, "claim", at)
                for t in logs]

    return await _answer(db, await db.tx(record_all), user_id)


def _unmatched() -> UnmatchedTransfer:
    return UnmatchedTransfer(
        "this transfer matches none of your top-ups: the amount must be exact (with its "
        "suffix) and sent after you asked for it; the operator can assign unmatched transfers"
    )


async def _answer(db: Database, recorded: Sequence[credits.Recorded],
                  user_id: int) -> ClaimAnswer:
    mine = [r for r in recorded if r.status == "credited" and r.user_id == user_id]
    if not mine:
        raise _unmatched()
    fresh = [r for r in mine if r.fresh]
    if not fresh:
        raise AlreadyCredited("this transfer is already credited to your balance")
    d = await db.read(deposits.deposit, fresh[0].id)
    if d is None:  # recorded in a transaction that committed: never
        raise NotFound("no recorded deposit with this TXID", "deposit_not_found")
    return ClaimAnswer(200, deposit_view(d))

