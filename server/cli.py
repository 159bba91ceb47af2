"""The `meterchat` command line: serve, migrate, user create, audit (and more as domains
land). Every subcommand takes --config PATH; without it every default applies."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
import socket
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from meterchat.accounts import rules as account_rules
from meterchat.accounts import users as accounts
from meterchat.accounts.passwords import Passwords
from meterchat.core.config import Config, ConfigError, load_config
from meterchat.core.db import (
    DatabaseError,
    MigrationError,
    connect_sync,
    migrate_sync,
    now_ms,
    run_read,
    run_tx,
)
from meterchat.core.errors import ApiError
from meterchat.core.event_types import EVENT_TYPES
from meterchat.core.logs import event, setup_logging
from meterchat.core.units import SUN_PER_TRX, iso_ms
from meterchat.money import ledger
from meterchat.operator.backup import BackupError

if TYPE_CHECKING:  # the server's modules load only for the commands that use them
    from aiohttp import web

    from meterchat.operator.costs import CostRow
    from meterchat.operator.reconcile import Liabilities, Report


def _open_db(config: Config) -> sqlite3.Connection:
    conn = connect_sync(config.database.path, config.database.busy_timeout_ms)
    migrate_sync(conn)
    return conn


class StartupError(Exception):
    """The server cannot start; the message is the one line printed."""


def cmd_serve(args: argparse.Namespace, config: Config) -> int:
    setup_logging(config.server.log_level)
    state = {"serving": False}
    factory, _ = event_loop_factory(config.server.event_loop)
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(_serve(config, state))
    except (ConfigError, MigrationError, DatabaseError, StartupError):
        raise  # main prints their one line
    except Exception as exc:
        # Anything else: one line on stderr and a non-zero status, so a supervisor
        # (systemd) sees the failure and restarts or reports it.
        text = " ".join(str(exc).split()) or "no details"
        what = "stopped" if state["serving"] else "cannot start"
        print(f"meterchat: {what}: {type(exc).__name__}: {text}", file=sys.stderr)
        return 1
    return 0


def event_loop_factory(
        choice: str = "auto") -> tuple[Callable[[], asyncio.AbstractEventLoop] | None, str]:
    """The event loop `serve` runs on, as (factory for asyncio.Runner, name): uvloop when
    it is installed (the `fast` extra) and server.event_loop does not ask for asyncio's own.
    Measured with bench/capacity.py; uvloop is the same asyncio API on libuv."""
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise ConfigError("config key server.event_loop: uvloop is not installed "
                                  "(pip install 'meterchat[fast]')") from None
        else:
            return uvloop.new_event_loop, "uvloop"
    return None, "asyncio"


def _listen(host: str, port: int) -> list[socket.socket]:
    """Bind the listening sockets before anything else starts (database, chain, jobs), so a
    port in use stops start-up at once and before any job has run. Like asyncio's
    create_server: every address the host resolves to, SO_REUSEADDR, IPv6 sockets v6-only."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except OSError as exc:
        raise StartupError(f"cannot listen on {host}:{port}: {exc}") from exc
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, addr in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(sockets) > 1:  # one port for every address
                addr = (addr[0], sockets[0].getsockname()[1], *addr[2:])
            sock.bind(addr)
            sock.setblocking(False)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sockets


async def _serve(config: Config, state: dict[str, bool] | None = None) -> None:
    """Start the app and serve until SIGINT/SIGTERM. An error while starting undoes what was
    started (the database, the devnet node, jobs) and is raised again, so the process exits
    instead of hanging on a thread left running."""
    from aiohttp import web

    from meterchat.app import create_app

    sockets = _listen(config.server.host, config.server.port)
    runner: web.AppRunner | None = None
    try:
        app = create_app(config)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
    except BaseException:
        if runner is not None:
            with contextlib.suppress(Exception):
                await runner.cleanup()  # the cleanup contexts that did start, in reverse
        for sock in sockets:
            sock.close()
        raise
    try:
        for sock in sockets:
            await web.SockSite(runner, sock).start()
        tune_gc()
        tune_threads()
        host, port = runner.addresses[0][:2]
        url = config.server.public_url or f"http://{host}:{port}"
        print(f"meterchat is serving on {url} (network: {config.chain.network})", flush=True)
        if state is not None:
            state["serving"] = True
        event(logging.getLogger("meterchat.http"), "serving", url=url,
              network=config.chain.network,
              event_loop=type(asyncio.get_running_loop()).__module__.split(".")[0])
        _announce_devnet(app)
        await _until_stopped()
    finally:
        await runner.cleanup()
        for sock in sockets:
            sock.close()


