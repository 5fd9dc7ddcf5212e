"""Outbox segments and cursors: the files under one instance's outbox directory.

A segment (``<seq>.seg``) is a fixed-size file mapped shared into memory, written one
JSON line per event. As in the spend journal (``metering/journal.py``), the copy into
the map is the write: the page cache holds it, so it survives a ``kill -9`` at once and
costs no system call. Unwritten space is zeros; a closed segment is cut to its used
length. A reader takes whole lines only, so a line torn by a crash is never read.

A cursor (``cursor.<sink>``) is where one sink has got to: segment and byte offset, in a
fixed-width text written in place with one ``pwrite`` (a crash leaves the old or the new
position, never a mix).
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path

SEGMENT_SUFFIX = ".seg"
CURSOR_PREFIX = "cursor."
READ_BYTES = 256 * 1024
_ZEROS = 1024 * 1024
_CURSOR_WIDTH = 12


def segment_name(seq: int) -> str:
    """The file name of segment ``seq``."""
    return f"{seq:0{_CURSOR_WIDTH}d}{SEGMENT_SUFFIX}"


def segment_seqs(directory: Path) -> list[int]:
    """The segments in ``directory``, oldest first."""
    seqs = []
    for path in directory.iterdir():
        stem = path.name.removesuffix(SEGMENT_SUFFIX)
        if stem != path.name and stem.isdigit():
            seqs.append(int(stem))
    return sorted(seqs)


class Segment:
    """The segment being written: a shared memory map of a zero-filled file.

    The zeros are written, not left as a hole: the file's blocks and page-cache pages
    then exist before the first event, so copying an event in does not stop to allocate
    them (that made one write in a few hundred take milliseconds; now spares are made
    ahead, off the request path: see ``OwnLog``)."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        zeros = bytes(min(size, _ZEROS))
        for offset in range(0, size, len(zeros)):
            os.pwrite(self._fd, zeros[: size - offset], offset)
        self.map = mmap.mmap(self._fd, size, mmap.MAP_SHARED, mmap.PROT_WRITE | mmap.PROT_READ)
        self.used = 0

    def rename(self, path: Path) -> None:
        """Give the file its place in the sequence (a spare becoming current)."""
        self.path = self.path.rename(path)

    def fits(self, size: int) -> bool:
        """Whether ``size`` more bytes fit."""
        return self.used + size <= len(self.map)

    def write(self, line: bytes) -> None:
        """Copy one line in; durable against a process crash when this returns."""
        end = self.used + len(line)
        self.map[self.used : end] = line
        self.used = end

    def read(self, offset: int) -> bytes:
        """Whole lines written from ``offset`` on (about ``READ_BYTES`` at most, unless
        one line is longer)."""
        end = min(self.used, offset + READ_BYTES)
        data = self.map[offset:end]
        if b"\n" not in data and end < self.used:
            data = self.map[offset : self.used]
        return data[: data.rfind(b"\n") + 1]

    def close(self) -> None:
        """Unmap and cut the file to what was written."""
        self.map.close()
        os.ftruncate(self._fd, self.used)
        os.close(self._fd)


def read_file(path: Path, offset: int) -> bytes:
    """Whole lines of a closed segment from ``offset`` on (at most about ``READ_BYTES``;
    zeros after the last write and a torn last line left out)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return b""
    try:
        size = os.fstat(fd).st_size - offset
        data = os.pread(fd, min(size, READ_BYTES), offset) if size > 0 else b""
        if size > READ_BYTES and b"\n" not in data:
            data = os.pread(fd, size, offset)  # one line longer than a read
    finally:
        os.close(fd)
    data = data.split(b"\0", 1)[0]
    return data[: data.rfind(b"\n") + 1]


class Cursor:
    """One sink's position in one outbox directory, kept in a file."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        text = os.pread(self._fd, 2 * _CURSOR_WIDTH + 2, 0).split()
        valid = len(text) == 2 and all(part.isdigit() for part in text)
        self.seq, self.offset = (int(text[0]), int(text[1])) if valid else (0, 0)

    def move(self, seq: int, offset: int) -> None:
        """Set and persist the position."""
        self.seq, self.offset = seq, offset
        line = f"{seq:0{_CURSOR_WIDTH}d} {offset:0{_CURSOR_WIDTH}d}\n".encode()
        os.pwrite(self._fd, line, 0)

    def close(self) -> None:
        """Close the file (the position stays in it)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
