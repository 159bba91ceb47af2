"""USDT deposits: intents with a unique µUSDT amount, claims by TXID, recording and crediting
Transfer logs (by claim, by the watcher, or by an operator), and the views of them.

A TXID is a hint, never proof of who paid: a transfer is credited only to the owner of the
intent it matches (exact amount in µUSDT, deposit address, USDT contract, block time within
the intent's life + 24 h), and only once: `deposits` is UNIQUE on (txid, log_index) and the
row is written in the same SQLite transaction as the ledger posting (idempotency key
`deposit:<txid>:<log_index>`). 1 USDT = 100 tokens exactly: µUSDT in = µUSDT credited.

The rules (txid syntax, amount, suffix choice, matching, which logs of a transaction count)
are pure functions; the `*_tx` functions run inside `Database.tx`.
"""

from __future__ import annotations

import re
import secrets
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

import segno

from meterchat.chain.gateway import RESULT_SUCCESS, ChainTx, ChainUnavailable, TransferLog
from meterchat.core.db import now_ms
from meterchat.core.errors import (
    ApiError,
    BadRequest,
    Conflict,
    NotFound,
    TooManyRequests,
    Unavailable,
    Unprocessable,
)
from meterchat.core.units import (
    MUSDT_PER_USDT,
    AmountError,
    musdt_to_tokens_str,
    musdt_to_usdt_str,
    usdt_to_musdt,
)
from meterchat.economy import bonuses
from meterchat.money import ledger

TXID_RE = re.compile(r"^[0-9a-f]{64}$")
REUSE_AFTER_EXPIRY_MS = 24 * 3600 * 1000
# Suffixes are 1..99,999 µUSDT (at most 0.099999 USDT on top of the asked amount, credited
# like the rest). Asked amounts have at most 2 decimals (10,000 µUSDT steps), so the ranges of
# neighbouring amounts overlap; that is harmless: what must be unique is the exact amount, and
# a new one is checked against every reserved intent in its range, whatever it asked for.
SUFFIX_MAX = 99_999
MAX_DEPOSIT_MUSDT = 1_000_000 * MUSDT_PER_USDT
WATCHER_CURSOR = "deposits"


class TxFailed(Unprocessable):
    code = "tx_failed"


class NotUsdt(Unprocessable):
    code = "not_usdt"


class WrongRecipient(Unprocessable):
    code = "wrong_recipient"


class AlreadyCredited(Conflict):
    code = "already_credited"


class UnmatchedTransfer(Conflict):
    code = "unmatched"


@dataclass(frozen=True)
class Intent:
    id: int
    user_id: int
    amount_musdt: int
    address: str
    usdt_contract: str
    created_at_ms: int
    expires_at_ms: int
    reserved_until_ms: int
    paid_deposit_id: int | None


@dataclass(frozen=True)
class Recorded:
    """A deposits row after recording a transfer; `fresh` when this call wrote it."""

    id: int
    txid: str
    log_index: int
    status: str
    user_id: int | None
    amount_musdt: int
    fresh: bool


def iso_ms(ms: int | None) -> str | None:
    if ms is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


# -- pure rules


def parse_txid(value: Any) -> str:
    """A TXID as 64 hex characters (an optional 0x and surrounding spaces are forgiven)."""
    if not isinstance(value, str):
        raise BadRequest("txid must be a string of 64 hex characters", "invalid_txid")
    text = value.strip().lower().removeprefix("0x")
    if not TXID_RE.match(text):
        raise BadRequest("txid must be 64 hex characters (the transaction hash)", "invalid_txid")
    return text


