"""Structured JSON logs: one object per line on stderr."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import Any, TextIO

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


class LoopBatchedHandler(logging.StreamHandler[TextIO]):
    """A stream handler that, on an event loop, writes the lines logged during one turn
    of the loop together: one write (a system call) per turn rather than one per request
    line. Lines logged off the loop (threads, startup, exit) are written at once, after
    any that wait; ``flush`` (and so ``logging.shutdown`` at exit) writes what waits."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._waiting: list[str] = []
        self._drain_on: asyncio.AbstractEventLoop | None = None

    def emit(self, record: logging.LogRecord) -> None:
        """Format ``record`` now; write it now, or at the end of this loop turn."""
        try:
            line = self.format(record)
        except Exception:  # noqa: BLE001  (logging's contract: handleError reports it)
            self.handleError(record)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._waiting.append(line)
            self.flush()
            return
        self._waiting.append(line)
        if self._drain_on is not loop:  # the first line of this turn (or of this loop)
            self._drain_on = loop
            loop.call_soon(self._drain)

    def _drain(self) -> None:
        self._drain_on = None
        self.flush()

    def flush(self) -> None:
        """Write the waiting lines in one go."""
        self.acquire()
        try:
            if self._waiting:
                lines, self._waiting = self._waiting, []
                try:
                    self.stream.write("\n".join(lines) + "\n")
                except (OSError, ValueError):  # stream gone or closed: the lines are lost
                    return
            super().flush()
        finally:
            self.release()


def configure_logging(level: str) -> None:
    """Send every tollway log line to stderr as JSON."""
    # Records carry no caller, thread or process fields (the JSON lines never show them);
    # skipping them saves a stack walk and two lookups on every request's log line.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = LoopBatchedHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("tollway")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
