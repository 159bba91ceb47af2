"""A user's claim of a TXID (POST /api/deposits/claim): the one flow of deposits that reads the
node. It asks the gateway for the transaction, keeps the USDT Transfer logs that pay the
deposit address (rules.deposit_logs), and:

- not in a block yet, or in a block not solidified: 202 `confirming` (a claim is noted; the
  transfer is recorded once final, by the watcher or a later claim), refused at once when no
  log would pay one of this user's intents;
- solidified: records the logs in one transaction (credits.record_transfer_tx) and answers
  200 with the deposit credited to this user, 409 when it was credited before or pays
  someone else's intent (or none).

A transaction paying the claimant's own personal address (address_per_user) is recorded by
deposits/personal.py the same way: 200 when this claim credited it, 202 `below_minimum`
while the address's uncredited total is below deposits.min_usdt, 409 when credited before.

Claims are optional: the watcher credits every final transfer without them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from meterchat.chain.gateway import ChainGateway, ChainUnavailable, TransferLog
from meterchat.core.db import Database, now_ms
from meterchat.core.errors import NotFound, Unavailable
from meterchat.core.units import musdt_to_usdt_str
from meterchat.deposits import credits, personal
from meterchat.deposits import store as deposits
from meterchat.deposits.addresses import PersonalAddress, PersonalAddresses
from meterchat.deposits.intents import preview_owner
from meterchat.deposits.rules import (
    AlreadyCredited,
    TxFailed,
    UnmatchedTransfer,
    deposit_logs,
)
from meterchat.deposits.views import View, deposit_view


@dataclass(frozen=True)
class ClaimAnswer:
    status: int
    deposit: View


async def claim(db: Database, gateway: ChainGateway, usdt_contract: str, deposit_address: str,
                user_id: int, txid: str, addresses: PersonalAddresses | None = None,
                min_musdt: int = 0) -> ClaimAnswer:
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
    mine = _to_own_address(tx.transfers_of(usdt_contract), addresses, user_id)
    if mine:
        if tx.in_block and not tx.succeeded:
            raise TxFailed(f"this transaction failed on chain ({tx.result}); no USDT moved")
        if not (tx.in_block and tx.solidified):
            await db.tx(credits.note_claim_tx, txid, user_id, now_ms())
            return ClaimAnswer(202, {**pending, "amount_usdt": musdt_to_usdt_str(
                sum(t.amount for t, _ in mine))})
        return await _claim_personal(db, mine, tx.block_number or 0,
                                     tx.block_time_ms or now_ms(), min_musdt)
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


def _to_own_address(transfers: Sequence[TransferLog], addresses: PersonalAddresses | None,
                    user_id: int) -> list[tuple[TransferLog, PersonalAddress]]:
    """The logs paying this user's own address (not from a deposit address: a sweep)."""
    if not addresses:
        return []
    out = []
    for t in transfers:
        owner = addresses.get(t.to_address)
        if owner is not None and owner.user_id == user_id and t.amount > 0 \
                and t.from_address not in addresses:
            out.append((t, owner))
    return out


async def _claim_personal(db: Database, mine: list[tuple[TransferLog, PersonalAddress]],
                          block_number: int, block_time_ms: int,
                          min_musdt: int) -> ClaimAnswer:
    def record_all(conn: sqlite3.Connection) -> list[personal.PersonalRecorded]:
        at = now_ms()
        return [personal.record_personal_tx(conn, t, owner, block_number, block_time_ms,
                                            "claim", at, min_musdt) for t, owner in mine]

    recorded = await db.tx(record_all)
    credited = [r for r in recorded if r.fresh and r.deposit_id is not None]
    if credited:
        d = await db.read(deposits.deposit, credited[0].deposit_id or 0)
        if d is not None:
            return ClaimAnswer(200, deposit_view(d))
    if all(r.deposit_id is not None for r in recorded):
        raise AlreadyCredited("this transfer is already credited to your balance")
    last = recorded[-1]
    return ClaimAnswer(202, {
        "txid": last.txid, "status": "below_minimum",
        "amount_usdt": musdt_to_usdt_str(sum(r.amount_musdt for r in recorded)),
        "pending_usdt": musdt_to_usdt_str(last.pending_musdt),
        "min_usdt": musdt_to_usdt_str(min_musdt)})


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

