"""`meterchat serve` that cannot start exits at once, non-zero, with one line that names the
problem on stderr (under systemd a process that hangs instead looks "active" and is never
restarted). Each case runs the real command as a subprocess with a deadline."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# A hang guard, not a speed test: a failed start exits in about a second on an idle machine
# (bench/startup.py measures start-up); a machine running the suite on several workers can
# take ten times that.
DEADLINE_S = 60


def serve(cfg: Path) -> subprocess.CompletedProcess:
    """Run `python -m meterchat.cli serve --config cfg`; a hang fails the test at the deadline."""
    try:
        return subprocess.run(
            [sys.executable, "-m", "meterchat.cli", "serve", "--config", str(cfg)],
            capture_output=True, text=True, cwd=cfg.parent, timeout=DEADLINE_S,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"serve did not exit within {DEADLINE_S} s; stderr so far: "
                             f"{exc.stderr!r}") from None


def config(tmp_path: Path, extra: str = "", database: str = "m.sqlite3") -> Path:
    p = tmp_path / "m.toml"
    p.write_text(f'[database]\npath = "{database}"\n'
                 '[server]\nport = 0\n[devnet]\nport = 0\npath = "devnet.sqlite3"\n' + extra)
    return p


def one_line_reason(r: subprocess.CompletedProcess) -> str:
    assert r.returncode != 0, (r.stdout, r.stderr)
    # The structured log (one JSON object a line, e.g. the database opened before the failure)
    # goes to stderr too; the reason is the one plain line beside it.
    lines = [line for line in r.stderr.splitlines()
             if line.strip() and not line.startswith('{"ts": ')]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("meterchat: "), lines
    assert "Traceback" not in r.stderr and "serving on" not in r.stdout
    return lines[0]


def test_a_bad_config_value_exits_with_the_key_it_names(tmp_path):
    line = one_line_reason(serve(config(tmp_path, '[billing]\ncommission_percent = "a lot"\n')))
    assert "billing.commission_percent" in line


def test_an_unreadable_hot_wallet_key_file_exits_instead_of_hanging(tmp_path):
    """A config error found only while starting (after the database is open)."""
    r = serve(config(tmp_path, '[chain]\nhot_wallet_key_file = "missing.key"\n'))
    line = one_line_reason(r)
    assert "chain.hot_wallet_key_file" in line and "missing.key" in line


def test_mainnet_without_a_deposit_address_exits_naming_the_key(tmp_path):
    r = serve(config(tmp_path, '[chain]\nnetwork = "mainnet"\n'))
    assert "chain.deposit_address" in one_line_reason(r)


def test_a_directory_where_the_database_file_should_be_exits(tmp_path):
    (tmp_path / "m.sqlite3").mkdir()
    line = one_line_reason(serve(config(tmp_path)))
    assert "database" in line and "m.sqlite3" in line


def test_a_file_that_is_not_sqlite_exits(tmp_path):
    (tmp_path / "m.sqlite3").write_bytes(b"this is a text file, not a database\n" * 200)
    line = one_line_reason(serve(config(tmp_path)))
    assert "database" in line and "m.sqlite3" in line and "not a database" in line


def test_a_database_newer_than_the_code_exits(tmp_path):
    conn = sqlite3.connect(tmp_path / "m.sqlite3")
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT"
                 " NOT NULL, applied_at_ms INTEGER NOT NULL)")
    conn.execute("INSERT INTO schema_migrations VALUES (9999, 'future', 0)")
    conn.commit()
    conn.close()
    assert "newer than this meterchat" in one_line_reason(serve(config(tmp_path)))


def test_a_port_already_taken_exits(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = config(tmp_path)
        cfg.write_text(cfg.read_text().replace("port = 0\n[devnet]", f"port = {port}\n[devnet]"))
        line = one_line_reason(serve(cfg))
    assert str(port) in line



def test_a_devnet_port_already_taken_exits(tmp_path):
    """Found while starting, after the database is open: it is closed again."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = config(tmp_path)
        cfg.write_text(cfg.read_text().replace("[devnet]\nport = 0", f"[devnet]\nport = {port}"))
        line = one_line_reason(serve(cfg))
    assert "cannot start" in line and str(port) in line

# -- in-process: the cause itself (the process-level guard in cli.main would hide it)


def _non_daemon_threads() -> set:
    import threading

    return {t for t in threading.enumerate() if t.is_alive() and not t.daemon
            and t is not threading.main_thread()}


async def test_opening_a_file_that_is_not_sqlite_leaves_no_thread_behind(tmp_path):
    import pytest

    from meterchat.core.db import Database, DatabaseError

    path = tmp_path / "not.sqlite3"
    path.write_bytes(b"plain text\n" * 500)
    before = _non_daemon_threads()
    with pytest.raises(DatabaseError, match="not a database"):
        await Database(path).open()
    import asyncio

    for _ in range(100):  # aiosqlite's thread ends once it has run its stop request
        if _non_daemon_threads() <= before:
            break
        await asyncio.sleep(0.02)
    assert _non_daemon_threads() <= before


async def test_opening_a_directory_as_the_database_starts_no_thread_at_all(tmp_path):
    import pytest

    from meterchat.core.db import Database, DatabaseError

    path = tmp_path / "m.sqlite3"
    path.mkdir()
    before = _non_daemon_threads()
    with pytest.raises(DatabaseError, match="directory"):
        await Database(path).open()
    # Refused before aiosqlite's thread exists: nothing to wait for, nothing writes to a loop
    # that is gone.
    assert _non_daemon_threads() <= before


async def test_a_failed_start_closes_the_database_it_opened(tmp_path):
    import asyncio

    import pytest

    from meterchat.commands import serve as cli
    from meterchat.core.config import ConfigError
    from tests.conftest import make_config

    cfg = make_config(tmp_path, chain={"network": "mainnet"}, server={"port": 0})
    before = _non_daemon_threads()
    with pytest.raises(ConfigError, match="chain.deposit_address"):
        await cli._serve(cfg)
    for _ in range(100):
        if _non_daemon_threads() <= before:
            break
        await asyncio.sleep(0.02)
    assert _non_daemon_threads() <= before
