"""The database handle the app holds: engine, sessions, epoch reader."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession

from tollway.store.engine import create_engine, is_sqlite, sessions, sqlite_path
from tollway.store.epoch import (
    EPOCH_ADVANCED,
    EpochBell,
    EpochReader,
    SqlEpochReader,
    SqliteEpochReader,
    bell_path,
)
from tollway.store.failures import StoreFailures
from tollway.store.migrate import upgrade
from tollway.store.pool import DatabasePool


class Database:
    """One per app: built from a URL, closed at shutdown."""

    def __init__(self, url: str, pool: DatabasePool | None = None) -> None:
        self.url = url
        self.engine = create_engine(url, pool)
        self._sessions = sessions(self.engine)
        path = sqlite_path(url) if is_sqlite(url) else None
        self.sqlite_file = path
        self.epoch: EpochReader = SqlEpochReader(self.engine)
        self._bell: EpochBell | None = None
        if path is not None:
            # Processes on one SQLite file tell each other of epoch changes by a bell.
            self._bell = EpochBell(bell_path(path))
            self.epoch = SqliteEpochReader(path, self._bell)
        # Components that handle a failure of this database (or of Redis) report it here.
        self.failures = StoreFailures()

    async def migrate(self) -> str | None:
        """Apply pending migrations; returns the current revision."""
        return await upgrade(self.engine)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session in one transaction: committed on success, rolled back on error;
        other processes hear of an epoch it advanced once it is committed."""
        async with self._sessions() as session:
            async with session.begin():
                yield session
                if session.info.get(EPOCH_ADVANCED) and self._bell is not None:
                    self._bell.map()  # cannot be mapped: roll back rather than commit unrung
            if session.info.pop(EPOCH_ADVANCED, False) and self._bell is not None:
                self._bell.ring()

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[AsyncSession]:
        """A session for reads."""
        async with self._sessions() as session:
            yield session

    async def aclose(self) -> None:
        """Close pooled connections."""
        if isinstance(self.epoch, SqliteEpochReader):
            self.epoch.close()
        if self._bell is not None:
            self._bell.close()
        await self.engine.dispose()