def requested_musdt(value: Any, min_musdt: int) -> int:
    """The asked top-up in µUSDT: a decimal string with at most 2 decimals, >= min."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise Unprocessable('usdt must be a decimal string like "10"', "invalid_amount")
    try:
        amount = usdt_to_musdt(str(value).strip())
    except AmountError:
        raise Unprocessable('usdt must be a decimal string like "10"', "invalid_amount") from None
    if amount % 10_000:
        raise Unprocessable("usdt allows at most 2 decimals (the server adds the exact "
                            "suffix)", "invalid_amount")
    if amount < min_musdt:
        raise Unprocessable(f"the smallest top-up is {musdt_to_usdt_str(min_musdt)} USDT",
                            "amount_too_small")
    if amount > MAX_DEPOSIT_MUSDT:
        raise Unprocessable(f"the largest top-up is {musdt_to_usdt_str(MAX_DEPOSIT_MUSDT)} "
                            "USDT", "amount_too_large")
    return amount


def pick_suffix(used: set[int], choose=None) -> int | None:
    """A free µUSDT suffix in 1..SUFFIX_MAX, chosen at random (so amounts are not guessable
    from one another); None when all are taken. `choose` picks from the list of free ones
    (tests pass min); by default a few random draws avoid building that list."""
    if choose is None:
        if len(used) < SUFFIX_MAX // 2:
            for _ in range(64):  # each draw is free with odds above 1/2
                s = secrets.randbelow(SUFFIX_MAX) + 1
                if s not in used:
                    return s
        choose = secrets.choice
    free = [s for s in range(1, SUFFIX_MAX + 1) if s not in used]
    return choose(free) if free else None


def too_many_open(open_count: int, first_expiry_ms: int | None, max_open: int,
                  at_ms: int) -> TooManyRequests | None:
    """The refusal of one more intent to a user who holds `max_open` open ones (the wait is
    until the first of them expires), or None."""
    if open_count < max_open:
        return None
    wait_s = max(1, -(-((first_expiry_ms or at_ms) - at_ms) // 1000))
    return TooManyRequests(
        f"you have {open_count} open top-ups; pay one of them, or ask again when one "
        "expires", "too_many_intents", headers={"Retry-After": str(wait_s)})


def intent_matches(intent: Intent, t: TransferLog, block_time_ms: int) -> bool:
    """Does this transfer pay this intent? Amount in µUSDT, address, contract, and a block
    time inside the intent's reserved life."""
    return (
        intent.paid_deposit_id is None
        and t.amount == intent.amount_musdt
        and t.to_address == intent.address
        and t.contract == intent.usdt_contract
        and intent.created_at_ms <= block_time_ms <= intent.reserved_until_ms
    )


def match_intent(intents: list[Intent], t: TransferLog, block_time_ms: int) -> Intent | None:
    found = [i for i in intents if intent_matches(i, t, block_time_ms)]
    # Amounts are unique among live intents, so at most one matches; the oldest wins if
    # data were ever inconsistent.
    return min(found, key=lambda i: i.id) if found else None


def deposit_logs(tx: ChainTx, usdt_contract: str, deposit_address: str) -> tuple[TransferLog, ...]:
    """The USDT Transfer logs of a transaction that pay the deposit address; each failed
    check raises its own error. Logs, not call data: a failed call or a fake token never
    counts."""
    if tx.result != RESULT_SUCCESS:
        raise TxFailed(f"this transaction failed on chain ({tx.result}); no USDT moved")
    usdt = tx.transfers_of(usdt_contract)
    if not usdt:
        what = "a TRX transfer" if tx.contract_type == "TransferContract" else \
            "not a USDT (TRC20) transfer"
        raise NotUsdt(f"this transaction is {what}; send USDT on TRON (TRC20)")
    ours = tuple(t for t in usdt if t.to_address == deposit_address and t.amount > 0)
    if not ours:
        raise WrongRecipient("this USDT transfer did not go to the platform's deposit address")
    return ours


# -- database


def _intent(row: sqlite3.Row | tuple) -> Intent:
    return Intent(*row)


_INTENT_COLS = ("id, user_id, amount_musdt, address, usdt_contract, created_at_ms, "
                "expires_at_ms, reserved_until_ms, paid_deposit_id")


def create_intent_tx(conn: sqlite3.Connection, user_id: int, base_musdt: int, address: str,
                     usdt_contract: str, ttl_ms: int, at_ms: int, choose=None,
                     max_open: int | None = None) -> Intent:
    """Hand out base + a suffix that no intent still reserved uses; refused (429
    too_many_intents) when the user already holds `max_open` open intents."""
    if max_open is not None:
        count, first_expiry = conn.execute(
            "SELECT COUNT(*), MIN(expires_at_ms) FROM deposit_intents WHERE user_id = ?"
            " AND paid_deposit_id IS NULL AND expires_at_ms > ?", (user_id, at_ms),
        ).fetchone()
        refusal = too_many_open(count, first_expiry, max_open, at_ms)
        if refusal is not None:
            raise refusal
    used = {
        r[0] - base_musdt
        for r in conn.execute(
            "SELECT amount_musdt FROM deposit_intents WHERE amount_musdt BETWEEN ? AND ?"
            " AND reserved_until_ms >= ? AND address = ?",
            (base_musdt + 1, base_musdt + SUFFIX_MAX, at_ms, address),
        )
    }
    suffix = pick_suffix(used, choose)
    if suffix is None:
        raise Conflict("too many open top-ups of this amount; ask for a slightly different "
                       "amount", "no_free_amount")
    expires = at_ms + ttl_ms
    cur = conn.execute(
        "INSERT INTO deposit_intents (user_id, amount_musdt, address, usdt_contract,"
        " created_at_ms, expires_at_ms, reserved_until_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (user_id, base_musdt + suffix, address, usdt_contract, at_ms, expires,
         expires + REUSE_AFTER_EXPIRY_MS),
    )
    return Intent(cur.lastrowid, user_id, base_musdt + suffix, address, usdt_contract, at_ms,
                  expires, expires + REUSE_AFTER_EXPIRY_MS, None)


