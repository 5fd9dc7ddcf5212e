"""A local append-only journal that makes spend records crash-proof cheaply.

A record is appended here (one ``write``: it is in the OS page cache, so it survives a
``kill -9`` of the gateway) before the response is completed to the client; the database
insert happens later, in batches, off the request path. Each process writes its own
segment files and holds an exclusive ``flock`` on the open one; any process that can
take the lock on a segment knows its writer is gone and replays it.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

import orjson

JOURNAL_DIR = "journal"


class Journal:
    """This process's current segment plus the rotated ones not yet committed."""

    def __init__(self, data_dir: Path) -> None:
        self.directory = data_dir / JOURNAL_DIR
        self.directory.mkdir(parents=True, exist_ok=True)
        self._fd = -1
        self._path: Path | None = None
        self._written = 0

    def _open(self) -> None:
        name = f"spend-{os.getpid()}-{time.time_ns()}.jsonl"
        self._path = self.directory / name
        self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._written = 0

    def append(self, record: dict[str, object]) -> None:
        """Write one record line; durable against a process crash when this returns."""
        if self._fd < 0:
            self._open()
        os.write(self._fd, orjson.dumps(record) + b"\n")
        self._written += 1

    def rotate(self) -> Path | None:
        """Close the current segment (if it holds records) and return its path."""
        if self._fd < 0 or self._written == 0:
            return None
        path = self._path
        os.close(self._fd)  # also drops the lock; the caller deletes it once committed
        self._fd, self._path = -1, None
        return path

    def close(self) -> Path | None:
        """Close for shutdown; returns the last segment if it holds records."""
        if self._fd < 0 or self._path is None:
            return None
        path, written = self._path, self._written
        os.close(self._fd)
        self._fd, self._path = -1, None
        if written == 0:
            path.unlink(missing_ok=True)
            return None
        return path

    def orphans(self) -> Iterator[tuple[Path, list[dict[str, object]]]]:
        """Segments whose writer is gone, with their records (a torn last line skipped)."""
        for path in sorted(self.directory.glob("spend-*.jsonl")):
            if path == self._path:
                continue
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live process still writes it
                with os.fdopen(os.dup(fd), "rb") as handle:
                    lines = handle.read().splitlines()
            finally:
                os.close(fd)
            records = []
            for line in lines:
                try:
                    records.append(orjson.loads(line))
                except orjson.JSONDecodeError:
                    continue
            yield path, records
