"""The pure rules of deposits, no I/O: the TXID syntax, the random µUSDT suffix of an intent,
the refusal of one intent too many, whether a transfer pays an intent, and which Transfer
logs of a transaction count as deposits. Also the room's errors and the `Intent` value.

A TXID is a hint, never proof of who paid: a transfer pays only the intent it matches (exact
amount in µUSDT, deposit address, USDT contract, block time within the intent's life + 24 h).
1 USDT = 100 tokens exactly: µUSDT in = µUSDT credited.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from meterchat.chain.gateway import RESULT_SUCCESS, ChainTx, TransferLog
from meterchat.core.errors import Conflict, TooManyRequests, Unprocessable
from meterchat.core.units import DAY_MS, MUSDT_PER_USDT, SECOND_MS

TXID_RE = re.compile(r"^[0-9a-f]{64}$")
# An expired intent's amount stays reserved this long for a late transfer.
REUSE_AFTER_EXPIRY_MS = DAY_MS
# Suffixes are 1..99,999 µUSDT (at most 0.099999 USDT on top of the asked amount, credited
# like the rest). Asked amounts have at most 2 decimals (10,000 µUSDT steps), so the ranges of
# neighbouring amounts overlap; that is harmless: what must be unique is the exact amount, and
# a new one is checked against every reserved intent in its range, whatever it asked for.
SUFFIX_MAX = 99_999
# An asked amount is a multiple of this (2 decimals of USDT).
ASKED_STEP_MUSDT = 10_000
MAX_DEPOSIT_MUSDT = 1_000_000 * MUSDT_PER_USDT


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


class PersonalAddressesOff(Conflict):
    """GET /api/deposits/address while deposits.mode is unique_amount."""

    code = "personal_addresses_off"


@dataclass(frozen=True)
class Intent:
    """A top-up the user asked for: the exact amount to send, to which address."""

    id: int
    user_id: int
    amount_musdt: int
    address: str
    usdt_contract: str
    created_at_ms: int
    expires_at_ms: int
    reserved_until_ms: int
    paid_deposit_id: int | None

    def status(self, now_ms: int) -> str:
        if self.paid_deposit_id:
            return "paid"
        return "open" if now_ms < self.expires_at_ms else "expired"


def normalize_txid(value: object) -> str | None:
    """A TXID as 64 lowercase hex characters (an optional 0x and surrounding spaces are
    forgiven), or None for anything else."""
    if not isinstance(value, str):
        return None
    text = value.strip().lower().removeprefix("0x")
    return text if TXID_RE.match(text) else None


def pick_suffix(used: set[int], choose: Callable[[list[int]], int] | None = None) -> int | None:
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
    wait_s = max(1, -(-((first_expiry_ms or at_ms) - at_ms) // SECOND_MS))
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


def match_intent(intents: Sequence[Intent], t: TransferLog,
                 block_time_ms: int) -> Intent | None:
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