def _candidates(conn: sqlite3.Connection, t: TransferLog) -> list[Intent]:
    return [
        _intent(r) for r in conn.execute(
            f"SELECT {_INTENT_COLS} FROM deposit_intents WHERE amount_musdt = ?"
            " AND paid_deposit_id IS NULL AND address = ?",
            (t.amount, t.to_address),
        )
    ]


def _recorded(row: sqlite3.Row | tuple, fresh: bool) -> Recorded:
    return Recorded(row[0], row[1], row[2], row[3], row[4], row[5], fresh)


def _credit(conn: sqlite3.Connection, t: TransferLog, user_id: int) -> int:
    result = ledger.transfer(
        conn, ledger.CHAIN_DEPOSITS, ledger.user_account(user_id), t.amount, "deposit",
        idem_key=f"deposit:{t.txid}:{t.log_index}", ref=f"{t.txid}:{t.log_index}",
    )
    # A top-up bonus (tiers, promotions) in the same database transaction as the credit.
    bonuses.grant_deposit_bonus_tx(conn, user_id, t.amount, f"{t.txid}:{t.log_index}",
                                   now_ms())
    return result.tx_id


def record_transfer_tx(conn: sqlite3.Connection, t: TransferLog, block_number: int,
                       block_time_ms: int, source: str, at_ms: int) -> Recorded:
    """Record one Transfer log to the deposit address, crediting the intent it matches.
    Idempotent: a (txid, log_index) already recorded is returned as it is."""
    seen = conn.execute(
        "SELECT id, txid, log_index, status, user_id, amount_musdt FROM deposits"
        " WHERE txid = ? AND log_index = ?", (t.txid, t.log_index),
    ).fetchone()
    if seen is not None:
        return _recorded(seen, False)
    intent = match_intent(_candidates(conn, t), t, block_time_ms)
    cur = conn.execute(
        "INSERT INTO deposits (txid, log_index, block_number, block_time_ms, from_address,"
        " to_address, contract, amount_musdt, status, source, recorded_at_ms)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'unmatched', ?, ?)",
        (t.txid, t.log_index, block_number, block_time_ms, t.from_address, t.to_address,
         t.contract, t.amount, source, at_ms),
    )
    deposit_id = cur.lastrowid
    conn.execute("DELETE FROM deposit_claims WHERE txid = ?", (t.txid,))
    if intent is None:
        return Recorded(deposit_id, t.txid, t.log_index, "unmatched", None, t.amount, True)
    tx_id = _credit(conn, t, intent.user_id)
    conn.execute(
        "UPDATE deposits SET status = 'credited', user_id = ?, intent_id = ?, ledger_tx_id = ?,"
        " credited_at_ms = ? WHERE id = ?",
        (intent.user_id, intent.id, tx_id, at_ms, deposit_id),
    )
    conn.execute("UPDATE deposit_intents SET paid_deposit_id = ? WHERE id = ?",
                 (deposit_id, intent.id))
    return Recorded(deposit_id, t.txid, t.log_index, "credited", intent.user_id, t.amount, True)


def record_block_tx(conn: sqlite3.Connection, block_number: int, block_time_ms: int | None,
                    transfers: tuple[TransferLog, ...], at_ms: int) -> list[Recorded]:
    """Record a whole solidified block and move the watcher's cursor to it, in one
    transaction: the cursor never passes a block that was not recorded whole."""
    row = conn.execute("SELECT block_number FROM chain_cursor WHERE name = ?",
                       (WATCHER_CURSOR,)).fetchone()
    if row is not None and row[0] >= block_number:
        return []  # recorded before (another pass got here first)
    out = [
        record_transfer_tx(conn, t, block_number, block_time_ms or at_ms, "watcher", at_ms)
        for t in transfers
    ]
    set_cursor_tx(conn, block_number, at_ms)
    return out


