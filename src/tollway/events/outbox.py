"""The outbox: every event, durable the moment it is emitted, until each sink has it.

Layout under ``<data_dir>/events/outbox/``: one directory per process (*instance*),
holding its segments, one cursor per sink and ``owner.lock``, which the process keeps
``flock``-ed for its lifetime (the spend journal's scheme). A directory whose lock can
be taken belongs to a dead process (or one that stopped with events undelivered); any
live process adopts it, keeps its lock while it delivers the rest from the dead one's
cursors, then deletes it. An instance's directory is created under a hidden name and
renamed once its lock is held, so no scan can find it unlocked.

Emitting is ``Outbox.append``: one memory copy (see ``segments.py``). Reading,
committing a sink's progress and trimming delivered segments happen in the dispatchers
(``dispatch.py``), on the same event loop, so a reader never sees half a line.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from tollway.events.segments import (
    CURSOR_PREFIX,
    Cursor,
    Segment,
    read_file,
    segment_name,
    segment_seqs,
)

log = logging.getLogger("tollway.events")
OUTBOX_DIR = Path("events") / "outbox"
LOCK_FILE = "owner.lock"
SEGMENT_BYTES = 4 * 1024 * 1024
_CREATING = ".new-"
_SPARE = "spare.tmp"


@dataclass(frozen=True, slots=True)
class Batch:
    """Lines one sink reads next, and where its cursor goes once they are delivered."""

    log: Log
    sink: str
    lines: list[bytes]
    seq: int
    end: int


class Log:
    """One instance's outbox directory as its readers see it."""

    def __init__(self, directory: Path, lock_fd: int, sinks: list[str]) -> None:
        self.directory = directory
        self.instance = directory.name
        self._lock_fd = lock_fd
        self._cursors = {sink: Cursor(directory / f"{CURSOR_PREFIX}{sink}") for sink in sinks}
        self._seqs = segment_seqs(directory)
        self.finished: set[str] = set()  # sinks with nothing left here (adopted logs)

    def _is_open(self, seq: int) -> bool:
        """Whether ``seq`` may still grow (only the writer's current segment)."""
        return False

    def _read(self, seq: int, offset: int) -> bytes:
        return read_file(self.directory / segment_name(seq), offset)

    def read(self, sink: str, limit: int) -> Batch | None:
        """Up to ``limit`` lines past the sink's cursor; None when it has everything.
        Closed segments it has finished are stepped over (and the cursor saved)."""
        cursor = self._cursors[sink]
        while True:
            data = self._read(cursor.seq, cursor.offset)
            if data:
                lines = data.split(b"\n", limit)[:-1]  # data ends with a newline
                end = cursor.offset + sum(len(line) + 1 for line in lines)
                return Batch(self, sink, lines, cursor.seq, end)
            later = [seq for seq in self._seqs if seq > cursor.seq]
            if self._is_open(cursor.seq) or not later:
                return None
            cursor.move(later[0], 0)
            self.trim()

    def commit(self, batch: Batch) -> None:
        """The batch is delivered: move the sink's cursor past it."""
        self._cursors[batch.sink].move(batch.seq, batch.end)

    def trim(self) -> None:
        """Delete the closed segments every sink has moved past."""
        oldest = min((cursor.seq for cursor in self._cursors.values()), default=0)
        while self._seqs and self._seqs[0] < oldest and not self._is_open(self._seqs[0]):
            (self.directory / segment_name(self._seqs.pop(0))).unlink(missing_ok=True)

    def done(self) -> bool:
        """Whether every sink has everything (and nothing more can come)."""
        return all(self.read(sink, 1) is None for sink in self._cursors)

    def release(self, delete: bool) -> None:
        """Close the files; with ``delete``, remove the directory (its lock last), else
        leave it for the next process to adopt."""
        for cursor in self._cursors.values():
            cursor.close()
        if delete:
            for path in self.directory.iterdir():
                if path.name != LOCK_FILE:
                    path.unlink(missing_ok=True)
            (self.directory / LOCK_FILE).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                self.directory.rmdir()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1


