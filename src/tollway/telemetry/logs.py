"""Structured JSON logs: one object per line on stderr."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson

ACCESS_LOGGER = "tollway.access"


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON line; fields passed as ``extra={"fields": {...}}``."""

    def __init__(self) -> None:
        super().__init__()
        self._cached = (-1, "")

    def _second(self, second: int) -> str:
        # One access-log line per request: format each wall-clock second once.
        if self._cached[0] != second:
            self._cached = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
        return self._cached[1]

    def format(self, record: logging.LogRecord) -> str:
        """The JSON line for ``record``."""
        entry: dict[str, Any] = {
            "ts": self._second(int(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: str) -> None:
    """Send every tollway log line to stderr as JSON."""
    # Records carry no caller, thread or process fields (the JSON lines never show them);
    # skipping them saves a stack walk and two lookups on every request's log line.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("tollway")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
