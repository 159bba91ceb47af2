"""The SQLite database: one aiosqlite connection (WAL, foreign keys, busy timeout), numbered
migrations, and the two ways to use it: `read(fn)` and `tx(fn)`, each one hop onto the
database thread.

A money change is one synchronous function run by `tx` inside BEGIN IMMEDIATE ... COMMIT on
the database thread: every await into SQLite costs ~90 µs, so chains of awaited statements
are slow and harder to keep atomic.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

# Shipped inside the package (the checkout's migrations/ folder), found the same way
# from a checkout and from an installed wheel.
MIGRATIONS_DIR = Path(str(resources.files("meterchat.migrations")))
_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

T = TypeVar("T")

# aiosqlite's debug lines print each call's arguments, which can include session tokens.
logging.getLogger("aiosqlite").setLevel(logging.INFO)


class MigrationError(Exception):
    """The database cannot be brought to the code's schema (e.g. it is newer than the code)."""


class DatabaseError(Exception):
    """The database file cannot be opened or used (a directory, not SQLite, no permission)."""


def open_error(path: Path | str, exc: BaseException) -> DatabaseError:
    """One line that names the file and what is wrong with it."""
    p = Path(path)
    if p.is_dir():
        why = "it is a directory, not a database file"
    elif isinstance(exc, sqlite3.DatabaseError) and "not a database" in str(exc):
        why = "file is not a database (not an SQLite file, or encrypted or damaged)"
    else:
        why = str(exc) or type(exc).__name__
    return DatabaseError(f"cannot open the database {p}: {why}")


def now_ms() -> int:
    return int(time.time() * 1000)


def _fold(text: str | int | float | bytes | None) -> str | int | float | bytes | None:
    """SQL fold(x): white space tidied and lower case in every alphabet (SQLite's own lower()
    folds ASCII only)."""
    return " ".join(text.split()).lower() if isinstance(text, str) else text


def configure(conn: sqlite3.Connection, busy_timeout_ms: int) -> None:
    conn.row_factory = sqlite3.Row
    conn.create_function("fold", 1, _fold, deterministic=True)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")


def connect_sync(path: Path | str, busy_timeout_ms: int = 5000) -> sqlite3.Connection:
    """A plain sqlite3 connection configured like the server's (for the CLI and tests)."""
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    except (OSError, sqlite3.Error) as exc:
        raise open_error(path, exc) from exc
    try:
        configure(conn, busy_timeout_ms)
    except sqlite3.Error as exc:
        conn.close()
        raise open_error(path, exc) from exc
    return conn


def run_tx(conn: sqlite3.Connection, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run fn(conn, *args, **kwargs) inside BEGIN IMMEDIATE ... COMMIT; roll back on any
    exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn, *args, **kwargs)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


def run_read(conn: sqlite3.Connection, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run fn(conn, *args) in a read transaction: one consistent snapshot for all its reads."""
    if conn.in_transaction:
        return fn(conn, *args, **kwargs)
    conn.execute("BEGIN")
    try:
        return fn(conn, *args, **kwargs)
    finally:
        conn.execute("COMMIT")


def available_migrations(directory: Path = MIGRATIONS_DIR) -> list[tuple[int, str, Path]]:
    found = []
    for p in sorted(directory.glob("*.sql")):
        m = _MIGRATION_NAME.match(p.name)
        if not m:
            raise MigrationError(f"migration file {p.name} is not named NNNN_name.sql")
        found.append((int(m.group(1)), m.group(2), p))
    versions = [v for v, _, _ in found]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migration files share a number")
    return found


def migrate_sync(conn: sqlite3.Connection, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply every migration not yet applied, in order, each in its own transaction.
    Returns the names applied. Refuses a database newer than the code."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at_ms INTEGER NOT NULL)"
    )
    applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    migrations = available_migrations(directory)
    known = {v for v, _, _ in migrations}
    newer = sorted(applied - known)
    if newer and newer[-1] > max(known, default=0):
        raise MigrationError(
            f"the database has schema version {newer[-1]}, newer than this meterchat "
            f"(knows up to {max(known, default=0)}); upgrade meterchat or use another database"
        )
    done = []
    for version, name, path in migrations:
        if version in applied:
            continue
        sql = path.read_text(encoding="utf-8")
        # executescript runs statements one by one; the BEGIN inside the script makes the
        # whole file and its record one transaction.
        try:
            conn.executescript(
                "BEGIN IMMEDIATE;\n"
                + sql
                + f"\n;INSERT INTO schema_migrations VALUES ({version}, '{name}', {now_ms()});"
                + "\nCOMMIT;"
            )
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise MigrationError(f"migration {path.name} failed: {exc}") from exc
        done.append(f"{version:04d}_{name}")
    return done


class Database:
    """The server's database handle: one connection, one thread, one hop per operation."""

    def __init__(self, path: Path, busy_timeout_ms: int = 5000) -> None:
        self.path = Path(path)
        self.busy_timeout_ms = busy_timeout_ms
        self._conn: aiosqlite.Connection | None = None

    async def open(self, migrate: bool = True) -> None:
        """Connect, configure and migrate. On any failure the connection (and aiosqlite's
        thread, which is not a daemon and would keep the process alive) is closed again
        before the error is raised: a DatabaseError or MigrationError naming the file."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Opened once in this thread first: a file SQLite cannot open at all (a directory,
            # no permission) fails here, before aiosqlite's thread exists. A failed
            # aiosqlite.connect leaves that thread behind, writing to a loop that is gone.
            sqlite3.connect(str(self.path)).close()
            self._conn = await aiosqlite.connect(str(self.path), isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            self._conn = None
            raise open_error(self.path, exc) from exc
        try:
            try:
                await self.call(configure, self.busy_timeout_ms)
                if migrate:
                    await self.call(migrate_sync)
            except sqlite3.Error as exc:
                raise open_error(self.path, exc) from exc
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run fn(sqlite3_connection, *args) on the database thread, outside any transaction
        of ours (for reads and pragmas)."""
        if self._conn is None:
            raise RuntimeError("database is not open")
        # aiosqlite's own mechanism for running work on its connection thread (untyped there).
        execute: Callable[..., Awaitable[T]] = self._conn._execute
        return await execute(fn, self._conn._conn, *args, **kwargs)

    async def read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run fn(conn, *args) on the database thread with one consistent snapshot."""
        return await self.call(run_read, fn, *args, **kwargs)

    async def tx(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run fn(conn, *args) in one BEGIN IMMEDIATE ... COMMIT on the database thread."""
        return await self.call(run_tx, fn, *args, **kwargs)

    async def fetchall(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        return await self.call(lambda c: c.execute(sql, params).fetchall())

    async def fetchone(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> sqlite3.Row | None:
        return await self.call(lambda c: c.execute(sql, params).fetchone())
