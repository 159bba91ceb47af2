"""The crash test's short form (bench/crash.py has the long one): the real server on devnet
killed with SIGKILL 4 times while clients call, top up and withdraw; after every kill the
audit is clean, nothing is credited or sent twice, no segment is billed twice, and the
chain and the ledger agree. And the checks themselves catch what they promise to catch."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import crash  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def crashed(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("crash")
    report = asyncio.run(crash.run(kills=4, seed=7, workdir=workdir, pairs=3, min_up_s=2.0,
                             max_up_s=7.0, say=lambda _: None))
    return workdir, report


def test_four_kills_leave_the_books_whole(crashed):
    workdir, report = crashed
    assert report.errors == [], report.errors
    assert report.stats["http_5xx"] == 0
    assert report.books["calls"] >= 3
    assert report.books["deposits_in_musdt"] > 0
    assert sum(v for k, v in report.stats.items() if k.endswith("_interrupted")) > 0
    assert "kills: 4" in report.lines()[0]


def _copy(workdir: Path, tmp_path: Path) -> Path:
    for name in ("meterchat.sqlite3", "devnet.sqlite3"):
        src = sqlite3.connect(workdir / name)
        dst = sqlite3.connect(tmp_path / name)
        src.backup(dst)
        src.close()
        dst.close()
    shutil.copy(workdir / "meterchat.toml", tmp_path / "meterchat.toml")
    return tmp_path / "meterchat.toml"


def _addresses(workdir: Path) -> tuple[str, str]:
    text = (workdir / "server.out").read_text()
    usdt = text.split("USDT contract ")[1].split(",")[0]
    deposit = text.split("deposit address ")[1].split(")")[0]
    return usdt, deposit


def test_the_checks_catch_a_segment_billed_twice(crashed, tmp_path):
    workdir, _ = crashed
    cfg = _copy(workdir, tmp_path)
    conn = sqlite3.connect(tmp_path / "meterchat.sqlite3")
    call_id, billed = conn.execute(
        "SELECT id, billed_tenths FROM calls ORDER BY billed_tenths DESC LIMIT 1").fetchone()
    # A second charge for one more segment than the call has rows for.
    conn.execute("UPDATE calls SET billed_tenths = billed_tenths + 1, charged_musdt ="
                 " charged_musdt + rate_tokens_per_min * 1000 WHERE id = ?", (call_id,))
    conn.commit()
    conn.close()
    with pytest.raises(crash.CheckFailed, match=f"call {call_id}"):
        crash.check_books(tmp_path, cfg, *_addresses(workdir))


def test_the_checks_catch_a_deposit_credited_twice(crashed, tmp_path):
    workdir, _ = crashed
    cfg = _copy(workdir, tmp_path)
    conn = sqlite3.connect(tmp_path / "meterchat.sqlite3")
    txid, idx, amount, user_id = conn.execute(
        "SELECT txid, log_index, amount_musdt, user_id FROM deposits"
        " WHERE status = 'credited' LIMIT 1").fetchone()
    # The same transfer credited a second time under another log index: balanced postings,
    # so only the comparison with the chain can see it.
    src = conn.execute("SELECT id FROM accounts WHERE name = 'chain:deposits'").fetchone()[0]
    dst = conn.execute("SELECT id FROM accounts WHERE name = ?",
                       (f"user:{user_id}:available",)).fetchone()[0]
    cur = conn.execute("INSERT INTO ledger_tx (idem_key, kind, ref, created_at_ms)"
                       " VALUES (?, 'deposit', ?, 0)", (f"deposit:{txid}:{idx + 9}", txid))
    conn.executemany("INSERT INTO postings (tx_id, account_id, amount_musdt) VALUES (?, ?, ?)",
                     [(cur.lastrowid, src, -amount), (cur.lastrowid, dst, amount)])
    conn.execute("UPDATE accounts SET balance_musdt = balance_musdt - ? WHERE id = ?",
                 (amount, src))
    conn.execute("UPDATE accounts SET balance_musdt = balance_musdt + ? WHERE id = ?",
                 (amount, dst))
    conn.commit()
    conn.close()
    with pytest.raises(crash.CheckFailed, match="ledger deposits"):
        crash.check_books(tmp_path, cfg, *_addresses(workdir))


# -- the same in personal-address mode (deposits.mode = "address_per_user", sweeps running)


@pytest.fixture(scope="module")
def crashed_personal(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("crash-personal")
    report = asyncio.run(crash.run(kills=3, seed=3, workdir=workdir, pairs=2, min_up_s=3.0,
                                   max_up_s=6.0, say=lambda _: None, personal=True))
    return workdir, report


def test_three_kills_in_personal_address_mode_leave_the_books_whole(crashed_personal):
    workdir, report = crashed_personal
    assert report.errors == [], report.errors
    assert report.stats["http_5xx"] == 0
    assert report.books["deposits_in_musdt"] > 0
    conn = sqlite3.connect(workdir / "meterchat.sqlite3")
    personal = conn.execute("SELECT COUNT(*) FROM address_transfers").fetchone()[0]
    conn.close()
    assert personal > 0
    assert report.books["sweeps_by_status"].get("confirmed", 0) >= 1


def test_the_checks_catch_a_personal_transfer_credited_twice(crashed_personal, tmp_path):
    workdir, _ = crashed_personal
    cfg = _copy(workdir, tmp_path)
    conn = sqlite3.connect(tmp_path / "meterchat.sqlite3")
    dep_id, amount = conn.execute(
        "SELECT id, amount_musdt FROM deposits WHERE to_address IN"
        " (SELECT address FROM deposit_addresses) LIMIT 1").fetchone()
    # The credit claims one µUSDT more than its parts received on chain.
    conn.execute("UPDATE deposits SET amount_musdt = ? WHERE id = ?", (amount + 1, dep_id))
    conn.commit()
    conn.close()
    with pytest.raises(crash.CheckFailed, match=f"personal credit {dep_id}"):
        crash.check_books(tmp_path, cfg, *_addresses(workdir))
