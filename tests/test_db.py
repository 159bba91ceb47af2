"""Database: WAL and foreign keys on, migrations applied once each and recorded, a database
newer than the code refused."""

from __future__ import annotations

import pytest

from meterchat.core.db import (
    Database,
    MigrationError,
    available_migrations,
    connect_sync,
    migrate_sync,
)


async def test_open_sets_wal_foreign_keys_busy_timeout(tmp_path):
    db = Database(tmp_path / "x.sqlite3", busy_timeout_ms=1234)
    await db.open()
    try:
        assert (await db.fetchone("PRAGMA journal_mode"))[0] == "wal"
        assert (await db.fetchone("PRAGMA foreign_keys"))[0] == 1
        assert (await db.fetchone("PRAGMA busy_timeout"))[0] == 1234
    finally:
        await db.close()


def test_migrations_apply_once_and_are_recorded(tmp_path):
    conn = connect_sync(tmp_path / "m.sqlite3")
    first = migrate_sync(conn)
    assert first == [f"{v:04d}_{n}" for v, n, _ in available_migrations()]
    assert migrate_sync(conn) == []
    rows = conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
    assert [r[0] for r in rows] == [v for v, _, _ in available_migrations()]


def test_failed_migration_rolls_back_whole(tmp_path):
    d = tmp_path / "migs"
    d.mkdir()
    (d / "0001_ok.sql").write_text("CREATE TABLE a (x INTEGER);")
    (d / "0002_bad.sql").write_text("CREATE TABLE b (x INTEGER);\nINSERT INTO nope VALUES (1);")
    conn = connect_sync(tmp_path / "m.sqlite3")
    with pytest.raises(MigrationError, match="0002_bad.sql"):
        migrate_sync(conn, d)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "a" in tables and "b" not in tables
    assert [r[0] for r in conn.execute("SELECT version FROM schema_migrations")] == [1]


def test_database_newer_than_code_is_refused(tmp_path):
    conn = connect_sync(tmp_path / "m.sqlite3")
    migrate_sync(conn)
    conn.execute("INSERT INTO schema_migrations VALUES (9999, 'future', 0)")
    with pytest.raises(MigrationError, match="newer than this meterchat"):
        migrate_sync(conn)
