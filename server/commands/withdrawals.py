"""`meterchat withdrawals list | approve | confirm | reject`: the operator's review of
withdrawals (held ones approved or rejected, a restored one confirmed paid by its TXID)."""

from __future__ import annotations

import argparse
import json
import sys

from meterchat.commands import open_db
from meterchat.core.config import Config
from meterchat.core.db import now_ms, run_read, run_tx


def cmd_withdrawals(args: argparse.Namespace, config: Config) -> int:
    from meterchat.withdrawals import requests as wd

    conn = open_db(config)
    if args.withdrawals_command == "list":
        status = None if args.status == "all" else args.status
        rows = run_read(conn, wd.admin_withdrawals, status)
        print(json.dumps({"withdrawals": rows}, indent=2))
        return 0
    try:
        withdrawal_id = int(args.id)
    except ValueError:
        print(f"meterchat: {args.id!r} is not a withdrawal id", file=sys.stderr)
        return 2
    if args.withdrawals_command == "approve":
        w = run_tx(conn, wd.approve_tx, withdrawal_id, None, now_ms())
    elif args.withdrawals_command == "confirm":
        from meterchat.deposits.routes import parse_txid

        margin_ms = int(config.withdrawals.expiry_margin_s * 1000)
        w = run_tx(conn, wd.confirm_paid_by_tx, withdrawal_id, parse_txid(args.txid), None,
                   now_ms(), margin_ms)
    else:
        w = run_tx(conn, wd.reject_tx, withdrawal_id, None, now_ms(), args.reason)
    print(json.dumps({"withdrawal": w.view(admin=True)}, indent=2))
    return 0
