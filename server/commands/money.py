"""`meterchat audit` (every balance recomputed from the postings) and `meterchat reconcile`
(what users hold against the hot wallet on chain, with the operator's TRX costs): exit 1 when
the money does not add up."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from typing import TYPE_CHECKING, Any

from meterchat.commands import open_db
from meterchat.core.config import Config
from meterchat.core.db import now_ms, run_read
from meterchat.core.units import SUN_PER_TRX
from meterchat.money import ledger

if TYPE_CHECKING:  # the chain's modules load only for reconcile
    from meterchat.operator.costs import CostRow
    from meterchat.operator.reconcile import Liabilities, Report


def cmd_audit(args: argparse.Namespace, config: Config) -> int:
    conn = open_db(config)
    report = run_read(conn, ledger.audit)
    print(json.dumps(report.as_dict(), indent=2))
    if not report.ok:
        print("audit FAILED: the ledger does not add up", file=sys.stderr)
        return 1
    print("audit ok", file=sys.stderr)
    return 0


def cmd_reconcile(args: argparse.Namespace, config: Config) -> int:
    from meterchat.operator import costs, reconcile

    conn = open_db(config)
    owed = run_read(conn, reconcile.liabilities)
    at = now_ms()
    rows = run_read(conn, costs.gather, at)
    conn.close()
    report = asyncio.run(_reconcile_with_chain(config, owed, rows, at))
    print(json.dumps(report.as_dict(), indent=2))
    if report.costs is not None:
        print_costs(report.costs)
    for line in report.warnings:
        print(f"warning: {line}", file=sys.stderr)
    for line in report.problems:
        print(f"problem: {line}", file=sys.stderr)
    print("reconcile ok" if report.ok else "reconcile FAILED", file=sys.stderr)
    return 0 if report.ok else 1


def print_costs(report: dict[str, Any]) -> None:
    """The cost report as a few lines for a terminal (stderr; stdout stays one JSON)."""
    total, runway = report["total"], report["runway"]
    per_usdt = total["trx_per_usdt"]
    print(f"costs, last {report['days']} days: {total['trx_spent']} TRX spent on"
          f" {total['transactions']} transaction(s) moving {total['usdt_moved']} USDT"
          + (f" ({per_usdt} TRX per USDT)" if per_usdt else ""), file=sys.stderr)
    for kind, sums in report["by_kind"].items():
        print(f"  {kind}: {sums['trx_spent']} TRX, {sums['usdt_moved']} USDT,"
              f" {sums['transactions']} transaction(s)", file=sys.stderr)
    for day in report["per_day"]:
        if day["transactions"]:
            print(f"  {day['day']}: {day['trx_spent']} TRX, {day['usdt_moved']} USDT",
                  file=sys.stderr)
    left = runway["days_left"]
    print(f"hot wallet TRX runway: {left} days ({runway['trx_balance']} TRX at"
          f" {runway['average_trx_per_day']} TRX a day, the last {runway['average_days']} days)"
          if left is not None else
          f"hot wallet TRX runway: no TRX spent in the last {runway['average_days']} days",
          file=sys.stderr)


async def _reconcile_with_chain(config: Config, owed: Liabilities,
                                cost_rows: list[CostRow] | None = None,
                                at_ms: int | None = None) -> Report:
    """On devnet without an endpoint: use the devnet node of a running server when one
    answers at [devnet] host:port, else start the node in this process for the check (the
    same way `serve` does, through chain_ctx)."""
    import httpx
    from aiohttp import web

    from meterchat.chain_ctx import (
        CHAIN_INFO,
        DEVNET,
        GATEWAY,
        _devnet_status,
        chain_ctx,
        configured_endpoints,
    )
    from meterchat.operator import reconcile

    cfg = config
    if config.chain.network == "devnet" and not configured_endpoints(config) \
            and config.devnet.port:
        url = f"http://{config.devnet.host}:{config.devnet.port}"
        try:
            await _devnet_status(url, 1.0)
            cfg = config.replace(chain={"endpoint": url})
        except (httpx.HTTPError, ValueError):
            pass  # no node running: chain_ctx starts one
    holder = web.Application()
    ctx = chain_ctx(cfg)(holder)
    await ctx.__anext__()
    try:
        info = holder[CHAIN_INFO]
        wallet = info.hot_wallet_address
        node = holder.get(DEVNET)
        if wallet is None and node is not None:
            wallet = node.hot_wallet_address
        elif wallet is None and cfg.chain.network == "devnet":
            status = await _devnet_status(info.endpoint, cfg.chain.request_timeout_s)
            wallet = status.get("hot_wallet_address")
        return await reconcile.reconcile(
            owed, holder[GATEWAY], info.network, wallet, info.deposit_address,
            cfg.withdrawals.fee_limit_trx * SUN_PER_TRX, cost_rows, at_ms)
    finally:
        with contextlib.suppress(StopAsyncIteration):
            await ctx.__anext__()
