"""The `meterchat` command line: the parser of every subcommand (serve, migrate, audit,
reconcile, backup, restore, devnet, withdrawals, mail, events, user) and the dispatch, which
prints a failure as one line and maps it to the exit code. The subcommands' bodies are in
`meterchat.commands`, a module per concept. Every subcommand takes --config PATH; without it
every default applies."""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

from meterchat.accounts import rules as account_rules
from meterchat.commands import database, devnet, events, mail, money, serve, users, withdrawals
from meterchat.commands.serve import StartupError
from meterchat.core.config import Config, ConfigError, load_config
from meterchat.core.db import DatabaseError, MigrationError
from meterchat.core.errors import ApiError
from meterchat.core.event_types import EVENT_TYPES
from meterchat.operator.backup import BackupError

Command = Callable[[argparse.Namespace, Config], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meterchat", description="Pay-per-minute 1-on-1 video chat paid in USDT on TRON."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(subparsers: Any, name: str, help: str, fn: Command,
            description: str | None = None) -> argparse.ArgumentParser:
        """A subcommand (or an action of one) running `fn`, with its --config."""
        p: argparse.ArgumentParser = subparsers.add_parser(
            name, help=help, description=description or help)
        p.add_argument("--config", metavar="PATH",
                       help="TOML config file (default: built-in defaults)")
        p.set_defaults(fn=fn)
        return p

    def group(name: str, help: str, dest: str) -> Any:
        """A subcommand made of actions (`meterchat devnet serve`)."""
        p = sub.add_parser(name, help=help, description=help)
        return p.add_subparsers(dest=dest, required=True, metavar="ACTION")

    add(sub, "serve", "run the server (on devnet and ./data/ without a config)", serve.cmd_serve)
    add(sub, "migrate", "apply database migrations", database.cmd_migrate)
    add(sub, "audit", "recompute every balance from postings; exit 1 on any mismatch",
        money.cmd_audit)

    add(sub, "reconcile", "compare what users hold with the hot wallet on chain; exit 1 when "
        "the wallet cannot cover it", money.cmd_reconcile)
    p = add(sub, "backup", "write an online backup of the database to a new file",
            database.cmd_backup)
    p.add_argument("out", help="the backup file to create")
    p = add(sub, "restore", "restore a backup into the configured (absent) database file",
            database.cmd_restore)
    p.add_argument("backup_file", help="a file written by `meterchat backup`")

    devnet_sub = group("devnet", "the embedded TRON devnet node", "devnet_command")
    add(devnet_sub, "serve", "run the devnet node on its own ([devnet] host, port)",
        devnet.cmd_devnet_serve)
    p = add(devnet_sub, "transfer", "send USDT (or TRX) from the devnet faucet; prints the "
            "TXID", devnet.cmd_devnet_transfer)
    p.add_argument("--to", required=True, help="TRON address (T...)")
    p.add_argument("--usdt", help="amount of USDT, e.g. 10.000317")
    p.add_argument("--trx", help="amount of TRX instead of USDT")
    p.add_argument("--node", help="devnet node URL (default: http://[devnet] host:port)")

    from meterchat.withdrawals.rules import STATUSES

    wds_sub = group("withdrawals", "list, approve or reject withdrawals", "withdrawals_command")
    p = add(wds_sub, "list", "withdrawals by status (default: review)",
            withdrawals.cmd_withdrawals)
    p.add_argument("--status", default="review", choices=(*STATUSES, "all"))
    p = add(wds_sub, "approve", "approve a withdrawal under review (or retry a failed one)",
            withdrawals.cmd_withdrawals)
    p.add_argument("id", help="withdrawal id")
    p = add(wds_sub, "confirm", "record that a transfer found on chain paid a withdrawal in "
            "review (e.g. one restored from a backup)", withdrawals.cmd_withdrawals,
            "record that a USDT transfer out of the hot wallet, listed by `meterchat "
            "reconcile`, paid a withdrawal in review (one restored from a backup that was paid "
            "after the backup)")
    p.add_argument("id", help="withdrawal id")
    p.add_argument("--txid", required=True, help="the transfer's TXID")
    p = add(wds_sub, "reject", "reject a withdrawal and return its tokens",
            withdrawals.cmd_withdrawals, "reject a withdrawal (review, queued or failed) and "
            "return its tokens to the user")
    p.add_argument("id", help="withdrawal id")
    p.add_argument("--reason", default=None, help="shown to the user")

    mail_sub = group("mail", "the mail outbox", "mail_command")
    p = add(mail_sub, "list", "mails in the outbox, newest first (JSON lines)", mail.cmd_mail_list,
            "mails in the outbox, newest first, one JSON object a line with the plain-text body "
            "(links included)")
    p.add_argument("--status", default="all", choices=("all", "pending", "sent", "failed"))
    p.add_argument("--limit", type=int, default=20)

    events_sub = group("events", "operator events and webhook signatures", "events_command")
    p = add(events_sub, "verify", "check a webhook signature (the body on standard input); "
            "exit 0 when valid, 1 when not", events.cmd_events_verify,
            "check an X-Meterchat-Signature header against the body read from standard input, "
            "with the secret held by an environment variable; a timestamp further than "
            "--tolerance-s from now is refused as a replay")
    p.add_argument("--secret-env", required=True, metavar="NAME",
                   help="environment variable holding the webhook's secret")
    p.add_argument("--header", required=True, help="the X-Meterchat-Signature value")
    p.add_argument("--tolerance-s", type=int, default=300,
                   help="largest age of the signature's timestamp, seconds (default 300)")
    p = add(events_sub, "list", "the newest events with their deliveries (JSON lines)",
            events.cmd_events_list, "the newest events, one JSON object a line, with their "
            "deliveries to each webhook")
    p.add_argument("--type", default=None, choices=EVENT_TYPES)
    p.add_argument("--dead", action="store_true", help="only those dead for some webhook")
    p.add_argument("--limit", type=int, default=20)

    user_sub = group("user", "manage users", "user_command")
    p = add(user_sub, "create", "create a user (the only way to make an admin)",
            users.cmd_user_create)
    p.add_argument("--email", required=True)
    p.add_argument("--role", required=True, choices=account_rules.ROLES)
    p.add_argument("--display-name", default=None)
    p.add_argument("--password-stdin", action="store_true",
                   help="read the password from standard input")
    p = add(user_sub, "reset-password", "set a user's password (logs them out everywhere; "
            "audited)", users.cmd_user_reset_password, "set a user's password, read from "
            "standard input; every session of theirs is revoked, they are mailed, and the "
            "audit log records it")
    p.add_argument("--email", required=True)
    p.add_argument("--password-stdin", action="store_true",
                   help="read the new password from standard input")
    p = add(user_sub, "disable-2fa", "turn off a locked-out user's two-factor authentication "
            "(audited)", users.cmd_user_disable_2fa, "turn off a user's two-factor "
            "authentication (they lost their device and recovery codes); audited, and the user "
            "is mailed")
    p.add_argument("--email", required=True)
    p.add_argument("--reason", default=None, help="kept in the audit log")

    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    code = _run(args)
    if argv is None and code != 0:
        _exit_if_threads_linger(code)
    return code


def _run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
        code: int = args.fn(args, config)
        return code
    except ConfigError as exc:
        print(f"meterchat: {exc}", file=sys.stderr)
        return 2
    except (MigrationError, BackupError, DatabaseError, StartupError) as exc:
        print(f"meterchat: {exc}", file=sys.stderr)
        return 2
    except ApiError as exc:
        print(f"meterchat: {exc.message}", file=sys.stderr)
        return 1
    except OSError as exc:  # a file or port the command needs (devnet serve, backup...)
        print(f"meterchat: {exc}", file=sys.stderr)
        return 1


def _exit_if_threads_linger(code: int) -> None:
    """The command failed: exit now even if a library left a non-daemon thread running
    (the interpreter would wait for it forever, and a supervisor would see a live process).
    Only for the `meterchat` process itself, never when main() is called with arguments."""
    others = [t for t in threading.enumerate()
              if t is not threading.main_thread() and t.is_alive() and not t.daemon]
    if others:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
