"""A real meterchat process that dies by SIGKILL at one point of a sweep, for
tests/test_sweeps_kill.py: it opens the app from a config file (its embedded devnet, the
watcher, the database), gives a buyer a personal address and pays it, waits for the credit,
then runs the sweeper with a hook that SIGKILLs this very process at the named point
("topup_signed", "topup_broadcast", "signed", "broadcast").

    python tests/sweep_kill_runner.py CONFIG POINT
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from aiohttp import web

from meterchat.accounts import users
from meterchat.app import create_app
from meterchat.appkeys import DB
from meterchat.chain_ctx import CHAIN_INFO, DEVNET
from meterchat.core.config import load_config
from meterchat.core.db import now_ms
from meterchat.deposits import addresses
from meterchat.deposits.sweeper import SWEEPER, sweeper_from_app
from meterchat.deposits.watcher import ADDRESSES
from meterchat.money import ledger


async def main(cfg_path: str, point: str) -> None:
    config = load_config(cfg_path).replace(sweeps={"interval_s": 3600})
    app = create_app(config)
    runner = web.AppRunner(app)
    await runner.setup()  # runs every cleanup_ctx: database, devnet, watcher, sweeper
    await app[SWEEPER].stop()
    db = app[DB]
    user = await db.tx(users.insert_user_tx, "kill@example.com", "x", "buyer", "kill")
    mine = await db.tx(addresses.allocate_tx, user.id, app[CHAIN_INFO].deposit_xpub, now_ms())
    app[ADDRESSES].add(mine)
    app[DEVNET].transfer(mine.address, usdt_musdt=8_000_000)
    for _ in range(600):
        if await db.read(ledger.balance, ledger.user_account(user.id)) > 0:
            break
        await asyncio.sleep(0.05)
    print(f"address {mine.address}", flush=True)

    def die(at: str) -> None:
        if at == point:
            os.kill(os.getpid(), signal.SIGKILL)

    sweeper = sweeper_from_app(app, hook=die)
    for _ in range(600):
        await sweeper.run_once()
        await asyncio.sleep(0.05)
    print("the kill point was never reached", file=sys.stderr)
    sys.exit(3)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
