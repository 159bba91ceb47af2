"""Sessions (accounts/sessions.py) and password hashes (accounts/passwords.py) on a real
SQLite file: only a token's hash is stored; revoked and expired sessions are gone."""

from __future__ import annotations

import pytest

from meterchat.accounts import sessions
from meterchat.accounts.passwords import Passwords
from meterchat.accounts.users import insert_user_tx
from meterchat.core.db import connect_sync, migrate_sync, run_read, run_tx
from meterchat.core.errors import Unauthorized


@pytest.fixture
def conn(tmp_path):
    c = connect_sync(tmp_path / "db.sqlite3")
    migrate_sync(c)
    yield c
    c.close()


def _user(conn, email: str = "ann@example.com") -> int:
    return run_tx(conn, insert_user_tx, email, "hash", "buyer", "Ann").id


def test_a_session_is_found_by_its_token_whose_hash_only_is_stored(conn):
    user_id = _user(conn)
    token, csrf = run_tx(conn, sessions.create_session_tx, user_id, 60_000)
    found = run_read(conn, sessions.require_session, token)
    assert (found.user.id, found.user.email, found.csrf_token) == (user_id, "ann@example.com",
                                                                   csrf)
    stored = conn.execute("SELECT token_sha256 FROM sessions").fetchone()["token_sha256"]
    assert stored == sessions.token_sha256(token) != token
    assert run_read(conn, sessions.session_for_token, token + "x") is None


def test_revoked_and_expired_sessions_are_gone(conn):
    user_id = _user(conn)
    first, _ = run_tx(conn, sessions.create_session_tx, user_id, 60_000)
    second, _ = run_tx(conn, sessions.create_session_tx, user_id, 60_000)
    expired, _ = run_tx(conn, sessions.create_session_tx, user_id, 0)
    assert run_read(conn, sessions.session_for_token, expired) is None
    one = run_read(conn, sessions.require_session, first)
    run_tx(conn, sessions.revoke_session_tx, one.id)
    assert run_read(conn, sessions.session_for_token, first) is None
    assert run_read(conn, sessions.session_for_token, second) is not None
    run_tx(conn, sessions.revoke_all_sessions_tx, user_id)
    with pytest.raises(Unauthorized):
        run_read(conn, sessions.require_session, second)


def test_a_ban_shows_on_the_session_user(conn):
    user_id = _user(conn)
    token, _ = run_tx(conn, sessions.create_session_tx, user_id, 60_000)
    conn.execute("UPDATE users SET banned_at_ms = 1 WHERE id = ?", (user_id,))
    assert run_read(conn, sessions.require_session, token).user.banned


def test_passwords_verify_and_an_unknown_account_never_matches():
    pw = Passwords(time_cost=1, memory_kib=1024)
    hashed = pw.hash("correct horse battery")
    assert pw.verify(hashed, "correct horse battery")
    assert not pw.verify(hashed, "wrong horse battery")
    assert not pw.verify(None, "correct horse battery")
    assert not pw.verify("not a hash", "correct horse battery")
