"""`meterchat mail list`: the outbox, newest first (where a reset or verification link is
read when no SMTP server is configured)."""

from __future__ import annotations

import argparse
import json

from meterchat.commands import open_db
from meterchat.core.config import Config
from meterchat.core.db import run_read
from meterchat.core.units import iso_ms


def cmd_mail_list(args: argparse.Namespace, config: Config) -> int:
    """The outbox, newest first, one JSON object a line (with no SMTP server this is where a
    reset or verification link is read)."""
    from meterchat.mail import outbox

    conn = open_db(config)
    status = None if args.status == "all" else args.status
    for m in run_read(conn, outbox.listing, status, args.limit):
        print(json.dumps({
            "id": str(m.id), "to": m.to_address, "kind": m.kind, "subject": m.subject,
            "status": m.status, "attempts": m.attempts, "last_error": m.last_error,
            "created_at": iso_ms(m.created_at_ms), "sent_at": iso_ms(m.sent_at_ms),
            "text": m.body_text,
        }))
    return 0