def set_cursor_tx(conn: sqlite3.Connection, block_number: int, at_ms: int) -> None:
    conn.execute(
        "INSERT INTO chain_cursor VALUES (?, ?, ?) ON CONFLICT (name)"
        " DO UPDATE SET block_number = excluded.block_number,"
        " updated_at_ms = excluded.updated_at_ms",
        (WATCHER_CURSOR, block_number, at_ms),
    )


def cursor(conn: sqlite3.Connection) -> int | None:
    row = conn.execute("SELECT block_number FROM chain_cursor WHERE name = ?",
                       (WATCHER_CURSOR,)).fetchone()
    return row[0] if row else None


def recorded_of_txid(conn: sqlite3.Connection, txid: str) -> list[Recorded]:
    return [
        _recorded(r, False) for r in conn.execute(
            "SELECT id, txid, log_index, status, user_id, amount_musdt FROM deposits"
            " WHERE txid = ? ORDER BY log_index", (txid,),
        )
    ]


def note_claim_tx(conn: sqlite3.Connection, txid: str, user_id: int, at_ms: int) -> None:
    conn.execute("INSERT OR IGNORE INTO deposit_claims VALUES (?, ?, ?)", (txid, user_id, at_ms))


def preview_owner(conn: sqlite3.Connection, t: TransferLog, block_time_ms: int) -> int | None:
    """Whose intent would this transfer pay (before it is final)?"""
    intent = match_intent(_candidates(conn, t), t, block_time_ms)
    return intent.user_id if intent else None


def assign_tx(conn: sqlite3.Connection, txid: str, log_index: int | None, user_id: int,
              admin_id: int, at_ms: int) -> dict:
    """An operator credits an unmatched transfer to a user."""
    rows = conn.execute(
        "SELECT id, log_index, status, from_address, to_address, contract, amount_musdt,"
        " block_number, block_time_ms FROM deposits WHERE txid = ? ORDER BY log_index",
        (txid,),
    ).fetchall()
    if log_index is not None:
        rows = [r for r in rows if r[1] == log_index]
    if not rows:
        raise NotFound("no recorded deposit with this TXID", "deposit_not_found")
    unmatched = [r for r in rows if r[2] == "unmatched"]
    if not unmatched:
        raise AlreadyCredited("this transfer is already credited")
    if len(unmatched) > 1:
        raise Unprocessable("this transaction has several unmatched transfers; give log_index",
                            "log_index_required")
    r = unmatched[0]
    user = conn.execute("SELECT role FROM users WHERE id = ?", (user_id,)).fetchone()
    if user is None:
        raise NotFound("no such user", "user_not_found")
    t = TransferLog(txid, r[1], r[5], r[3], r[4], r[6])
    tx_id = _credit(conn, t, user_id)
    conn.execute(
        "UPDATE deposits SET status = 'credited', user_id = ?, ledger_tx_id = ?,"
        " credited_at_ms = ?, source = 'operator' WHERE id = ?",
        (user_id, tx_id, at_ms, r[0]),
    )
    conn.execute(
        "INSERT INTO audit_log (at_ms, actor_user_id, action, target, detail)"
        " VALUES (?, ?, 'deposit.assign', ?, ?)",
        (at_ms, admin_id, f"{txid}:{r[1]}", f"user {user_id}, {r[6]} µUSDT"),
    )
    return deposit_row(conn, r[0], admin=True)


# -- views


_DEPOSIT_COLS = ("id, txid, log_index, block_number, block_time_ms, from_address, to_address,"
                 " contract, amount_musdt, status, user_id, intent_id, source, recorded_at_ms,"
                 " credited_at_ms")


def _deposit_view(r: sqlite3.Row | tuple, admin: bool) -> dict:
    out = {
        "id": str(r[0]),
        "txid": r[1],
        "status": r[9],
        "amount_usdt": musdt_to_usdt_str(r[8]),
        "tokens": musdt_to_tokens_str(r[8]),
        "block": r[3],
        "block_time": iso_ms(r[4]),
        "credited_at": iso_ms(r[14]),
    }
    if admin:
        out.update({
            "log_index": r[2],
            "from_address": r[5],
            "to_address": r[6],
            "contract": r[7],
            "user_id": str(r[10]) if r[10] is not None else None,
            "intent_id": str(r[11]) if r[11] is not None else None,
            "source": r[12],
            "recorded_at": iso_ms(r[13]),
        })
    return out


def deposit_row(conn: sqlite3.Connection, deposit_id: int, admin: bool = False) -> dict:
    r = conn.execute(f"SELECT {_DEPOSIT_COLS} FROM deposits WHERE id = ?",
                     (deposit_id,)).fetchone()
    return _deposit_view(r, admin)


