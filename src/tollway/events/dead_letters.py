"""Events a sink refused too many times, kept where an operator can read them.

``<data_dir>/events/dead-letters.jsonl``: one JSON object per line, ``{"sink",
"failed_at", "attempts", "error", "event"}`` with the whole event. ``GET
/api/v1/events/dead-letters`` and ``tollway events dead-letters`` list the newest.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from tollway.telemetry.sinks import Event

log = logging.getLogger("tollway.events")
DEAD_LETTERS_FILE = Path("events") / "dead-letters.jsonl"
_ERROR_CHARS = 500


class DeadLetters:
    """The dead-letter file of one data dir."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / DEAD_LETTERS_FILE

    def put(self, sink: str, event: Event, attempts: int, error: str) -> None:
        """Keep ``event`` with why ``sink`` gave up on it."""
        log.warning(
            "event dead-lettered",
            extra={"fields": {"sink": sink, "event_id": event.id, "error": error[:200]}},
        )
        entry = {
            "sink": sink,
            "failed_at": datetime.now(UTC).isoformat(),
            "attempts": attempts,
            "error": error[:_ERROR_CHARS],
            "event": orjson.Fragment(event.raw),
        }
        line = orjson.dumps(entry) + b"\n"
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def newest(self, limit: int, sink: str | None = None) -> tuple[int, list[dict[str, Any]]]:
        """How many entries there are (for ``sink``, or all) and the newest ``limit``."""
        total = 0
        kept: deque[dict[str, Any]] = deque(maxlen=limit)
        try:
            handle = self.path.open("rb")
        except FileNotFoundError:
            return 0, []
        with handle:
            for line in handle:
                try:
                    entry = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue  # a line cut by a crash
                if isinstance(entry, dict) and (sink is None or entry.get("sink") == sink):
                    total += 1
                    kept.append(entry)
        return total, list(reversed(kept))
