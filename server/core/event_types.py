"""The names of the operator events (API.md "Operator events"), known to the config (a
webhook's `events` list) and to the events room, which writes them."""

from __future__ import annotations

EVENT_TYPES = ("deposit.credited", "deposit.unmatched", "withdrawal.review",
               "withdrawal.failed", "withdrawal.confirmed", "hot_wallet.low",
               "watcher.lagging", "dispute.opened", "report.opened", "photo.pending")
