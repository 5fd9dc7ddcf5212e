"""Change epochs: counters bumped in the transaction of a change and read on every
proxied request, so every process drops what it cached at once.

``keys`` moves with every key or project change (cached verifications), ``switches``
with every kill-switch change. One read returns both.

SQLite: a read-only stdlib connection answers in microseconds (WAL readers never wait
for the writer). Other databases: one indexed query through the async engine.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import NamedTuple

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tollway.store.tables import Epoch

KEYS_EPOCH = "keys"
SWITCHES_EPOCH = "switches"

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


class EpochReader:
    """Reads the current epochs."""

    async def current(self) -> Epochs:
        """The epochs now committed."""
        raise NotImplementedError


class SqliteEpochReader(EpochReader):
    """A per-process read-only connection to the SQLite file."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None

    async def current(self) -> Epochs:
        """The epochs now committed (a microseconds-long local read)."""
        if self._conn is None:
            self._conn = sqlite3.connect(
                f"file:{self._path}?mode=ro", uri=True, check_same_thread=False, timeout=2.0
            )
        keys, switches = self._conn.execute(_SQLITE_READ).fetchone()
        return Epochs(int(keys or 0), int(switches or 0))

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
