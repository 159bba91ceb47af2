"""`meterchat migrate`, `backup` (an online copy of the database) and `restore` (a backup
into the configured, absent, database file, audited; withdrawals not final in it held in
review)."""

from __future__ import annotations

import argparse

from meterchat.commands import open_db
from meterchat.core.config import Config
from meterchat.core.db import connect_sync, migrate_sync, run_read
from meterchat.money import ledger


def cmd_migrate(args: argparse.Namespace, config: Config) -> int:
    conn = connect_sync(config.database.path, config.database.busy_timeout_ms)
    done = migrate_sync(conn)
    print(f"applied {len(done)} migration(s)" + (": " + ", ".join(done) if done else ""))
    return 0


def cmd_backup(args: argparse.Namespace, config: Config) -> int:
    from meterchat.operator.backup import backup

    open_db(config).close()
    pages = backup(config.database.path, args.out)
    print(f"backup written to {args.out} ({pages} pages)")
    return 0


def cmd_restore(args: argparse.Namespace, config: Config) -> int:
    from meterchat.operator.backup import restore

    held = restore(args.backup_file, config.database.path)
    conn = open_db(config)
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
