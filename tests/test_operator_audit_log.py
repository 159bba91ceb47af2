"""The audit log (core/audit.py writes, operator/audit_log.py reads): every line's detail is
a JSON object, and lines written as free text before are migrated, keeping their words."""

from __future__ import annotations

import shutil

from meterchat.core import audit
from meterchat.core.db import MIGRATIONS_DIR, connect_sync, migrate_sync, run_tx
from meterchat.operator import audit_log


def test_a_line_is_written_with_a_json_detail_and_read_back_as_an_object(tmp_path):
    conn = connect_sync(tmp_path / "m.sqlite3")
    migrate_sync(conn)
    run_tx(conn, audit.record, None, "withdrawal.reject", "withdrawal:7", "fraud", 1_000,
           returned_musdt=4_000_000)
    run_tx(conn, audit.record, None, "user.unban", "user:3", None, 2_000)
    newest, oldest = audit_log.entries(conn)
    assert oldest["detail"] == {"returned_musdt": 4_000_000}
    assert oldest["reason"] == "fraud" and oldest["target"] == "withdrawal:7"
    assert newest["detail"] is None


def test_old_text_details_are_migrated_to_json_keeping_their_words(tmp_path):
    # A database at the schema before the migration, with lines as the old writers left them.
    older = tmp_path / "older"
    older.mkdir()
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        if path.name < "0010":
            shutil.copy(path, older / path.name)
    conn = connect_sync(tmp_path / "m.sqlite3")
    migrate_sync(conn, older)
    conn.executemany(
        "INSERT INTO audit_log (at_ms, actor_user_id, action, target, detail) VALUES"
        " (?, NULL, ?, ?, ?)",
        [(1, "deposit.assign", "ab:0", "user 5, 10000317 µUSDT"),
         (2, "withdrawal.reject", "withdrawal:1", "4000000 µUSDT returned"),
         (3, "user.ban", "user:5", '{"calls_ended": 1}'),
         (4, "promotion.end", "promotion:1", None),
         (5, "odd", "x", "[1, 2]")])
    assert migrate_sync(conn)[0] == "0010_audit_detail_json"
    details = {e["action"]: e["detail"] for e in audit_log.entries(conn)}
    assert details == {
        "deposit.assign": {"text": "user 5, 10000317 µUSDT"},
        "withdrawal.reject": {"text": "4000000 µUSDT returned"},
        "user.ban": {"calls_ended": 1},
        "promotion.end": None,
        "odd": {"text": "[1, 2]"},
    }
