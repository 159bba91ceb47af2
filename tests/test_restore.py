"""A restore from backup never pays a withdrawal twice.

The README's procedure end to end on the devnet (real server, real tronpy, the CLI as a
subprocess): a backup taken while a withdrawal is queued (or sent), the withdrawal paid and
confirmed on chain, the server stopped, the backup restored, the server started again: the
sender pays nothing more, the withdrawal waits in review (`restored_from_backup`), and
reconcile shows the transfer on chain that no withdrawal accounts for until the operator
records it. Then the rules of the hold and of the operator's confirm, on a real database."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from meterchat.app import create_app
from meterchat.appkeys import DB
from meterchat.chain.gateway import SignedTransfer, TransferLog
from meterchat.chain_ctx import DEVNET, GATEWAY
from meterchat.core.config import load_config
from meterchat.core.db import connect_sync, migrate_sync, now_ms, run_read, run_tx
from meterchat.core.errors import Conflict, Unprocessable
from meterchat.money import ledger
from meterchat.operator import backup, reconcile
from meterchat.withdrawals import requests, rules, sending, store
from meterchat.withdrawals.routes import parse_tokens
from meterchat.withdrawals.sender import SENDER, sender_from_app
from tests.conftest import Actor, admin_actor, assert_error, eventually
from tests.test_withdrawal_sender import (
    fresh_address,
    seller_with,
    transfers_to,
    until_status,
    withdraw,
    withdrawal_of,
)

ROOT = Path(__file__).resolve().parent.parent
NET_MUSDT = 2_500_000  # 400 tokens (4 USDT) less 0.5 + 1.0 USDT of fees


def write_config(tmp_path: Path) -> Path:
    """One config file for the server and every CLI command, as an operator has: a fast
    devnet, and a sender that runs only when a test drives it."""
    p = tmp_path / "meterchat.toml"
    p.write_text(
        '[server]\nport = 0\npassword_hash_time_cost = 1\npassword_hash_memory_kib = 1024\n'
        '[database]\npath = "data/meterchat.sqlite3"\n'
        '[devnet]\nport = 0\npath = "data/devnet.sqlite3"\nblock_time_s = 0.1\n'
        'solidify_depth = 2\n'
        '[deposits]\nwatcher_interval_s = 0.1\n'
        '[withdrawals]\nsender_interval_s = 3600\nexpiry_margin_s = 0.2\n'
        # The account-security rules are tested in tests/test_withdrawal_holds.py.
        'new_address_hold_hours = 0\nrequire_verified_email = false\n')
    return p


def meterchat(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "meterchat.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)


async def cli(*args: str) -> subprocess.CompletedProcess:
    return await asyncio.to_thread(meterchat, *args)


def move_database_away(db_path: Path, to_dir: Path) -> None:
    """Step 2 of the procedure: the old file and its -wal and -shm files go elsewhere."""
    to_dir.mkdir()
    for suffix in ("", "-wal", "-shm"):
        f = db_path.with_name(db_path.name + suffix)
        if f.exists():
            shutil.move(f, to_dir / f.name)


async def start(aiohttp_client, cfg_path: Path):
    client = await aiohttp_client(create_app(load_config(cfg_path)))
    await client.app[SENDER].stop()  # the test drives the sender's passes itself
    return client


async def watcher_past(app, block: int) -> None:
    from meterchat.deposits import credits

    async def past():
        return ((await app[DB].read(credits.cursor)) or 0) >= block

    await eventually(past, timeout_s=20)


async def test_backup_while_queued_then_paid_then_restored_pays_nobody_twice(aiohttp_client,
                                                                            tmp_path):
    cfg = write_config(tmp_path)
    db_path = tmp_path / "data" / "meterchat.sqlite3"
    saved = tmp_path / "backups" / "meterchat-1.sqlite3"

    # The server runs; a seller asks for 400 tokens; the backup is taken while it is queued.
    first = await start(aiohttp_client, cfg)
    seller = await seller_with(first, "750")
    dest = fresh_address()
    w = (await (await withdraw(seller, "400", dest)).json())["withdrawal"]
    assert w["status"] == "queued"
    r = await cli("backup", "--config", str(cfg), str(saved))
    assert r.returncode == 0, r.stderr

    # Afterwards the sender pays it and it is confirmed on chain; then the server stops.
    done = await until_status(seller, w["id"], "confirmed", sender=sender_from_app(first.app))
    txid = done["txid"]
    paid_block = transfers_to(first.app[DEVNET], dest)[0][1]
    await first.close()

    # The procedure: move the database away, `meterchat restore`, start meterchat.
    move_database_away(db_path, tmp_path / "old")
    r = await cli("restore", "--config", str(cfg), str(saved))
    assert r.returncode == 0, r.stderr
    assert "audit ok" in r.stdout and "1 withdrawal(s)" in r.stdout
    assert "restored_from_backup" in r.stdout

    second = await start(aiohttp_client, cfg)
    app = second.app
    seller = Actor(second, seller.user, seller.token)  # the session is in the backup too
    sender = sender_from_app(app)
    await watcher_past(app, paid_block)  # the watcher re-reads the blocks since the backup
    for _ in range(5):
        await sender.run_once()
    assert sender.last_error is None

    # Nobody paid twice: one transfer on chain, the address holds the net once.
    assert [(t[0], t[2]) for t in transfers_to(app[DEVNET], dest)] == [(txid, "SUCCESS")]
    assert await app[GATEWAY].usdt_balance(dest) == NET_MUSDT
    mine = await withdrawal_of(seller, w["id"])
    assert mine["status"] == "review" and mine["review_reason"] == "restored_from_backup"
    assert mine["txid"] is None and "restored from a backup" in mine["reason"]
    admin = await admin_actor(second)
    listed = (await (await admin.get("/api/admin/withdrawals?status=review")).json())
    assert [x["id"] for x in listed["withdrawals"]] == [w["id"]]

    # Reconcile shows the transfer that no withdrawal accounts for, and what it may pay.
    report = await (await admin.get("/api/admin/reconcile")).json()
    assert report["ok"] is False
    [t] = report["unmatched_transfers"]
    assert (t["txid"], t["to_address"], t["amount_musdt"], t["usdt"]) == \
        (txid, dest, NET_MUSDT, "2.5")
    assert t["withdrawal_id"] is None and t["candidates"] == [w["id"]]
    assert report["unmatched_transfers_musdt"] == NET_MUSDT
    assert any(txid in p and "matches no withdrawal" in p and "withdrawals confirm" in p
               for p in report["problems"])
    await second.close()

    # `meterchat reconcile` says the same, and fails, with the server stopped.
    r = await cli("reconcile", "--config", str(cfg))
    assert r.returncode == 1, r.stderr
    assert [x["txid"] for x in json.loads(r.stdout)["unmatched_transfers"]] == [txid]
    assert "matches no withdrawal" in r.stderr and "reconcile FAILED" in r.stderr

    # The operator records the transfer as the payment: confirmed, ledger and chain agree.
    r = await cli("withdrawals", "confirm", w["id"], "--txid", txid, "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    confirmed = json.loads(r.stdout)["withdrawal"]
    assert confirmed["status"] == "confirmed" and confirmed["txid"] == txid
    assert confirmed["block_number"] == paid_block
    r = await cli("reconcile", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["unmatched_transfers"] == []
    r = await cli("audit", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["withdrawals_out_musdt"] == NET_MUSDT


async def test_a_restored_sent_withdrawal_keeps_its_transaction_and_approval_follows_it(
        aiohttp_client, tmp_path):
    cfg = write_config(tmp_path)
    db_path = tmp_path / "data" / "meterchat.sqlite3"
    saved = tmp_path / "backup.sqlite3"

    first = await start(aiohttp_client, cfg)
    seller = await seller_with(first, "750")
    dest = fresh_address()
    w = (await (await withdraw(seller, "400", dest)).json())["withdrawal"]
    sender = sender_from_app(first.app)
    await sender.run_once()  # signed, stored and broadcast; not in a block yet
    sent = await withdrawal_of(seller, w["id"])
    assert sent["status"] == "sent"
    await asyncio.to_thread(backup.backup, db_path, saved)
    done = await until_status(seller, w["id"], "confirmed", sender=sender)
    assert done["txid"] == sent["txid"]
    paid_block = transfers_to(first.app[DEVNET], dest)[0][1]
    await first.close()

    move_database_away(db_path, tmp_path / "old")
    held = await asyncio.to_thread(backup.restore, saved, db_path)
    assert held == [int(w["id"])]

    second = await start(aiohttp_client, cfg)
    app = second.app
    seller = Actor(second, seller.user, seller.token)
    admin = await admin_actor(second)
    await watcher_past(app, paid_block)
    sender = sender_from_app(app)
    for _ in range(3):
        await sender.run_once()
    mine = await withdrawal_of(seller, w["id"])
    assert (mine["status"], mine["review_reason"], mine["txid"]) == \
        ("review", "restored_from_backup", sent["txid"])  # its stored transaction is kept
    assert len(transfers_to(app[DEVNET], dest)) == 1
    # Its transaction may land (here: it did), so its tokens cannot be handed back.
    await assert_error(await admin.post(f"/api/admin/withdrawals/{w['id']}/reject", json={}),
                       409, "withdrawal_not_rejectable")
    report = await (await admin.get("/api/admin/reconcile")).json()
    [t] = report["unmatched_transfers"]
    assert (t["txid"], t["withdrawal_id"], t["withdrawal_status"]) == \
        (sent["txid"], w["id"], "review")
    assert report["ok"] is True and any("approve it" in x for x in report["warnings"])

    # Approval follows the stored transaction: confirmed by it, no second one built.
    resp = await admin.post(f"/api/admin/withdrawals/{w['id']}/approve")
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["withdrawal"]["status"] == "sent"
    done = await until_status(seller, w["id"], "confirmed", sender=sender)
    assert done["txid"] == sent["txid"]
    assert [t[0] for t in transfers_to(app[DEVNET], dest)] == [sent["txid"]]
    assert await app[GATEWAY].usdt_balance(dest) == NET_MUSDT
    report = await (await admin.get("/api/admin/reconcile")).json()
    assert report["ok"] is True and report["unmatched_transfers"] == []
    assert (await app[DB].read(ledger.audit)).ok


# -- the hold and the operator's confirm on a real database


def _seller(conn, email: str, tokens_musdt: int) -> int:
    from meterchat.accounts import users as accounts

    user = run_tx(conn, accounts.insert_user, email, "x", "seller", email.split("@")[0])
    run_tx(conn, ledger.transfer, ledger.CHAIN_DEPOSITS, ledger.user_account(user.id),
           tokens_musdt, "deposit")
    return user.id


def _request(conn, user_id: int, key: str, address: str, cfg, tokens: str = "400") -> int:
    q = rules.quote(parse_tokens(tokens), cfg)
    return run_tx(conn, requests.request_tx, user_id, key, address, q, cfg, now_ms()).withdrawal.id


def _signed(conn, wid: int, txid: str, expiration_ms: int) -> None:
    stx = SignedTransfer(txid, expiration_ms, "{}")
    assert run_tx(conn, sending.store_signed_tx, wid, stx, 40_000_000, now_ms())


def _one_of_each_status(conn, cfg) -> dict[str, int]:
    """A withdrawal in every status, each reached by the real state changes."""
    uid = _seller(conn, "s@example.com", 10_000_000_000)
    ids = {s: _request(conn, uid, s, fresh_address(), cfg) for s in
           ("queued", "review", "signed", "sent", "failed", "confirmed", "rejected")}
    conn.execute("UPDATE withdrawals SET status = 'review', review_reason = ? WHERE id = ?",
                 (rules.REVIEW_ABOVE_THRESHOLD, ids["review"]))
    far = now_ms() + 3_600_000
    for status, n in (("signed", 1), ("sent", 2), ("failed", 3), ("confirmed", 4)):
        _signed(conn, ids[status], f"{n:064x}", far)
    run_tx(conn, sending.note_broadcast_tx, ids["sent"], f"{2:064x}", "SUCCESS", True, None,
           now_ms())
    run_tx(conn, sending.fail_tx, ids["failed"], f"{3:064x}", "REVERT", "reverted", now_ms())
    run_tx(conn, sending.confirm_tx, ids["confirmed"], f"{4:064x}", 10, now_ms())
    run_tx(conn, requests.reject_tx, ids["rejected"], None, now_ms())
    return ids


def _statuses(conn) -> dict[int, tuple]:
    return {r[0]: (r[1], r[2], r[3]) for r in conn.execute(
        "SELECT id, status, review_reason, txid FROM withdrawals")}


@pytest.mark.parametrize("how", ["meterchat restore", "copied back by hand"])
async def test_every_withdrawal_not_final_in_the_backup_waits_for_the_operator(
        aiohttp_client, tmp_path, how):
    from tests.conftest import chain_config

    cfg = chain_config(tmp_path, withdrawals={"sender_interval_s": 3600})
    live = tmp_path / "meterchat.sqlite3"
    conn = connect_sync(live)
    migrate_sync(conn)
    ids = _one_of_each_status(conn, cfg.withdrawals)
    before = _statuses(conn)
    conn.close()
    saved = tmp_path / "backup.sqlite3"
    backup.backup(live, saved)

    restored = tmp_path / "restored.sqlite3"
    if how == "meterchat restore":
        held = backup.restore(saved, restored)
    else:
        shutil.copy(saved, restored)
        client = await aiohttp_client(create_app(cfg.replace(database={"path": restored})))
        held = None
        await client.close()
    conn = connect_sync(restored)
    after = _statuses(conn)
    not_final = [ids[s] for s in ("queued", "review", "signed", "sent", "failed")]
    if held is not None:
        assert held == not_final
    for status, wid in ids.items():
        if status in ("confirmed", "rejected"):
            assert after[wid] == before[wid]
        else:  # review, restored_from_backup, the txid of a stored transaction kept
            assert after[wid] == ("review", rules.REVIEW_RESTORED, before[wid][2]), status
    logged = [r[0] for r in conn.execute(
        "SELECT target FROM audit_log WHERE action = 'withdrawal.hold' ORDER BY id")]
    assert logged == [f"withdrawal:{i}" for i in not_final]
    assert conn.execute("SELECT COUNT(*) FROM backup_marker").fetchone()[0] == 0
    # Approval: a signed or sent one follows its stored transaction; the others queue.
    assert run_tx(conn, requests.approve_tx, ids["sent"], None, now_ms()).status == "sent"
    assert run_tx(conn, requests.approve_tx, ids["signed"], None, now_ms()).status == "signed"
    assert run_tx(conn, requests.approve_tx, ids["queued"], None, now_ms()).status == "queued"
    assert run_tx(conn, requests.approve_tx, ids["failed"], None, now_ms()).status == "queued"
    assert run_read(conn, ledger.audit).ok
    conn.close()

    # The live database is never marked: the server opening it again holds nothing.
    client = await aiohttp_client(create_app(cfg))
    await client.close()
    conn = connect_sync(live)
    assert not any(reason == rules.REVIEW_RESTORED for _, reason, _ in _statuses(conn).values())
    assert conn.execute("SELECT COUNT(*) FROM audit_log WHERE action = 'withdrawal.hold'"
                        ).fetchone()[0] == 0
    conn.close()


def test_operator_confirms_a_restored_withdrawal_only_with_a_transfer_that_paid_it(tmp_path):
    from tests.conftest import make_config

    cfg = make_config(tmp_path).withdrawals
    conn = connect_sync(tmp_path / "m.sqlite3")
    migrate_sync(conn)
    uid = _seller(conn, "s@example.com", 100_000_000)
    a, b = fresh_address(), fresh_address()
    w1 = _request(conn, uid, "k1", a, cfg)
    w2 = _request(conn, uid, "k2", a, cfg)  # the same address and amount
    w3 = _request(conn, uid, "k3", b, cfg)
    _signed(conn, w3, "ee" * 32, now_ms() + 60_000)  # restored while signed
    queued = _request(conn, uid, "k4", b, cfg, "300")
    run_tx(conn, requests.hold_restored_tx, now_ms(), "a test backup")
    run_tx(conn, requests.approve_tx, queued, None, now_ms())

    def out(txid: str, to: str, amount: int, index: int = 0) -> TransferLog:
        return TransferLog(txid, index, "TUSDT", "THOT", to, amount)

    paid, short, elsewhere, later = "aa" * 32, "bb" * 32, "cc" * 32, "dd" * 32
    run_tx(conn, reconcile.record_outgoing_tx, 7, 1_000, (
        out(paid, a, NET_MUSDT), out(short, a, NET_MUSDT - 1), out(elsewhere, b, NET_MUSDT),
        out(later, b, NET_MUSDT)), now_ms())
    run_tx(conn, reconcile.record_outgoing_tx, 7, 1_000, (out(paid, a, NET_MUSDT),), now_ms())

    def confirm(wid: int, txid: str, at_ms: int | None = None):
        return run_tx(conn, requests.confirm_paid_by_tx, wid, txid, None, at_ms or now_ms(), 200)

    for txid in (short, elsewhere, "ff" * 32):  # wrong amount, wrong address, never seen
        with pytest.raises(Unprocessable) as exc:
            confirm(w1, txid)
        assert exc.value.code == "transfer_not_found"
    with pytest.raises(Conflict) as exc:
        confirm(queued, later)
    assert exc.value.code == "withdrawal_not_confirmable"

    done = confirm(w1, paid)
    assert (done.status, done.txid, done.block_number) == ("confirmed", paid, 7)
    assert confirm(w1, paid).status == "confirmed"  # repeating it changes nothing
    with pytest.raises(Conflict) as exc:
        confirm(w2, paid)  # one transfer pays one withdrawal
    assert exc.value.code == "transfer_already_matched"
    # w3's own stored transaction may still land: not confirmed by another one until it
    # has expired; then that one is marked expired.
    with pytest.raises(Conflict) as exc:
        confirm(w3, later)
    assert exc.value.code == "transaction_may_land"
    assert confirm(w3, later, now_ms() + 61_000).status == "confirmed"
    assert store.transactions_of(conn, w3)[0]["outcome"] == "expired"

    listed, total = run_read(conn, reconcile.unmatched_transfers)
    assert [t["txid"] for t in listed] == [short, elsewhere]
    assert total == 2 * NET_MUSDT - 1
    assert [t["candidates"] for t in listed] == [[], []]
    report = run_read(conn, ledger.audit)
    assert report.ok and report.as_dict()["withdrawals_out_musdt"] == 2 * NET_MUSDT
    conn.close()


def _report(**kw) -> reconcile.Report:
    base = dict(ok=False, network="devnet", wallet_address="TW", liability_musdt=100,
                users_musdt=80, clearing_withdrawals_musdt=20, wallet_usdt_musdt=1_000,
                wallet_trx_sun=10**9)
    return reconcile.Report(**{**base, **kw})


def _transfer(**kw) -> dict:
    base = dict(txid="ab" * 32, log_index=0, block_number=9, block_time=None,
                from_address="TW", to_address="TX", amount_musdt=2_500_000, usdt="2.5",
                withdrawal_id=None, withdrawal_status=None, candidates=[])
    return {**base, **kw}


def test_judge_a_transfer_no_withdrawal_knows_is_a_problem_naming_what_it_may_pay():
    r = reconcile.judge(_report(unmatched_transfers=[_transfer(candidates=["7"])]), 40 * 10**6)
    assert not r.ok
    assert "matches no withdrawal" in r.problems[0] and "withdrawal 7" in r.problems[0]
    assert "meterchat withdrawals confirm ID --txid " + "ab" * 32 in r.problems[0]


def test_judge_the_stored_transaction_of_a_withdrawal_is_only_a_warning():
    for status in ("review", "sent"):
        r = reconcile.judge(_report(unmatched_transfers=[
            _transfer(withdrawal_id="7", withdrawal_status=status)]), 40 * 10**6)
        assert r.ok and r.problems == [] and "withdrawal 7" in r.warnings[0]
