"""The key-change epoch: bumped in the transaction of every key or project change and
read on every proxied request, so every process drops its cached verifications at once.

SQLite: a read-only stdlib connection answers in microseconds (WAL readers never wait
for the writer). Other databases: one indexed read through the async engine.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tollway.store.tables import Epoch

KEYS_EPOCH = "keys"


async def bump(session: AsyncSession, name: str = KEYS_EPOCH) -> None:
    """Advance an epoch inside the caller's transaction."""
    await session.execute(update(Epoch).where(Epoch.name == name).values(value=Epoch.value + 1))


class EpochReader:
    """Reads the current keys epoch."""

    async def current(self) -> int:
        """The epoch now committed."""
        raise NotImplementedError


class SqliteEpochReader(EpochReader):
    """A per-process read-only connection to the SQLite file."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None

    async def current(self) -> int:
        """The epoch now committed (a microseconds-long local read)."""
        if self._conn is None:
            self._conn = sqlite3.connect(
                f"file:{self._path}?mode=ro", uri=True, check_same_thread=False, timeout=2.0
            )
        row = self._conn.execute(
            "SELECT value FROM epochs WHERE name = ?", (KEYS_EPOCH,)
        ).fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class SqlEpochReader(EpochReader):
    """One query through the shared async engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def current(self) -> int:
        """The epoch now committed."""
        async with self._engine.connect() as conn:
            value = await conn.scalar(select(Epoch.value).where(Epoch.name == KEYS_EPOCH))
        return int(value or 0)
