"""`meterchat user create` (the only way to make an admin), `user reset-password` and `user
disable-2fa`: the operator's hand on accounts, each audited and mailed where it changes one."""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys

from meterchat.accounts import rules as account_rules
from meterchat.accounts import users as accounts
from meterchat.accounts.passwords import Passwords
from meterchat.commands import open_db
from meterchat.core.config import Config
from meterchat.core.db import now_ms, run_read, run_tx
from meterchat.core.errors import ApiError


def _password_from_stdin(args: argparse.Namespace) -> str | None:
    """The password given on standard input; None, said on stderr, without --password-stdin."""
    if not args.password_stdin:
        print("give the password on standard input with --password-stdin", file=sys.stderr)
        return None
    return sys.stdin.readline().rstrip("\r\n")


def _passwords(config: Config) -> Passwords:
    return Passwords(config.server.password_hash_time_cost,
                     config.server.password_hash_memory_kib)


def cmd_user_create(args: argparse.Namespace, config: Config) -> int:
    password = _password_from_stdin(args)
    if password is None:
        return 2
    email = account_rules.normalize_email(args.email)
    account_rules.check_password_rules(password)
    name = account_rules.check_display_name(args.display_name or email.split("@")[0])
    pw = _passwords(config)
    conn = open_db(config)
    user = run_tx(conn, accounts.insert_user_tx, email, pw.hash(password), args.role, name)
    print(json.dumps({"user": user.public()}))
    return 0


def user_by_email(conn: sqlite3.Connection, email: str) -> accounts.User:
    user = run_read(conn, accounts.get_user_by_email, account_rules.normalize_email(email))
    if user is None:
        raise ApiError(f"no user with the email {email}", "user_not_found")
    return user


def cmd_user_reset_password(args: argparse.Namespace, config: Config) -> int:
    """The operator sets a user's password (read from standard input): every session of
    theirs is revoked, the user is mailed, the audit log records it."""
    from meterchat.accounts.sessions import revoke_all_sessions_tx
    from meterchat.core import audit
    from meterchat.mail import messages, outbox

    password = _password_from_stdin(args)
    if password is None:
        return 2
    account_rules.check_password_rules(password)
    pw = _passwords(config)
    conn = open_db(config)
    user = user_by_email(conn, args.email)
    password_hash = pw.hash(password)

    def reset_tx(c: sqlite3.Connection) -> int:
        at = now_ms()
        accounts.set_password_tx(c, user.id, password_hash, at, reset=True)
        revoked = revoke_all_sessions_tx(c, user.id)
        outbox.enqueue_tx(c, user.email, messages.password_changed("reset by the operator"),
                          at, user.id)
        audit.record(c, None, "user.reset_password", f"user:{user.id}", None, at,
                     sessions_revoked=len(revoked))
        return len(revoked)

    revoked = run_tx(conn, reset_tx)
    print(json.dumps({"user": user.public(), "sessions_revoked": revoked}))
    return 0


def cmd_user_disable_2fa(args: argparse.Namespace, config: Config) -> int:
    """Turn off a locked-out user's 2FA (audited; the user is mailed)."""
    from meterchat.accounts import two_factor
    from meterchat.core import audit
    from meterchat.mail import messages, outbox

    conn = open_db(config)
    user = user_by_email(conn, args.email)

    def disable_tx(c: sqlite3.Connection) -> bool:
        if not two_factor.is_enabled(c, user.id):
            return False
        at = now_ms()
        two_factor.disable_tx(c, user.id, at)
        outbox.enqueue_tx(c, user.email, messages.two_factor_changed(False, by_operator=True),
                          at, user.id)
        audit.record(c, None, "user.disable_2fa", f"user:{user.id}", args.reason, at)
        return True

    changed = run_tx(conn, disable_tx)
    print(json.dumps({"user": user.public(), "two_factor": False, "changed": changed}))
    return 0
