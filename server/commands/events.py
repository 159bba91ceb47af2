"""`meterchat events verify` (a webhook's signature checked, for the receiving side) and
`meterchat events list` (the newest operator events with their deliveries)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from meterchat.commands import open_db
from meterchat.core.config import Config
from meterchat.core.db import run_read


def cmd_events_verify(args: argparse.Namespace, config: Config) -> int:
    """Check a webhook's X-Meterchat-Signature against the body read from standard input,
    with the secret of the environment variable named; exit 0 when valid, 1 when not."""
    from meterchat.events import rules

    secret = os.environ.get(args.secret_env, "")
    if not secret:
        print(f"meterchat: the environment variable {args.secret_env} is not set",
              file=sys.stderr)
        return 2
    body = sys.stdin.buffer.read()
    verdict = rules.verify(secret.encode(), args.header, body, int(time.time()),
                           args.tolerance_s)
    print(("valid: " if verdict.ok else "INVALID: ") + verdict.reason,
          file=sys.stdout if verdict.ok else sys.stderr)
    return 0 if verdict.ok else 1


def cmd_events_list(args: argparse.Namespace, config: Config) -> int:
    """The newest events, one JSON object a line, with their deliveries."""
    from meterchat.events import webhooks

    conn = open_db(config)
    view = run_read(conn, webhooks.listing, args.type, args.dead, None, args.limit)
    for e in view["events"]:
        e.pop("attempts", None)
        print(json.dumps(e))
    return 0
