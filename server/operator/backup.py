"""Online backups of the SQLite database (SQLite's backup API: consistent while the server
runs) and restore into a new file.

A backup is older than the chain. Deposits made since are found again by the watcher (it
re-reads the blocks after its stored cursor), but a withdrawal that was queued, signed or
sent in the backup may have been paid since: so a restore puts every withdrawal that was
not final in the backup in `review` (reason `restored_from_backup`) for the operator, and
the copy carries a marker so that a backup put back by hand (cp) is held the same way when
the server first opens it (withdrawals/requests.py, hold_restored_tx / hold_if_restored_tx).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from meterchat.core.db import connect_sync, migrate_sync, now_ms, run_tx


class BackupError(Exception):
    pass


def backup(db_path: Path, out_path: Path) -> int:
    """Copy the live database to out_path page by page; returns the pages copied."""
    out_path = Path(out_path)
    if out_path.exists():
        raise BackupError(f"{out_path} exists; choose a new file")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    src = connect_sync(db_path)
    dst = sqlite3.connect(str(out_path))
    dst.row_factory = sqlite3.Row
    try:
        src.backup(dst, pages=1024)
        _mark_as_backup(dst)
        pages: int = dst.execute("PRAGMA page_count").fetchone()["page_count"]
        check = dst.execute("PRAGMA integrity_check").fetchone()["integrity_check"]
        if check != "ok":
            raise BackupError(f"the backup failed its integrity check: {check}")
        # A single self-contained file, not WAL, so it can be copied anywhere.
        dst.execute("PRAGMA journal_mode=DELETE")
        return pages
    finally:
        dst.close()
        src.close()


def _mark_as_backup(dst: sqlite3.Connection) -> None:
    """The copy (never the live database) says it is a backup, and since when."""
    has_table = dst.execute("SELECT 1 FROM sqlite_master WHERE type = 'table'"
                            " AND name = 'backup_marker'").fetchone()
    if has_table:
        dst.execute("INSERT OR REPLACE INTO backup_marker (id, taken_at_ms) VALUES (1, ?)",
                    (now_ms(),))
        dst.commit()


def restore(backup_path: Path, db_path: Path) -> list[int]:
    """Restore a backup into db_path, which must not exist (stop the server, move the old
    file away, then restore). Brings it to the code's schema and holds every withdrawal
    that was not final in the backup for the operator; returns their ids."""
    from meterchat.withdrawals import requests as withdrawals

    backup_path, db_path = Path(backup_path), Path(db_path)
    if not backup_path.exists():
        raise BackupError(f"no backup at {backup_path}")
    if db_path.exists():
        raise BackupError(f"{db_path} exists; move it away first (with its -wal and -shm files)")
    src = sqlite3.connect(str(backup_path))
    src.row_factory = sqlite3.Row
    try:
        try:
            check = src.execute("PRAGMA integrity_check").fetchone()["integrity_check"]
        except sqlite3.DatabaseError as exc:
            raise BackupError(f"{backup_path} is not a readable SQLite backup: {exc}") from exc
        if check != "ok":
            raise BackupError(f"the backup failed its integrity check: {check}")
        dst = connect_sync(db_path)
        try:
            src.backup(dst)
            migrate_sync(dst)
            return run_tx(dst, withdrawals.hold_restored_tx, now_ms(),
                          f"the backup {backup_path.name}")
        finally:
            dst.close()
    finally:
        src.close()
