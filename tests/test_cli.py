"""The meterchat command line, run as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def meterchat(*args: str, input: str | None = None, cwd: Path = ROOT):
    return subprocess.run(
        [sys.executable, "-m", "meterchat.cli", *args], input=input, capture_output=True,
        text=True, cwd=cwd, timeout=60,
    )


def config_file(tmp_path: Path, extra: str = "") -> Path:
    p = tmp_path / "m.toml"
    p.write_text(
        '[database]\npath = "m.sqlite3"\n'
        "[server]\npassword_hash_time_cost = 1\npassword_hash_memory_kib = 1024\n" + extra
    )
    return p


def test_every_subcommand_has_help():
    for args in (["--help"], ["serve", "--help"], ["migrate", "--help"], ["audit", "--help"],
                 ["user", "create", "--help"], ["events", "verify", "--help"],
                 ["events", "list", "--help"]):
        r = meterchat(*args)
        assert r.returncode == 0, r.stderr
        assert "usage:" in r.stdout


def test_audit_on_fresh_database_exits_zero(tmp_path):
    cfg = config_file(tmp_path)
    r = meterchat("audit", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["ok"] is True
    assert (tmp_path / "m.sqlite3").exists()


def test_unknown_key_stops_with_its_name(tmp_path):
    cfg = config_file(tmp_path, "[billing]\ncomission_percent = 10\n")
    r = meterchat("serve", "--config", str(cfg))
    assert r.returncode == 2
    assert "billing.comission_percent" in r.stderr


def test_migrate_reports_what_it_applied(tmp_path):
    cfg = config_file(tmp_path)
    r = meterchat("migrate", "--config", str(cfg))
    assert r.returncode == 0 and "0001_foundation" in r.stdout
    r = meterchat("migrate", "--config", str(cfg))
    assert r.returncode == 0 and "applied 0" in r.stdout


def test_admin_is_created_from_stdin_and_can_log_in(tmp_path):
    cfg = config_file(tmp_path)
    r = meterchat("user", "create", "--config", str(cfg), "--email", "Op@Example.com",
                  "--role", "admin", "--password-stdin", input="operator password 1\n")
    assert r.returncode == 0, r.stderr
    user = json.loads(r.stdout)["user"]
    assert user["role"] == "admin" and user["email"] == "op@example.com"
    assert "operator password 1" not in r.stdout + r.stderr
    r = meterchat("user", "create", "--config", str(cfg), "--email", "x@example.com",
                  "--role", "admin", "--password-stdin", input="short\n")
    assert r.returncode == 1 and "at least 10" in r.stderr


def test_serve_with_no_config_runs_on_defaults_in_data_dir(tmp_path):
    """The README's start command: no config file, SQLite under ./data/."""
    import os
    import signal
    import urllib.request

    # Only the port is moved off the default so parallel runs cannot collide.
    cfg = tmp_path / "port.toml"
    cfg.write_text("[server]\nport = 0\n[devnet]\nport = 0\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "meterchat.cli", "serve", "--config", str(cfg)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        line = ""
        while "serving on" not in line:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
        url = line.split("serving on ")[1].split()[0]
        assert "network: devnet" in line
        with urllib.request.urlopen(url + "/api/health", timeout=10) as resp:
            assert json.loads(resp.read())["ok"] is True
        assert (tmp_path / "data" / "meterchat.sqlite3").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err


def test_serve_logs_one_start_up_line_per_component_and_none_of_apschedulers(tmp_path):
    """The start-up log says what runs (the database, the chain, each job, the URL), each
    once, and none of apscheduler's internals ("Adding job tentatively", "Scheduler
    started", "Scheduler has been shut down")."""
    import os
    import signal
    import urllib.request

    cfg = tmp_path / "c.toml"
    cfg.write_text("[server]\nport = 0\n[devnet]\nport = 0\nblock_time_s = 0.1\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "meterchat.cli", "serve", "--config", str(cfg)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        line = proc.stdout.readline()
        assert "serving on" in line, proc.stderr.read()
        url = line.split("serving on ")[1].split()[0]
        with urllib.request.urlopen(url + "/api/health", timeout=10) as resp:
            assert resp.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    records = [json.loads(text) for text in err.splitlines() if text.startswith("{")]
    chatter = [r for r in records if r["logger"].startswith("apscheduler")]
    assert chatter == [], chatter

    def named(event: str) -> list[dict]:
        return [r for r in records if r["event"] == event]

    (db,) = named("database_opened")
    assert db["path"].endswith("meterchat.sqlite3") and db["migrations_applied"]
    (chain,) = named("chain_ready")
    assert chain["network"] == "devnet" and chain["node"] == "embedded devnet"
    assert chain["endpoint"].startswith("http://127.0.0.1:")
    jobs = sorted(r["job"] for r in named("job_started"))
    assert jobs == ["deposit_watcher", "earnings_release", "withdrawal_sender"]
    (serving,) = named("serving")
    assert serving["url"] == url and serving["network"] == "devnet"
    import importlib.util

    # uvloop when the `fast` extra is installed (server.event_loop = "auto").
    expected = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    assert serving["event_loop"] == expected
    order = [r["event"] for r in records]
    assert order.index("database_opened") < order.index("chain_ready") \
        < order.index("job_started") < order.index("serving")


def test_backup_then_restore_into_new_file_passes_audit(tmp_path):
    from meterchat.core.db import connect_sync, run_tx
    from meterchat.money import ledger
    from tests.test_ledger import make_user

    cfg = config_file(tmp_path)
    assert meterchat("migrate", "--config", str(cfg)).returncode == 0
    conn = connect_sync(tmp_path / "m.sqlite3")
    uid = make_user(conn, "b@example.com")
    run_tx(conn, ledger.transfer, ledger.CHAIN_DEPOSITS, ledger.user_account(uid), 1234,
           "deposit")
    r = meterchat("backup", "--config", str(cfg), str(tmp_path / "b.sqlite3"))
    assert r.returncode == 0, r.stderr
    r = meterchat("backup", "--config", str(cfg), str(tmp_path / "b.sqlite3"))
    assert r.returncode == 2 and "exists" in r.stderr
    conn.close()

    restored = tmp_path / "restored"
    restored.mkdir()
    cfg2 = restored / "m.toml"
    cfg2.write_text('[database]\npath = "new.sqlite3"\n')
    r = meterchat("restore", "--config", str(cfg2), str(tmp_path / "b.sqlite3"))
    assert r.returncode == 0, r.stderr
    assert "audit ok" in r.stdout
    r = meterchat("audit", "--config", str(cfg2))
    assert r.returncode == 0 and json.loads(r.stdout)["users_total_musdt"] == 1234
    r = meterchat("restore", "--config", str(cfg2), str(tmp_path / "b.sqlite3"))
    assert r.returncode == 2 and "exists" in r.stderr


def test_event_loop_choice(monkeypatch):
    import pytest

    from meterchat.commands.serve import event_loop_factory
    from meterchat.core.config import ConfigError

    assert event_loop_factory("asyncio") == (None, "asyncio")
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if it were not installed
    assert event_loop_factory("auto") == (None, "asyncio")
    with pytest.raises(ConfigError, match="server.event_loop"):
        event_loop_factory("uvloop")


def test_serve_on_asyncio_loop_when_configured(tmp_path):
    import signal
    import urllib.request

    cfg = config_file(tmp_path, '[devnet]\nport = 0\n').read_text().replace(
        "[server]\n", '[server]\nport = 0\nevent_loop = "asyncio"\n')
    (tmp_path / "m.toml").write_text(cfg)
    proc = subprocess.Popen(
        [sys.executable, "-m", "meterchat.cli", "serve", "--config", str(tmp_path / "m.toml")],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "serving on" in line, proc.stderr.read()
        url = line.split("serving on ")[1].split()[0]
        with urllib.request.urlopen(url + "/api/health", timeout=10) as resp:
            assert resp.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    serving = [json.loads(t) for t in err.splitlines() if '"serving"' in t]
    assert serving[0]["event_loop"] == "asyncio"


def test_serving_imports_no_webrtc(tmp_path):
    """The command line and the app as `serve` starts them (database, devnet, jobs) import
    no part of the WebRTC stack, which only the smoke-test peer (meterchat.tools) uses."""
    cfg = tmp_path / "c.toml"
    cfg.write_text('[database]\npath = "m.sqlite3"\n[devnet]\nport = 0\n'
                   '[server]\npassword_hash_time_cost = 1\npassword_hash_memory_kib = 1024\n')
    script = f"""
import asyncio, sys
from aiohttp import web
import meterchat.cli
from meterchat.app import create_app
from meterchat.core.config import load_config
async def main():
    runner = web.AppRunner(create_app(load_config({str(cfg)!r})), handle_signals=False)
    await runner.setup()
    await runner.cleanup()
asyncio.run(main())
print(" ".join(sorted({{m.split(".")[0] for m in sys.modules}})))
print(" ".join(sorted(m for m in sys.modules if m.startswith("meterchat."))))
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       cwd=tmp_path, timeout=60)
    assert r.returncode == 0, r.stderr
    top, ours = (line.split() for line in r.stdout.splitlines()[-2:])
    assert not {"aiortc", "av", "aioice", "playwright"} & set(top)
    assert not [m for m in ours if m.startswith("meterchat.tools")]


# What serving on an existing database never needs: tronpy and what it loads (eth_utils and
# pydantic, httpx, requests, protobuf) only build and sign a transfer (chain/client.py);
# bip_utils derives personal deposit addresses (address_per_user mode); Pillow decodes photos;
# segno draws the QR codes of deposit and two-factor pages.
NOT_FOR_SERVING = {"tronpy", "eth_utils", "eth_abi", "pydantic", "httpx", "requests", "google",
                   "bip_utils", "PIL", "segno"}


def test_serving_an_existing_database_loads_no_chain_signing_hd_or_image_library(tmp_path):
    """Start-up under a second (bench/startup.py): the app started on defaults over an existing
    database and devnet chain, answering /api/health and /metrics, its watcher and withdrawal
    sender each through a pass, has imported none of NOT_FOR_SERVING."""
    cfg = tmp_path / "c.toml"
    cfg.write_text('[database]\npath = "m.sqlite3"\n[devnet]\nport = 0\n'
                   '[server]\npassword_hash_time_cost = 1\npassword_hash_memory_kib = 1024\n')
    script = f"""
import asyncio, sys
import aiohttp
from aiohttp import web
import meterchat.cli
from meterchat.app import create_app
from meterchat.core.config import load_config
from meterchat.deposits.watcher import WATCHER
from meterchat.withdrawals.sender import SENDER
async def main():
    app = create_app(load_config({str(cfg)!r}))
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = "http://127.0.0.1:%d" % runner.addresses[0][1]
    async with aiohttp.ClientSession() as http:
        async with http.get(url + "/api/health") as resp:
            body = await resp.json()
            assert resp.status == 200 and body["ok"] and "solidified_block" in body["chain"], body
        async with http.get(url + "/metrics") as resp:
            assert resp.status == 200
    await app[WATCHER].run_once()
    await app[SENDER].run_once()
    await runner.cleanup()
asyncio.run(main())
print(" ".join(sorted({{m.split(".")[0] for m in sys.modules}})))
"""
    first = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           cwd=tmp_path, timeout=60)  # makes the database and the chain
    assert first.returncode == 0, first.stderr
    again = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           cwd=tmp_path, timeout=60)
    assert again.returncode == 0, again.stderr
    loaded = set(again.stdout.splitlines()[-1].split())
    assert not NOT_FOR_SERVING & loaded, NOT_FOR_SERVING & loaded
