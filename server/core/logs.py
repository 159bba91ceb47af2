"""Structured logs: one JSON line per event, on stderr. Callers pass fields, never secrets:
no passwords, tokens, private keys or full query strings."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from meterchat.core.units import iso_ms

_CONFIGURED = False


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": iso_ms(int(record.created * 1000)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            out.update(fields)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def setup_logging(level: str = "info") -> None:
    global _CONFIGURED
    root = logging.getLogger()
    root.setLevel(level.upper())
    if _CONFIGURED:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    _CONFIGURED = True


def event(logger: logging.Logger, name: str, level: int = logging.INFO,
          **fields: Any) -> None:
    """Log one event with structured fields."""
    logger.log(level, name, extra={"fields": fields})