class OwnLog(Log):
    """This process's outbox directory: the same, plus the segment being written.

    The next segment (a *spare*, ``spare.tmp``) is made ahead and a filled one is closed
    later, both in ``upkeep`` off the request path: rolling over on the request path is
    then a rename. Only a burst that fills a segment before its spare is ready makes one
    there."""

    def __init__(self, directory: Path, lock_fd: int, sinks: list[str], size: int) -> None:
        super().__init__(directory, lock_fd, sinks)
        self._size = size
        self._current: Segment | None = None
        self._current_seq = -1
        self._spare: Segment | None = None
        self._making_spare = False
        self._retired: list[Segment] = []
        self.upkeep_due = asyncio.Event()

    def append(self, line: bytes) -> None:
        """Add one line (ending in a newline)."""
        current = self._current
        if current is None or not current.fits(len(line)):
            current = self._roll(len(line))
        current.write(line)

    def _roll(self, size: int) -> Segment:
        """Retire the current segment (closed later) and start the next."""
        if self._current is not None:
            self._retired.append(self._current)
        seq = self._current_seq + 1
        path = self.directory / segment_name(seq)
        spare, self._spare = self._spare, None
        if spare is not None and spare.fits(size):
            spare.rename(path)
        else:
            if spare is not None:
                self._retired.append(spare)  # too small for this line; deleted when closed
            spare = Segment(path, max(self._size, size))
        self._current, self._current_seq = spare, seq
        self._seqs.append(seq)
        self.upkeep_due.set()
        return spare

    async def upkeep(self) -> None:
        """Close retired segments and make the next spare, in a thread."""
        retired, self._retired = self._retired, []
        for segment in retired:
            await asyncio.to_thread(segment.close)
            if segment.path.name == _SPARE:
                segment.path.unlink(missing_ok=True)
        if self._spare is None and not self._making_spare:
            self._making_spare = True
            try:
                path = self.directory / _SPARE
                path.unlink(missing_ok=True)
                self._spare = await asyncio.to_thread(Segment, path, self._size)
            finally:
                self._making_spare = False

    def _is_open(self, seq: int) -> bool:
        return seq == self._current_seq and self._current is not None

    def _read(self, seq: int, offset: int) -> bytes:
        if self._is_open(seq):
            assert self._current is not None
            return self._current.read(offset)
        return super()._read(seq, offset)

    def close(self) -> None:
        """Stop writing: cut the segments to their length, delete the spare."""
        for segment in [*self._retired, *filter(None, (self._current, self._spare))]:
            segment.close()
        if self._spare is not None:
            self._spare.path.unlink(missing_ok=True)
        self._current = self._spare = None
        self._retired = []


class Outbox:
    """This process's log and the dead processes' logs it adopted."""

    def __init__(
        self, data_dir: Path, instance: str, sinks: list[str], segment_bytes: int = SEGMENT_BYTES
    ) -> None:
        self.root = data_dir / OUTBOX_DIR
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.sinks = sinks
        creating = self.root / f"{_CREATING}{instance}"
        creating.mkdir(mode=0o700)
        fd = os.open(creating / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        directory = creating.rename(self.root / instance)
        self.own = OwnLog(directory, fd, sinks, segment_bytes)
        self.adopted: list[Log] = []
        self.closed = False

    def append(self, line: bytes) -> None:
        """Keep one event line; durable against a process crash when this returns."""
        self.own.append(line)

    def logs(self) -> list[Log]:
        """What the dispatchers read, oldest first: adopted logs, then our own."""
        return [*self.adopted, self.own]

    def read(self, sink: str, limit: int) -> Batch | None:
        """The sink's next batch from the oldest log that has one. An adopted log every
        sink has finished is deleted."""
        for each in self.logs():
            if sink in each.finished:
                continue
            batch = each.read(sink, limit)
            if batch is not None:
                return batch
            if each is not self.own:
                each.finished.add(sink)
                if each.finished.issuperset(self.sinks):
                    self.adopted.remove(each)
                    each.release(delete=True)
                    log.info("delivered a stopped process's events", extra={"fields": _of(each)})
        return None

    def commit(self, batch: Batch) -> None:
        """A batch is delivered: move the sink's cursor, delete what all sinks have."""
        batch.log.commit(batch)
        batch.log.trim()

    def adopt(self) -> int:
        """Take over the logs of processes that are gone; returns how many."""
        taken = 0
        known = {each.instance for each in self.logs()}
        for directory in sorted(self.root.iterdir()):
            if directory.name in known or not directory.is_dir():
                continue
            fd = _take(directory / LOCK_FILE)
            if fd is None:
                continue  # a live process (or a directory without a lock: not ours)
            if directory.name.startswith(_CREATING):
                os.close(fd)  # a process that died while creating its directory
                shutil.rmtree(directory, ignore_errors=True)
                continue
            adopted = Log(directory, fd, self.sinks)
            if adopted.done():
                adopted.release(delete=True)
                continue
            self.adopted.append(adopted)
            taken += 1
            log.warning("delivering a stopped process's events", extra={"fields": _of(adopted)})
        return taken

    def close(self) -> None:
        """Shut down: our log is deleted if every sink has it all, else left (unlocked)
        for the next process; adopted logs not finished are left the same way."""
        self.closed = True
        self.own.close()
        for each in self.logs():
            each.release(delete=each.done())
        self.adopted = []


def _take(lock: Path) -> int | None:
    """An exclusive lock on a log's lock file; None when its process holds it."""
    try:
        fd = os.open(lock, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _of(each: Log) -> dict[str, str]:
    return {"instance": each.instance}
