"""Online backups of the SQLite database (SQLite's backup API: consistent while the server
runs) and restore into a new file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from meterchat.core.db import connect_sync


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
    try:
        src.backup(dst, pages=1024)
        pages = dst.execute("PRAGMA page_count").fetchone()[0]
        check = dst.execute("PRAGMA integrity_check").fetchone()[0]
        if check != "ok":
            raise BackupError(f"the backup failed its integrity check: {check}")
        # A single self-contained file, not WAL, so it can be copied anywhere.
        dst.execute("PRAGMA journal_mode=DELETE")
        return pages
    finally:
        dst.close()
        src.close()


def restore(backup_path: Path, db_path: Path) -> None:
    """Restore a backup into db_path, which must not exist (stop the server, move the old
    file away, then restore)."""
    backup_path, db_path = Path(backup_path), Path(db_path)
    if not backup_path.exists():
        raise BackupError(f"no backup at {backup_path}")
    if db_path.exists():
        raise BackupError(f"{db_path} exists; move it away first (with its -wal and -shm files)")
    src = sqlite3.connect(str(backup_path))
    try:
        check = src.execute("PRAGMA integrity_check").fetchone()[0]
        if check != "ok":
            raise BackupError(f"the backup failed its integrity check: {check}")
        dst = connect_sync(db_path)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()
