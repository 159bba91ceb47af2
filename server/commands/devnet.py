"""`meterchat devnet serve` (the embedded TRON devnet node on its own) and `meterchat devnet
transfer` (test USDT or TRX from its faucet)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from meterchat.commands.serve import until_stopped
from meterchat.core.config import Config
from meterchat.core.logs import setup_logging


def cmd_devnet_serve(args: argparse.Namespace, config: Config) -> int:
    setup_logging(config.server.log_level)
    asyncio.run(_devnet_serve(config))
    return 0


async def _devnet_serve(config: Config) -> None:
    from meterchat.chain.devnet import DevnetNode, DevnetSettings

    node = DevnetNode(DevnetSettings.from_config(config.devnet))
    await node.start()
    try:
        status = node.status()
        print(f"devnet node on {node.url} (USDT contract {status['usdt_contract']}, deposit "
              f"address {status['deposit_address']})", flush=True)
        await until_stopped()
    finally:
        await node.stop()


def cmd_devnet_transfer(args: argparse.Namespace, config: Config) -> int:
    import httpx

    url = args.node or f"http://{config.devnet.host}:{config.devnet.port}"
    body = {"to": args.to, "usdt": args.usdt} if args.usdt else {"to": args.to, "trx": args.trx}
    if not (args.usdt or args.trx):
        print("give --usdt AMOUNT or --trx AMOUNT", file=sys.stderr)
        return 2
    try:
        resp = httpx.post(url.rstrip("/") + "/devnet/transfer", json=body, timeout=10,
                          trust_env=False)
        answer = resp.json()
    except (httpx.HTTPError, ValueError) as exc:
        print(f"meterchat: no devnet node answers at {url} ({exc}); start it with "
              "`meterchat serve` or `meterchat devnet serve`", file=sys.stderr)
        return 1
    if resp.status_code != 200:
        print(f"meterchat: {answer['error']['message']}", file=sys.stderr)
        return 1
    print(answer["txid"])
    return 0
