"""A sweep killed with SIGKILL: a real meterchat process (tests/sweep_kill_runner.py) dies by
SIGKILL right after storing a signed transaction (before broadcasting it) or right after
broadcasting it (before recording the answer), for the TRX top-up and for the USDT sweep;
`meterchat serve` restarted on the same database and devnet state broadcasts the same stored
bytes again and confirms the sweep: exactly one top-up and one USDT transfer from the address
on chain, the stored TXIDs, and `meterchat audit` passes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

from meterchat.chain.address import to_base58

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import crash  # noqa: E402

# Real time on purpose (sockets, timers, child processes): tests/conftest.py starts these
# files first, so their waits overlap the other files' work.
pytestmark = pytest.mark.slow

SWEEPS = "[sweeps]\nmin_usdt = 5\ninterval_s = 0.2\nexpiry_margin_s = 1\n"


def write_config(workdir: Path) -> Path:
    """bench/crash.py's config in address_per_user mode."""
    cfg = crash.write_config(workdir)
    text = cfg.read_text().replace("[deposits]\n", '[deposits]\nmode = "address_per_user"\n', 1)
    cfg.write_text(text + SWEEPS)
    return cfg


def sweep_row(workdir: Path) -> sqlite3.Row | None:
    conn = sqlite3.connect(workdir / "meterchat.sqlite3")
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute("SELECT * FROM sweeps ORDER BY id DESC LIMIT 1").fetchone()
    finally:
        conn.close()


def chain_txs_from(workdir: Path, address: str) -> list[tuple[str, str, int | None]]:
    """(type, txid, block) of every transaction the devnet holds owned by or paying `address`."""
    conn = sqlite3.connect(workdir / "devnet.sqlite3")
    out = []
    for txid, block, tx_json in conn.execute(
            "SELECT txid, block_num, tx_json FROM txs ORDER BY seq"):
        contract = json.loads(tx_json)["raw_data"]["contract"][0]
        value = contract["parameter"]["value"]
        if contract["type"] == "TriggerSmartContract" \
                and to_base58(value["owner_address"]) == address:
            out.append(("sweep", txid, block))
        elif contract["type"] == "TransferContract" \
                and to_base58(value["to_address"]) == address:
            out.append(("topup", txid, block))
    conn.close()
    return out


@pytest.mark.parametrize("point", ["topup_signed", "topup_broadcast", "signed", "broadcast"])
async def test_a_sweep_killed_by_sigkill_is_finished_once_by_the_restarted_server(tmp_path,
                                                                                 point):
    cfg = write_config(tmp_path)
    runner = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "tests" / "sweep_kill_runner.py"), str(cfg), point,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    out, err = await asyncio.wait_for(runner.communicate(), 120)
    assert runner.returncode == -signal.SIGKILL, err.decode()[-3000:]
    address = out.decode().split("address ")[1].split()[0]
    killed = sweep_row(tmp_path)
    assert killed is not None
    if point.startswith("topup"):
        assert killed["status"] == "funding" and killed["topup_txid"]
        stored = killed["topup_txid"]
    else:
        assert killed["status"] == "signed" and killed["sweep_txid"]
        stored = killed["sweep_txid"]

    server = crash.Server(tmp_path, cfg)
    await server.start()
    try:
        for _ in range(600):
            row = sweep_row(tmp_path)
            if row is not None and row["status"] == "confirmed":
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"the sweep was not confirmed: {dict(sweep_row(tmp_path))}")
        await asyncio.sleep(1.0)  # more sweeper passes: nothing more is sent
    finally:
        assert await server.stop() == 0
    done = sweep_row(tmp_path)
    assert done["topup_txid" if point.startswith("topup") else "sweep_txid"] == stored
    on_chain = chain_txs_from(tmp_path, address)
    assert [kind for kind, _, _ in on_chain] == ["topup", "sweep"], on_chain
    assert {txid for _, txid, _ in on_chain} == {done["topup_txid"], done["sweep_txid"]}
    assert all(block is not None for _, _, block in on_chain)
    assert done["amount_musdt"] == 8_000_000 and done["trx_spent_sun"] > 0
    audit = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "meterchat.cli", "audit", "--config", str(cfg), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    report, _ = await asyncio.wait_for(audit.communicate(), 60)
    assert audit.returncode == 0 and json.loads(report)["ok"] is True
