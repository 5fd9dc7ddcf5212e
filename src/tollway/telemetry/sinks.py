"""Event sinks: where each finished proxy call's record goes besides the database.

A sink receives one event per call (the spend record's fields, guard decisions and
cache status included) on the request path, so ``emit`` must return at once: a sink
queues and writes in the background, and when its queue is full it drops the event and
counts the drop rather than slow or fail the call. Sinks are plugins (entry-point group
``tollway.sinks``); the built-in ``jsonl`` is registered the same way.

    sinks:
      - {type: jsonl, path: /var/log/tollway/calls.jsonl}
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import orjson

log = logging.getLogger("tollway.sinks")
Event = Mapping[str, Any]


class Sink(ABC):
    """Receives every finished call's event."""

    name: ClassVar[str]

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options

    @abstractmethod
    def emit(self, event: Event) -> None:
        """Take one event; must not block or raise."""

    async def start(self) -> None:
        """Begin background work (called once the event loop runs)."""
        return None

    async def aclose(self) -> None:
        """Deliver what is queued, then stop."""
        return None


class JsonlSink(Sink):
    """Appends each event as one JSON line to a file (``path``), flushed every
    ``flush_seconds`` (default 1) from a background task; at most ``max_queue`` events
    (default 100,000) wait, beyond which new ones are dropped and counted."""

    name = "jsonl"

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__(options)
        path = options.get("path")
        if not isinstance(path, str) or not path:
            raise ValueError("the jsonl sink needs a 'path'")
        self.path = Path(path)
        self._flush_seconds = float(options.get("flush_seconds", 1.0))
        self._max_queue = int(options.get("max_queue", 100_000))
        self._queue: deque[bytes] = deque()
        self.dropped = 0
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def emit(self, event: Event) -> None:
        if len(self._queue) >= self._max_queue:
            self.dropped += 1
            return
        self._queue.append(orjson.dumps(event, default=str) + b"\n")

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._flush_seconds)
            await self.flush()
            if self._wake.is_set():
                return

    async def flush(self) -> None:
        """Write what is queued (the write runs in a thread; the loop never waits on
        the disk)."""
        if not self._queue:
            return
        lines = [self._queue.popleft() for _ in range(len(self._queue))]
        try:
            await asyncio.to_thread(self._append, b"".join(lines))
        except OSError:
            self.dropped += len(lines)
            log.exception("writing events failed", extra={"fields": {"path": str(self.path)}})
        if self.dropped:
            log.warning(
                "events dropped", extra={"fields": {"sink": self.name, "count": self.dropped}}
            )
            self.dropped = 0

    def _append(self, data: bytes) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)

    async def aclose(self) -> None:
        if self._task is None:
            await self.flush()
            return
        self._wake.set()
        await self._task
        self._task = None