async def _until_stopped() -> None:
    """Wait for SIGINT or SIGTERM, so cleanup (settling calls, closing the database) runs."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


# Collector thresholds for a long-running server: a young generation of this many objects
# before a collection (CPython's default is 700), and rarer older-generation passes.
GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    """Keep the cyclic garbage collector from stopping the event loop for long.

    With thousands of sockets open the heap holds millions of tracked objects, and a full
    collection walks them all: measured with bench/load.py at 5,000 connections, full
    collections took 150 ms to over 500 ms, each one stalling every socket (and found next
    to nothing to free). Objects alive once the server is up (modules, the app) are frozen
    out of collection for good, and collections run far less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


# How long one thread may hold the GIL while another waits for it (CPython's default: 5 ms).
SWITCH_INTERVAL_S = 0.001


def tune_threads() -> None:
    """Let the database thread and the event loop hand the GIL over within 1 ms.

    The database thread releases the GIL around every SQLite step and must take it back
    after each; while the event loop is busy with sockets, every take-back waited up to the
    5-ms switch interval, so a billing pass of a few hundred statements took several times
    its own work (bench/capacity.py, 4,900 calls: pass p99 239 -> 148 ms, HTTP p99 210 ->
    130 ms with 1 ms, the sockets' latency unchanged)."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)


def _announce_devnet(app: web.Application) -> None:
    from meterchat.chain_ctx import DEVNET

    node = app.get(DEVNET)
    if node is not None:
        print(f"devnet node on {node.url} (USDT contract {node.usdt_contract}, deposit "
              f"address {node.deposit_address}); send test USDT with: meterchat devnet "
              "transfer --to ADDRESS --usdt 10", flush=True)


def cmd_devnet_serve(args: argparse.Namespace, config: Config) -> int:
    setup_logging(config.server.log_level)
    asyncio.run(_devnet_serve(config))
    return 0


async def _devnet_serve(config: Config) -> None:
    from meterchat.chain.devnet import DevnetNode, DevnetSettings

    node = DevnetNode(DevnetSettings.from_config(config.devnet))
    await node.start()
    try:
        status = node.status()
        print(f"devnet node on {node.url} (USDT contract {status['usdt_contract']}, deposit "
              f"address {status['deposit_address']})", flush=True)
        await _until_stopped()
    finally:
        await node.stop()


def cmd_devnet_transfer(args: argparse.Namespace, config: Config) -> int:
    import httpx

    url = args.node or f"http://{config.devnet.host}:{config.devnet.port}"
    body = {"to": args.to, "usdt": args.usdt} if args.usdt else {"to": args.to, "trx": args.trx}
    if not (args.usdt or args.trx):
        print("give --usdt AMOUNT or --trx AMOUNT", file=sys.stderr)
        return 2
    try:
        resp = httpx.post(url.rstrip("/") + "/devnet/transfer", json=body, timeout=10,
                          trust_env=False)
        answer = resp.json()
    except (httpx.HTTPError, ValueError) as exc:
        print(f"meterchat: no devnet node answers at {url} ({exc}); start it with "
              "`meterchat serve` or `meterchat devnet serve`", file=sys.stderr)
        return 1
    if resp.status_code != 200:
        print(f"meterchat: {answer['error']['message']}", file=sys.stderr)
        return 1
    print(answer["txid"])
    return 0


def cmd_migrate(args: argparse.Namespace, config: Config) -> int:
    conn = connect_sync(config.database.path, config.database.busy_timeout_ms)
    done = migrate_sync(conn)
    print(f"applied {len(done)} migration(s)" + (": " + ", ".join(done) if done else ""))
    return 0


def cmd_user_create(args: argparse.Namespace, config: Config) -> int:
    if not args.password_stdin:
        print("give the password on standard input with --password-stdin", file=sys.stderr)
        return 2
    password = sys.stdin.readline().rstrip("\r\n")
    email = account_rules.normalize_email(args.email)
    account_rules.check_password_rules(password)
    name = account_rules.check_display_name(args.display_name or email.split("@")[0])
    pw = Passwords(config.server.password_hash_time_cost,
                            config.server.password_hash_memory_kib)
    conn = _open_db(config)
    user = run_tx(conn, accounts.insert_user_tx, email, pw.hash(password), args.role, name)
    print(json.dumps({"user": user.public()}))
    return 0


def _user_by_email(conn: sqlite3.Connection, email: str) -> accounts.User:
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

    if not args.password_stdin:
        print("give the password on standard input with --password-stdin", file=sys.stderr)
        return 2
    password = sys.stdin.readline().rstrip("\r\n")
    account_rules.check_password_rules(password)
    pw = Passwords(config.server.password_hash_time_cost,
                            config.server.password_hash_memory_kib)
    conn = _open_db(config)
    user = _user_by_email(conn, args.email)
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

    conn = _open_db(config)
    user = _user_by_email(conn, args.email)

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


def cmd_mail_list(args: argparse.Namespace, config: Config) -> int:
    """The outbox, newest first, one JSON object a line (with no SMTP server this is where a
    reset or verification link is read)."""
    from meterchat.mail import outbox

    conn = _open_db(config)
    status = None if args.status == "all" else args.status
    for m in run_read(conn, outbox.listing, status, args.limit):
        print(json.dumps({
            "id": str(m.id), "to": m.to_address, "kind": m.kind, "subject": m.subject,
            "status": m.status, "attempts": m.attempts, "last_error": m.last_error,
            "created_at": iso_ms(m.created_at_ms), "sent_at": iso_ms(m.sent_at_ms),
            "text": m.body_text,
        }))
    return 0


def cmd_events_verify(args: argparse.Namespace, config: Config) -> int:
    """Check a webhook's X-Meterchat-Signature against the body read from standard input,
    with the secret of the environment variable named; exit 0 when valid, 1 when not."""
    from meterchat.events import rules

    secret = os.environ.get(args.secret_env, "")
    if not secret:
        print(f"meterchat: the environment variable {args.secret_env} is not set",
              file=sys.stderr)
        return 2
    body = sys.stdin.buffer.read()
    verdict = rules.verify(secret.encode(), args.header, body, int(time.time()),
                           args.tolerance_s)
    print(("valid: " if verdict.ok else "INVALID: ") + verdict.reason,
          file=sys.stdout if verdict.ok else sys.stderr)
    return 0 if verdict.ok else 1


def cmd_events_list(args: argparse.Namespace, config: Config) -> int:
    """The newest events, one JSON object a line, with their deliveries."""
    from meterchat.events import webhooks

    conn = _open_db(config)
    view = run_read(conn, webhooks.listing, args.type, args.dead, None, args.limit)
    for e in view["events"]:
        e.pop("attempts", None)
        print(json.dumps(e))
    return 0


def cmd_audit(args: argparse.Namespace, config: Config) -> int:
    conn = _open_db(config)
    report = run_read(conn, ledger.audit)
    print(json.dumps(report.as_dict(), indent=2))
    if not report.ok:
        print("audit FAILED: the ledger does not add up", file=sys.stderr)
        return 1
    print("audit ok", file=sys.stderr)
    return 0


def cmd_reconcile(args: argparse.Namespace, config: Config) -> int:
    from meterchat.operator import costs, reconcile

    conn = _open_db(config)
    owed = run_read(conn, reconcile.liabilities)
    at = now_ms()
    rows = run_read(conn, costs.gather, at)
    conn.close()
    report = asyncio.run(_reconcile_with_chain(config, owed, rows, at))
    print(json.dumps(report.as_dict(), indent=2))
    if report.costs is not None:
        print_costs(report.costs)
    for line in report.warnings:
        print(f"warning: {line}", file=sys.stderr)
    for line in report.problems:
        print(f"problem: {line}", file=sys.stderr)
    print("reconcile ok" if report.ok else "reconcile FAILED", file=sys.stderr)
    return 0 if report.ok else 1


def print_costs(report: dict[str, Any]) -> None:
    """The cost report as a few lines for a terminal (stderr; stdout stays one JSON)."""
    total, runway = report["total"], report["runway"]
    per_usdt = total["trx_per_usdt"]
    print(f"costs, last {report['days']} days: {total['trx_spent']} TRX spent on"
          f" {total['transactions']} transaction(s) moving {total['usdt_moved']} USDT"
          + (f" ({per_usdt} TRX per USDT)" if per_usdt else ""), file=sys.stderr)
    for kind, sums in report["by_kind"].items():
        print(f"  {kind}: {sums['trx_spent']} TRX, {sums['usdt_moved']} USDT,"
              f" {sums['transactions']} transaction(s)", file=sys.stderr)
    for day in report["per_day"]:
        if day["transactions"]:
            print(f"  {day['day']}: {day['trx_spent']} TRX, {day['usdt_moved']} USDT",
                  file=sys.stderr)
    left = runway["days_left"]
    print(f"hot wallet TRX runway: {left} days ({runway['trx_balance']} TRX at"
          f" {runway['average_trx_per_day']} TRX a day, the last {runway['average_days']} days)"
          if left is not None else
          f"hot wallet TRX runway: no TRX spent in the last {runway['average_days']} days",
          file=sys.stderr)


async def _reconcile_with_chain(config: Config, owed: Liabilities,
                                cost_rows: list[CostRow] | None = None,
                                at_ms: int | None = None) -> Report:
    """On devnet without an endpoint: use the devnet node of a running server when one
    answers at [devnet] host:port, else start the node in this process for the check (the
    same way `serve` does, through chain_ctx)."""
    import httpx
    from aiohttp import web

    from meterchat.chain_ctx import (
        CHAIN_INFO,
        DEVNET,
        GATEWAY,
        _devnet_status,
        chain_ctx,
        configured_endpoints,
    )
    from meterchat.operator import reconcile

    cfg = config
    if config.chain.network == "devnet" and not configured_endpoints(config) \
            and config.devnet.port:
        url = f"http://{config.devnet.host}:{config.devnet.port}"
        try:
            await _devnet_status(url, 1.0)
            cfg = config.replace(chain={"endpoint": url})
        except (httpx.HTTPError, ValueError):
            pass  # no node running: chain_ctx starts one
    holder = web.Application()
    ctx = chain_ctx(cfg)(holder)
    await ctx.__anext__()
    try:
        info = holder[CHAIN_INFO]
        wallet = info.hot_wallet_address
        node = holder.get(DEVNET)
        if wallet is None and node is not None:
            wallet = node.hot_wallet_address
        elif wallet is None and cfg.chain.network == "devnet":
            status = await _devnet_status(info.endpoint, cfg.chain.request_timeout_s)
            wallet = status.get("hot_wallet_address")
        return await reconcile.reconcile(
            owed, holder[GATEWAY], info.network, wallet, info.deposit_address,
            cfg.withdrawals.fee_limit_trx * SUN_PER_TRX, cost_rows, at_ms)
    finally:
        with contextlib.suppress(StopAsyncIteration):
            await ctx.__anext__()


def cmd_backup(args: argparse.Namespace, config: Config) -> int:
    from meterchat.operator.backup import backup

    _open_db(config).close()
    pages = backup(config.database.path, args.out)
    print(f"backup written to {args.out} ({pages} pages)")
    return 0


def cmd_restore(args: argparse.Namespace, config: Config) -> int:
    from meterchat.operator.backup import restore

    held = restore(args.backup_file, config.database.path)
    conn = _open_db(config)
    report = run_read(conn, ledger.audit)
    print(f"restored {args.backup_file} into {config.database.path}; audit "
          + ("ok" if report.ok else "FAILED"))
    if held:
        print(f"{len(held)} withdrawal(s) not final in the backup now wait in review "
              f"(restored_from_backup): {', '.join(map(str, held))}. They may have been paid "
              "since the backup: start the server, let the watcher catch up, run `meterchat "
              "reconcile`, then confirm each one paid on chain (`meterchat withdrawals confirm "
              "ID --txid TXID`) and approve or reject the others.")
    return 0 if report.ok else 1


def cmd_withdrawals(args: argparse.Namespace, config: Config) -> int:
    from meterchat.core.db import now_ms
    from meterchat.withdrawals import requests as wd

    conn = _open_db(config)
    if args.withdrawals_command == "list":
        status = None if args.status == "all" else args.status
        rows = run_read(conn, wd.admin_withdrawals, status)
        print(json.dumps({"withdrawals": rows}, indent=2))
        return 0
    try:
        withdrawal_id = int(args.id)
    except ValueError:
        print(f"meterchat: {args.id!r} is not a withdrawal id", file=sys.stderr)
        return 2
    if args.withdrawals_command == "approve":
        w = run_tx(conn, wd.approve_tx, withdrawal_id, None, now_ms())
    elif args.withdrawals_command == "confirm":
        from meterchat.deposits.routes import parse_txid

        margin_ms = int(config.withdrawals.expiry_margin_s * 1000)
        w = run_tx(conn, wd.confirm_paid_by_tx, withdrawal_id, parse_txid(args.txid), None,
                   now_ms(), margin_ms)
    else:
        w = run_tx(conn, wd.reject_tx, withdrawal_id, None, now_ms(), args.reason)
    print(json.dumps({"withdrawal": w.view(admin=True)}, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meterchat", description="Pay-per-minute 1-on-1 video chat paid in USDT on TRON."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help: str,
            fn: Callable[[argparse.Namespace, Config], int]) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument("--config", metavar="PATH", help="TOML config file (default: built-in defaults)")
        p.set_defaults(fn=fn)
        return p

    add("serve", "run the server (on devnet and ./data/ without a config)", cmd_serve)
    add("migrate", "apply database migrations", cmd_migrate)
    add("audit", "recompute every balance from postings; exit 1 on any mismatch", cmd_audit)

    add("reconcile", "compare what users hold with the hot wallet on chain; exit 1 when the "
        "wallet cannot cover it", cmd_reconcile)
    p = add("backup", "write an online backup of the database to a new file", cmd_backup)
    p.add_argument("out", help="the backup file to create")
    p = add("restore", "restore a backup into the configured (absent) database file",
            cmd_restore)
    p.add_argument("backup_file", help="a file written by `meterchat backup`")

    devnet = sub.add_parser("devnet", help="the embedded TRON devnet node",
                            description="the embedded TRON devnet node")
    devnet_sub = devnet.add_subparsers(dest="devnet_command", required=True, metavar="ACTION")
    p = devnet_sub.add_parser("serve", help="run the devnet node on its own ([devnet] host, port)",
                              description="run the devnet node on its own ([devnet] host, port)")
    p.add_argument("--config", metavar="PATH", help="TOML config file")
    p.set_defaults(fn=cmd_devnet_serve)
    p = devnet_sub.add_parser("transfer", help="send USDT (or TRX) from the devnet faucet; "
                              "prints the TXID", description="send USDT (or TRX) from the "
                              "devnet faucet; prints the TXID")
    p.add_argument("--config", metavar="PATH", help="TOML config file")
    p.add_argument("--to", required=True, help="TRON address (T...)")
    p.add_argument("--usdt", help="amount of USDT, e.g. 10.000317")
    p.add_argument("--trx", help="amount of TRX instead of USDT")
    p.add_argument("--node", help="devnet node URL (default: http://[devnet] host:port)")
    p.set_defaults(fn=cmd_devnet_transfer)

    from meterchat.withdrawals.rules import STATUSES

    wds = sub.add_parser("withdrawals", help="list, approve or reject withdrawals",
                         description="list, approve or reject withdrawals")
    wds_sub = wds.add_subparsers(dest="withdrawals_command", required=True, metavar="ACTION")
    p = wds_sub.add_parser("list", help="withdrawals by status (default: review)",
                           description="withdrawals by status (default: review)")
    p.add_argument("--config", metavar="PATH", help="TOML config file")
    p.add_argument("--status", default="review", choices=(*STATUSES, "all"))
    p.set_defaults(fn=cmd_withdrawals)
    p = wds_sub.add_parser("approve", help="approve a withdrawal under review (or retry a "
                           "failed one)", description="approve a withdrawal under review (or "
                           "retry a failed one)")
    p.add_argument("--config", metavar="PATH", help="TOML config file")
    p.add_argument("id", help="withdrawal id")
    p.set_defaults(fn=cmd_withdrawals)
    p = wds_sub.add_parser("confirm", help="record that a transfer found on chain paid a "
                           "withdrawal in review (e.g. one restored from a backup)",
                           description="record that a USDT transfer out of the hot wallet, "
                           "listed by `meterchat reconcile`, paid a withdrawal in review (one "
                           "restored from a backup that was paid after the backup)")
    p.add_argument("--config", metavar="PATH", help="TOML config file")
    p.add_argument("id", help="withdrawal id")
    p.add_argument("--txid", required=True, help="the transfer's TXID")
    p.set_defaults(fn=cmd_withdrawals)
    p = wds_sub.add_parser("reject", help="reject a withdrawal and return its tokens",
                           description="reject a withdrawal (review, queued or failed) and "
                           "return its tokens to the user")
    p.add_argument("--config", metavar="PATH", help="TOML config file")
    p.add_argument("id", help="withdrawal id")
    p.add_argument("--reason", default=None, help="shown to the user")
    p.set_defaults(fn=cmd_withdrawals)

    mail = sub.add_parser("mail", help="the mail outbox", description="the mail outbox")
    mail_sub = mail.add_subparsers(dest="mail_command", required=True, metavar="ACTION")
    p = mail_sub.add_parser("list", help="mails in the outbox, newest first (JSON lines)",
                            description="mails in the outbox, newest first, one JSON object "
                            "a line with the plain-text body (links included)")
    p.add_argument("--config", metavar="PATH", help="TOML config file")
    p.add_argument("--status", default="all", choices=("all", "pending", "sent", "failed"))
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(fn=cmd_mail_list)

    events = sub.add_parser("events", help="operator events and webhook signatures",
                            description="operator events and webhook signatures")
    events_sub = events.add_subparsers(dest="events_command", required=True, metavar="ACTION")
    p = events_sub.add_parser(
        "verify", help="check a webhook signature (the body on standard input); exit 0 when "
        "valid, 1 when not", description="check an X-Meterchat-Signature header against the "
        "body read from standard input, with the secret held by an environment variable; a "
        "timestamp further than --tolerance-s from now is refused as a replay")
    p.add_argument("--config", metavar="PATH", help="TOML config file")
    p.add_argument("--secret-env", required=True, metavar="NAME",
                   help="environment variable holding the webhook's secret")
    p.add_argument("--header", required=True, help="the X-Meterchat-Signature value")
    p.add_argument("--tolerance-s", type=int, default=300,
                   help="largest age of the signature's timestamp, seconds (default 300)")
    p.set_defaults(fn=cmd_events_verify)
    p = events_sub.add_parser("list", help="the newest events with their deliveries (JSON "
                              "lines)", description="the newest events, one JSON object a "
                              "line, with their deliveries to each webhook")
    p.add_argument("--config", metavar="PATH", help="TOML config file")
    p.add_argument("--type", default=None, choices=EVENT_TYPES)
    p.add_argument("--dead", action="store_true", help="only those dead for some webhook")
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(fn=cmd_events_list)

    user = sub.add_parser("user", help="manage users", description="manage users")
    user_sub = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    create = user_sub.add_parser("create", help="create a user (the only way to make an admin)",
                                 description="create a user (the only way to make an admin)")
    create.add_argument("--config", metavar="PATH", help="TOML config file")
    create.add_argument("--email", required=True)
    create.add_argument("--role", required=True, choices=account_rules.ROLES)
    create.add_argument("--display-name", default=None)
    create.add_argument("--password-stdin", action="store_true",
                        help="read the password from standard input")
    create.set_defaults(fn=cmd_user_create)
    p = user_sub.add_parser("reset-password", help="set a user's password (logs them out "
                            "everywhere; audited)", description="set a user's password, read "
                            "from standard input; every session of theirs is revoked, they "
                            "are mailed, and the audit log records it")
    p.add_argument("--config", metavar="PATH", help="TOML config file")
    p.add_argument("--email", required=True)
    p.add_argument("--password-stdin", action="store_true",
                   help="read the new password from standard input")
    p.set_defaults(fn=cmd_user_reset_password)
    p = user_sub.add_parser("disable-2fa", help="turn off a locked-out user's two-factor "
                            "authentication (audited)", description="turn off a user's "
                            "two-factor authentication (they lost their device and recovery "
                            "codes); audited, and the user is mailed")
    p.add_argument("--config", metavar="PATH", help="TOML config file")
    p.add_argument("--email", required=True)
    p.add_argument("--reason", default=None, help="kept in the audit log")
    p.set_defaults(fn=cmd_user_disable_2fa)

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
