"""Change epochs: counters bumped in the transaction of a change and read on every
proxied request, so every process drops what it cached at once.

``keys`` moves with every key or project change (cached verifications), ``switches``
with every kill-switch change. One read returns both.

SQLite: every process on the file shares an ``EpochBell``, eight bytes in a memory-mapped
file beside it that a process rewrites after each commit that advanced an epoch. A
request reads the bell (a memory load); only when it rang since the last read, or
``RECHECK_SECONDS`` passed, does the process read the epochs themselves on a read-only
stdlib connection. A change is acknowledged (the admin call answers) only after its bell
rang, so every process sees it on its next request. The SQLite read releases the GIL,
and getting it back can mean waiting out a background thread's slice; the bell never
does. Other databases: one indexed query through the async engine.
"""

from __future__ import annotations

import logging
import mmap
import os
import sqlite3
import time
from pathlib import Path
from typing import NamedTuple

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tollway.store.tables import Epoch

log = logging.getLogger("tollway.store")
KEYS_EPOCH = "keys"
SWITCHES_EPOCH = "switches"
# Set on a session whose transaction advanced an epoch: the bell rings after its commit.
EPOCH_ADVANCED = "tollway_epoch_advanced"
# Read the epochs themselves at least this often, bell or not (a process of an older
# release, during a rolling upgrade, commits changes without ringing).
RECHECK_SECONDS = 1.0
_BELL_BYTES = 8

# Both counters in one row: a row per counter would cost a loop and a dict per request.
_SQLITE_READ = (
    "SELECT (SELECT value FROM epochs WHERE name = 'keys'),"
    " (SELECT value FROM epochs WHERE name = 'switches')"
)


class Epochs(NamedTuple):
    """The committed epochs, read together."""

    keys: int
    switches: int


# Before any successful read: matches no committed epoch (those start at 0).
UNREAD = Epochs(-1, -1)


async def bump(session: AsyncSession, name: str = KEYS_EPOCH) -> None:
    """Advance an epoch inside the caller's transaction."""
    await session.execute(update(Epoch).where(Epoch.name == name).values(value=Epoch.value + 1))
    session.info[EPOCH_ADVANCED] = True


def bell_path(sqlite_file: Path) -> Path:
    """Where the bell of a SQLite file lives: beside it, as its -wal and -shm do."""
    return sqlite_file.with_name(sqlite_file.name + "-epochs")


class EpochBell:
    """A change signal shared by the processes on one SQLite file: eight bytes in a
    memory-mapped file, rewritten with fresh random bytes after each commit that
    advanced an epoch. Any difference from what a reader last heard means "read the
    epochs again"; a torn read only costs an extra read. While it cannot be mapped,
    ``heard`` is None (readers read the epochs every time) and a transaction advancing
    an epoch fails before its commit."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._map: mmap.mmap | None = None
        self._warned = False

    def _mapped(self) -> mmap.mmap | None:
        if self._map is None:
            try:
                self.map()
            except (OSError, ValueError):
                if not self._warned:  # tried again on every use; said once
                    self._warned = True
                    log.warning(
                        "epoch bell unavailable; reading epochs on every request",
                        extra={"fields": {"path": str(self._path)}},
                        exc_info=True,
                    )
        return self._map

    def map(self) -> None:
        """Map the bell now; OSError if it cannot be. A transaction that advances an
        epoch calls this before its commit, so a change is never committed unrung."""
        if self._map is not None:
            return
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < _BELL_BYTES:
                os.ftruncate(fd, _BELL_BYTES)
            self._map = mmap.mmap(fd, _BELL_BYTES)
        finally:
            os.close(fd)

    def heard(self) -> bytes | None:
        """What the bell says now (None: it cannot be mapped right now)."""
        mapped = self._mapped()
        return None if mapped is None else mapped[:_BELL_BYTES]

    def ring(self) -> None:
        """Tell every process an epoch advanced (after the commit that advanced it; the
        bell is mapped by then, so this is a memory write that cannot fail)."""
        mapped = self._mapped()
        if mapped is not None:
            mapped[:_BELL_BYTES] = os.urandom(_BELL_BYTES)

    def close(self) -> None:
        """Unmap the bell."""
        if self._map is not None:
            self._map.close()
            self._map = None


class EpochReader:
    """Reads the current epochs."""

    async def current(self) -> Epochs:
        """The epochs now committed."""
        raise NotImplementedError


class SqliteEpochReader(EpochReader):
    """The bell, and behind it a per-process read-only connection to the SQLite file."""

    def __init__(self, path: Path, bell: EpochBell) -> None:
        self._path = path
        self._bell = bell
        self._conn: sqlite3.Connection | None = None
        self._heard: bytes | None = None
        self._known = UNREAD
        self._read_at = 0.0

    async def current(self) -> Epochs:
        """The epochs now committed: as last read while the bell is silent, else read
        again (a microseconds-long local read)."""
        heard = self._bell.heard()
        now = time.monotonic()
        if heard is not None and heard == self._heard and now - self._read_at < RECHECK_SECONDS:
            return self._known
        if self._conn is None:
            self._conn = sqlite3.connect(
                f"file:{self._path}?mode=ro", uri=True, check_same_thread=False, timeout=2.0
            )
        keys, switches = self._conn.execute(_SQLITE_READ).fetchone()
        # What the bell said before this read: a ring during it is heard next time.
        self._known = Epochs(int(keys or 0), int(switches or 0))
        self._heard, self._read_at = heard, now
        return self._known

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class SqlEpochReader(EpochReader):
    """One query through the shared async engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        value = select(Epoch.value)
        self._query = select(
            value.where(Epoch.name == KEYS_EPOCH).scalar_subquery(),
            value.where(Epoch.name == SWITCHES_EPOCH).scalar_subquery(),
        )

    async def current(self) -> Epochs:
        """The epochs now committed."""
        async with self._engine.connect() as conn:
            row = (await conn.execute(self._query)).one()
        return Epochs(int(row[0] or 0), int(row[1] or 0))
