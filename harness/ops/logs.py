"""Structured logs: one JSON object a line when stderr is not a terminal (for log shippers and
schedulers), a short readable line when it is. Fields passed with ``extra=`` are included."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class ReadableFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{k}={v}" for k, v in vars(record).items() if k not in _STANDARD)
        return f"{record.levelname.lower():7} {record.getMessage()} {fields}".rstrip()


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time, not the one at configuration time."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure(level: str = "INFO") -> None:
    """Send the harness's own logs (logger ``harness``) to stderr; idempotent."""
    handler = _StderrHandler()
    handler.setFormatter(ReadableFormatter() if sys.stderr.isatty() else JsonFormatter())
    logger = logging.getLogger("harness")
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False
