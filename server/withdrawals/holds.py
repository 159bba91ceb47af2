"""The account-security side of a withdrawal (issue 15): a code from a user with 2FA, the
hold of a withdrawal to an address the user never withdrew to (and of every withdrawal soon
after a password reset or a 2FA change), the mail on every request, and the user's cancel
of a withdrawal that has not gone out (its tokens back through the ledger).

A held withdrawal is `queued` with wait_reason `new_address_hold` and `hold_until_ms`; the
sender takes only queued withdrawals whose hold has passed (sending.queued)."""

from __future__ import annotations

import sqlite3

from meterchat.accounts import two_factor
from meterchat.core.config import WithdrawalsConfig
from meterchat.core.errors import Conflict, Forbidden, NotFound
from meterchat.core.units import HOUR_MS, iso_ms, musdt_to_tokens_str, musdt_to_usdt_str
from meterchat.mail import messages, outbox
from meterchat.withdrawals import requests
from meterchat.withdrawals import store as wd
from meterchat.withdrawals.rules import Quote, check_fee_shown

NEW_ADDRESS_HOLD = "new_address_hold"
CANCELLED_REASON = "cancelled by the user; the tokens were returned"
# A withdrawal to an address counts as "withdrawn to" once its transfer went out.
_WENT_OUT = ("sent", "confirmed")


def hold_until(at_ms: int, hold_ms: int, new_address: bool,
               security_changed_at_ms: int | None, after_security_change: bool) -> int | None:
    """Until when a withdrawal requested at `at_ms` waits (pure); None = it does not."""
    if hold_ms <= 0:
        return None
    until = at_ms + hold_ms if new_address else None
    if after_security_change and security_changed_at_ms is not None:
        after = security_changed_at_ms + hold_ms
        if after > at_ms:
            until = max(until or 0, after)
    return until


def _is_new_address(conn: sqlite3.Connection, user_id: int, address: str, wid: int) -> bool:
    marks = ",".join("?" * len(_WENT_OUT))
    return conn.execute(
        f"SELECT 1 FROM withdrawals WHERE user_id = ? AND address = ? AND id <> ?"
        f" AND status IN ({marks}) LIMIT 1", (user_id, address, wid, *_WENT_OUT),
    ).fetchone() is None


def _replay(conn: sqlite3.Connection, user_id: int, idem_key: str) -> bool:
    return conn.execute("SELECT 1 FROM withdrawals WHERE user_id = ? AND idem_key = ?",
                        (user_id, idem_key)).fetchone() is not None


def check_code_tx(conn: sqlite3.Connection, user_id: int, otp: str | None, now_s: float,
                  at_ms: int) -> None:
    """A user with 2FA sends a fresh code with each withdrawal: 403 otp_required without
    one, 403 otp_invalid for a wrong or used one."""
    if not two_factor.is_enabled(conn, user_id):
        return
    if not otp:
        raise Forbidden("two-factor authentication is on: send the code of your "
                        "authenticator app as otp", "otp_required")
    if not two_factor.check_code_tx(conn, user_id, two_factor.code_field(otp), now_s, at_ms):
        raise Forbidden("the code is wrong, expired or was used already; wait for the next "
                        "one", "otp_invalid")


def request_tx(conn: sqlite3.Connection, user_id: int, idem_key: str, address: str, q: Quote,
               cfg: WithdrawalsConfig, at_ms: int, otp: str | None, now_s: float,
               base_url: str, shown_fee_musdt: int | None = None) -> requests.Requested:
    """A withdrawal request with its code, its hold and its mail, in one transaction: a
    request that fails (402, a wrong code, a fee other than the one shown) uses up no code
    and mails nothing. A repeated Idempotency-Key answers as before without asking for a
    new code."""
    if _replay(conn, user_id, idem_key):
        return requests.request_tx(conn, user_id, idem_key, address, q, cfg, at_ms)
    check_fee_shown(q, shown_fee_musdt)
    check_code_tx(conn, user_id, otp, now_s, at_ms)
    done = requests.request_tx(conn, user_id, idem_key, address, q, cfg, at_ms)
    w = done.withdrawal
    row = conn.execute("SELECT security_changed_at_ms FROM users WHERE id = ?",
                       (user_id,)).fetchone()
    until = hold_until(at_ms, int(cfg.new_address_hold_hours * HOUR_MS),
                       _is_new_address(conn, user_id, address, w.id),
                       row["security_changed_at_ms"], cfg.hold_after_security_change)
    if until is not None:
        conn.execute(
            "UPDATE withdrawals SET hold_until_ms = ?, wait_reason = CASE WHEN status ="
            " 'queued' THEN ? ELSE wait_reason END WHERE id = ?",
            (until, NEW_ADDRESS_HOLD, w.id))
        w = wd.require(conn, w.id)
    outbox.enqueue_tx(conn, w.user_email, messages.withdrawal_requested(
        musdt_to_tokens_str(w.amount_musdt), musdt_to_usdt_str(w.net_musdt), w.address,
        w.status, iso_ms(until) if until is not None else None, base_url), at_ms, user_id)
    return requests.Requested(w, False)


def held_until(conn: sqlite3.Connection, withdrawal_id: int) -> int | None:
    row = conn.execute("SELECT hold_until_ms FROM withdrawals WHERE id = ?",
                       (withdrawal_id,)).fetchone()
    return row["hold_until_ms"] if row else None


def cancel_tx(conn: sqlite3.Connection, user_id: int, withdrawal_id: int,
              at_ms: int) -> wd.Withdrawal:
    """The user takes back a withdrawal that has not gone out (queued, held or in review):
    it ends `rejected` with the reason that the user cancelled it, and its tokens come back
    through the ledger (requests.reject_tx)."""
    w = wd.get(conn, withdrawal_id)
    if w is None or w.user_id != user_id:
        raise NotFound("no such withdrawal of yours", "withdrawal_not_found")
    if w.status not in ("queued", "review"):
        raise Conflict(f"a withdrawal that is {w.status} cannot be cancelled",
                       "withdrawal_not_cancellable")
    return requests.reject_tx(conn, w.id, user_id, at_ms, CANCELLED_REASON)
