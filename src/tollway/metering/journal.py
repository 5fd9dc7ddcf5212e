"""A local append-only journal that makes spend records crash-proof cheaply.

A record is copied into a shared memory map of a journal segment before the response is
completed to the client. The mapping is the file's page cache, so the record survives a
``kill -9`` of the gateway the moment the copy is done, and the copy costs no system call
(a ``write`` per request would also hand the interpreter lock to other threads, which
shows up as latency). The database insert happens later, in batches, off the request
path. Unused space at a segment's end is zeros, which replay ignores.

Ownership: every process is an *instance* with an id, and holds an exclusive ``flock``
on ``owner-<id>.lock`` for as long as it lives. Its segments are named after it
(``spend-<id>-<ns>.jsonl``). Any process that can take an instance's lock knows that
instance is gone, and only then replays its segments: a live process's rotated segments
(closed, waiting for their batch to commit) are never touched by anyone else.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import re
import secrets
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

JOURNAL_DIR = "journal"
SEGMENT_BYTES = 8 * 1024 * 1024
_OWNER = re.compile(r"^owner-([A-Za-z0-9_.-]+)\.lock$")
_SEGMENT = re.compile(r"^spend-([A-Za-z0-9_.-]+)-(\d+)\.jsonl$")


def new_instance_id() -> str:
    """A unique id for this process's lifetime: host, pid and 32 random bits."""
    host = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:16] or "host"
    return f"{host}.{os.getpid()}.{secrets.token_hex(4)}"


class _Segment:
    """One mapped segment file."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        os.ftruncate(self.fd, size)
        self.map = mmap.mmap(self.fd, size, mmap.MAP_SHARED, mmap.PROT_WRITE | mmap.PROT_READ)
        self.used = 0

    def fits(self, size: int) -> bool:
        return self.used + size <= len(self.map)

    def write(self, line: bytes) -> None:
        end = self.used + len(line)
        self.map[self.used : end] = line
        self.used = end

    def rename(self, path: Path) -> None:
        os.rename(self.path, path)
        self.path = path

    def close(self) -> None:
        """Unmap and cut the file to what was written."""
        self.map.close()
        os.ftruncate(self.fd, self.used)
        os.close(self.fd)

    def discard(self) -> None:
        """Close and delete a segment nothing was written to."""
        self.close()
        self.path.unlink(missing_ok=True)


def close_segments(segments: list[_Segment]) -> list[Path]:
    """Close set-aside segments (unmapping and cutting a file are system calls: run it
    off the event loop); their paths, for deletion once their records are committed."""
    for segment in segments:
        segment.close()
    return [segment.path for segment in segments]


@dataclass
class Orphan:
    """What a dead instance left: its segments' records, in order."""

    instance: str
    segments: list[Path] = field(default_factory=list)
    records: list[dict[str, object]] = field(default_factory=list)
    lock: Path | None = None


class Journal:
    """This process's current segment plus the filled ones not yet committed."""

    def __init__(
        self, data_dir: Path, instance: str | None = None, segment_bytes: int = SEGMENT_BYTES
    ) -> None:
        self.directory = data_dir / JOURNAL_DIR
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.instance = instance or new_instance_id()
        self._segment_bytes = segment_bytes
        self._current: _Segment | None = None
        self._full: list[_Segment] = []  # set aside, not closed yet
        self._spare: _Segment | None = None
        # Held for the process's lifetime: while it is, nobody replays our segments.
        # Locked before it is visible under its name, so no scan can find it unlocked.
        self._lock_path = self.directory / f"owner-{self.instance}.lock"
        pending = self._lock_path.with_suffix(".new")
        self._lock_fd = os.open(pending, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        pending.rename(self._lock_path)

    def _name(self) -> Path:
        return self.directory / f"spend-{self.instance}-{time.time_ns()}.jsonl"

    def _open(self, at_least: int) -> _Segment:
        spare, self._spare = self._spare, None
        if spare is not None and spare.fits(at_least):
            # Named when it is taken into use, so segments sort in the order they fill.
            spare.rename(self._name())
            return spare
        if spare is not None:
            spare.discard()
        return _Segment(self._name(), max(self._segment_bytes, at_least))

    def prepare_spare(self) -> None:
        """Create the segment the next rotation writes to (file creation and mapping
        take a system call each; call it off the event loop)."""
        if self._spare is None:
            self._spare = _Segment(self._name(), self._segment_bytes)

    @property
    def has_spare(self) -> bool:
        """Whether the next rotation writes to a segment made beforehand."""
        return self._spare is not None

    def append(self, record: dict[str, object]) -> None:
        """Add one record line; durable against a process crash when this returns."""
        line = orjson.dumps(record) + b"\n"
        current = self._current
        if current is None or not current.fits(len(line)):
            if current is not None:
                self._full.append(current)
            current = self._current = self._open(len(line))
        current.write(line)

    def rotate(self) -> list[_Segment]:
        """Set aside the segments holding the records so far: the caller closes them
        (``close_segments``, off the event loop) and deletes them once their records
        are committed. The next record goes to the spare segment, if one is ready."""
        current = self._current
        if current is not None and current.used:
            self._full.append(current)
            self._current = None
        full, self._full = self._full, []
        return full

    def close(self) -> list[Path]:
        """Close for shutdown; returns the segments that hold records."""
        current = self._current
        if current is not None and not current.used:
            current.discard()
            self._current = None
        if self._spare is not None:
            self._spare.discard()
            self._spare = None
        return close_segments(self.rotate())

    def release(self) -> None:
        """Give up ownership (after the last segment is committed, at shutdown)."""
        if self._lock_fd >= 0:
            self._lock_path.unlink(missing_ok=True)
            os.close(self._lock_fd)
            self._lock_fd = -1

    def orphans(self) -> Iterator[Orphan]:
        """What dead instances left, one instance at a time, its lock held meanwhile
        (call ``forget`` once its records are safe)."""
        found: dict[str, Orphan] = {}
        for path in sorted(self.directory.iterdir()):
            owner = _OWNER.match(path.name)
            segment = _SEGMENT.match(path.name)
            instance = owner.group(1) if owner else segment.group(1) if segment else None
            if instance is None or instance == self.instance:
                continue
            orphan = found.setdefault(instance, Orphan(instance))
            if owner:
                orphan.lock = path
            else:
                orphan.segments.append(path)
        for orphan in found.values():
            fd = _take(orphan)
            if fd is None:
                continue  # a live process
            try:
                for path in orphan.segments:
                    orphan.records.extend(_read(path))
                yield orphan
            finally:
                os.close(fd)

    @staticmethod
    def forget(orphan: Orphan) -> None:
        """Delete what a dead instance left, once its records are safe."""
        for path in orphan.segments:
            path.unlink(missing_ok=True)
        if orphan.lock is not None:
            orphan.lock.unlink(missing_ok=True)


def _take(orphan: Orphan) -> int | None:
    """Lock the instance (its owner file, or for segments written before owner files
    existed, the segment itself); None when its process still holds it."""
    path = orphan.lock or (orphan.segments[0] if orphan.segments else None)
    if path is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _read(path: Path) -> list[dict[str, object]]:
    """A segment's records (zeros after the last write and a torn last line skipped)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    records = []
    for line in data.split(b"\0", 1)[0].splitlines():
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records
