"""The ``file`` sink: events appended as JSON lines to a file that rotates by size.

When the next batch would take the file past ``max_bytes``, it is renamed ``<path>.1``
(``.1`` to ``.2`` and so on, ``backups`` kept, the oldest deleted) and a new file is
started; an event is never split across files. Processes sharing the file (several
workers) take turns through an ``flock`` on ``<path>.lock``. Writes run in a thread.

    events:
      file: /var/log/tollway/events.jsonl          # or {path: ..., max_bytes: ..., backups: ...}
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from tollway.telemetry.sinks import Event, Failure, Sink


class FileOptions(BaseModel):
    """The file sink's own options."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    path: Path
    max_bytes: int = Field(100 * 1024 * 1024, ge=1024, description="Rotate beyond this size.")
    backups: int = Field(5, ge=0, le=1000, description="Rotated files kept (<path>.1 ...).")


class FileSink(Sink):
    """Appends events to a rotating JSONL file."""

    defaults: ClassVar[Mapping[str, Any]] = {"name": "file", "batch_size": 1000}

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__(options)
        self.file = FileOptions.model_validate(options)
        self.path = self.file.path

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)

    async def send(self, events: Sequence[Event]) -> list[Failure]:
        data = b"".join(event.raw + b"\n" for event in events)
        await asyncio.to_thread(self._write, data)
        return []

    def _write(self, data: bytes) -> None:
        lock = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                size = self.path.stat().st_size
            except FileNotFoundError:
                size = 0
            if size and size + len(data) > self.file.max_bytes:
                self._rotate()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
        finally:
            os.close(lock)  # releases the flock

    def _rotate(self) -> None:
        """``path`` becomes ``path.1``, ``path.1`` becomes ``path.2``, ...; the oldest
        beyond ``backups`` is deleted."""
        backups = self.file.backups
        if backups == 0:
            self.path.unlink(missing_ok=True)
            return
        Path(f"{self.path}.{backups}").unlink(missing_ok=True)
        for index in range(backups - 1, 0, -1):
            older = Path(f"{self.path}.{index}")
            if older.exists():
                older.rename(f"{self.path}.{index + 1}")
        self.path.rename(f"{self.path}.1")