def intent_view(i: Intent, now: int) -> dict:
    status = "paid" if i.paid_deposit_id else ("open" if now < i.expires_at_ms else "expired")
    return {
        "id": str(i.id),
        "address": i.address,
        "amount_usdt": musdt_to_usdt_str(i.amount_musdt),
        "tokens": musdt_to_tokens_str(i.amount_musdt),
        "usdt_contract": i.usdt_contract,
        "status": status,
        "created_at": iso_ms(i.created_at_ms),
        "expires_at": iso_ms(i.expires_at_ms),
    }


def qr_svg_data_uri(address: str) -> str:
    """The deposit address as a QR code (wallets scan the address; the exact amount is
    typed, so it is shown next to the code)."""
    return segno.make(address, error="m").svg_data_uri(scale=4, border=2)


def user_deposits(conn: sqlite3.Connection, user_id: int, now: int) -> dict:
    deposits = [
        _deposit_view(r, False) for r in conn.execute(
            f"SELECT {_DEPOSIT_COLS} FROM deposits WHERE user_id = ? ORDER BY id DESC LIMIT 200",
            (user_id,),
        )
    ]
    confirming = [
        {"txid": r[0], "status": "confirming", "claimed_at": iso_ms(r[1])}
        for r in conn.execute(
            "SELECT txid, claimed_at_ms FROM deposit_claims WHERE user_id = ?"
            " ORDER BY claimed_at_ms DESC LIMIT 50", (user_id,),
        )
    ]
    intents = [
        intent_view(_intent(r), now) for r in conn.execute(
            f"SELECT {_INTENT_COLS} FROM deposit_intents WHERE user_id = ?"
            " ORDER BY id DESC LIMIT 50", (user_id,),
        )
    ]
    return {"deposits": confirming + deposits, "intents": intents}


def admin_deposits(conn: sqlite3.Connection, status: str | None) -> list[dict]:
    if status is None:
        rows = conn.execute(f"SELECT {_DEPOSIT_COLS} FROM deposits ORDER BY id DESC LIMIT 500")
    else:
        rows = conn.execute(
            f"SELECT {_DEPOSIT_COLS} FROM deposits WHERE status = ? ORDER BY id DESC LIMIT 500",
            (status,),
        )
    return [_deposit_view(r, True) for r in rows]


def ledger_view(conn: sqlite3.Connection, user_id: int) -> list[dict]:
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


# -- the claim, I/O at this edge


@dataclass(frozen=True)
class ClaimAnswer:
    status: int
    deposit: dict


async def claim(db, gateway, usdt_contract: str, deposit_address: str, user_id: int,
                txid_value: Any) -> ClaimAnswer:
    txid = parse_txid(txid_value)
    seen = await db.read(recorded_of_txid, txid)
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
    pending = {"txid": txid, "status": "confirming"}
    if not tx.in_block:
        await db.tx(note_claim_tx, txid, user_id, now_ms())
        return ClaimAnswer(202, pending)
    logs = deposit_logs(tx, usdt_contract, deposit_address)
    block_time = tx.block_time_ms or now_ms()
    if not tx.solidified:
        owners = [await db.read(preview_owner, t, block_time) for t in logs]
        if user_id not in owners:
            raise _unmatched(logs)
        await db.tx(note_claim_tx, txid, user_id, now_ms())
        return ClaimAnswer(202, {**pending, "amount_usdt": musdt_to_usdt_str(
            sum(t.amount for t, o in zip(logs, owners, strict=True) if o == user_id))})

    def record_all(conn: sqlite3.Connection) -> list[Recorded]:
        at = now_ms()
        return [record_transfer_tx(conn, t, tx.block_number or 0, block_time, "claim", at)
                for t in logs]

    return await _answer(db, await db.tx(record_all), user_id)


def _unmatched(logs: tuple[TransferLog, ...] | list[Recorded]) -> ApiError:
    return UnmatchedTransfer(
        "this transfer matches none of your top-ups: the amount must be exact (with its "
        "suffix) and sent after you asked for it; the operator can assign unmatched transfers"
    )


async def _answer(db, recorded: list[Recorded], user_id: int) -> ClaimAnswer:
    mine = [r for r in recorded if r.status == "credited" and r.user_id == user_id]
    if not mine:
        raise _unmatched(recorded)
    fresh = [r for r in mine if r.fresh]
    if not fresh:
        raise AlreadyCredited("this transfer is already credited to your balance")
    view = await db.read(deposit_row, fresh[0].id)
    return ClaimAnswer(200, view)
