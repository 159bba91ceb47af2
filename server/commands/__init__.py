"""The bodies of the `meterchat` subcommands, a module per concept: `serve` (serving and
its start-up), `devnet`, `database` (migrate, backup, restore), `money` (audit, reconcile),
`withdrawals`, `users`, `mail`, `events`. `meterchat.cli` holds the parser and dispatch; each
command is `cmd_x(args, config) -> exit code`. The server's heavy modules are imported inside
the commands that need them, so `meterchat serve` loads no more than it uses.
"""

from __future__ import annotations

import sqlite3

from meterchat.core.config import Config
from meterchat.core.db import connect_sync, migrate_sync


def open_db(config: Config) -> sqlite3.Connection:
    """The configured database, migrated to the newest schema."""
    conn = connect_sync(config.database.path, config.database.busy_timeout_ms)
    migrate_sync(conn)
    return conn
