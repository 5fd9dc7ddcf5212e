"""A local append-only journal that makes spend records crash-proof cheaply.

A record is copied into a shared memory map of a journal segment before the response is
completed to the client. The mapping is the file's page cache, so the record survives a
``kill -9`` of the gateway the moment the copy is done, and the copy costs no system call
(a ``write`` per request would also hand the interpreter lock to other threads, which
shows up as latency). The database insert happens later, in batches, off the request
path. Each process writes its own segments and holds an exclusive ``flock`` on the open
one; any process that can take the lock on a segment knows its writer is gone and
replays it. Unused space at a segment's end is zeros, which replay ignores.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import time
from collections.abc import Iterator
from pathlib import Path

import orjson

JOURNAL_DIR = "journal"
SEGMENT_BYTES = 8 * 1024 * 1024


class _Segment:
    """One mapped, locked segment file."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.ftruncate(self.fd, size)
        self.map = mmap.mmap(self.fd, size, mmap.MAP_SHARED, mmap.PROT_WRITE | mmap.PROT_READ)
        self.used = 0

    def fits(self, size: int) -> bool:
        return self.used + size <= len(self.map)

    def write(self, line: bytes) -> None:
        end = self.used + len(line)
        self.map[self.used : end] = line
        self.used = end

    def close(self) -> None:
        """Unmap, cut the file to what was written, release the lock."""
        self.map.close()
        os.ftruncate(self.fd, self.used)
        os.close(self.fd)


class Journal:
    """This process's current segment plus the filled ones not yet committed."""

    def __init__(self, data_dir: Path, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = data_dir / JOURNAL_DIR
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._segment_bytes = segment_bytes
        self._current: _Segment | None = None
        self._closed: list[Path] = []

    def _open(self, at_least: int) -> _Segment:
        name = f"spend-{os.getpid()}-{time.time_ns()}.jsonl"
        return _Segment(self.directory / name, max(self._segment_bytes, at_least))

    def append(self, record: dict[str, object]) -> None:
        """Add one record line; durable against a process crash when this returns."""
        line = orjson.dumps(record) + b"\n"
        current = self._current
        if current is None or not current.fits(len(line)):
            if current is not None:
                current.close()
                self._closed.append(current.path)
            current = self._current = self._open(len(line))
        current.write(line)

    def rotate(self) -> list[Path]:
        """Close the segments holding records so far; the caller deletes them once their
        records are committed."""
        current = self._current
        if current is not None and current.used:
            current.close()
            self._closed.append(current.path)
            self._current = None
        closed, self._closed = self._closed, []
        return closed

    def close(self) -> list[Path]:
        """Close for shutdown; returns the segments that hold records."""
        current = self._current
        if current is not None and not current.used:
            current.close()
            current.path.unlink(missing_ok=True)
            self._current = None
        return self.rotate()

    def orphans(self) -> Iterator[tuple[Path, list[dict[str, object]]]]:
        """Segments whose writer is gone, with their records (a torn last line skipped)."""
        current = self._current.path if self._current else None
        for path in sorted(self.directory.glob("spend-*.jsonl")):
            if path == current:
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
                    data = handle.read()
            finally:
                os.close(fd)
            records = []
            for line in data.split(b"\0", 1)[0].splitlines():
                try:
                    records.append(orjson.loads(line))
                except orjson.JSONDecodeError:
                    continue
            yield path, records
