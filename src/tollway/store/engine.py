"""The async database engine: SQLite (default, WAL) or Postgres (asyncpg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from tollway.store.pool import DatabasePool, engine_options

_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}


def async_url(url: str) -> str:
    """Map a plain database URL onto the async driver Tollway uses."""
    parsed = make_url(url)
    driver = _ASYNC_DRIVERS.get(parsed.drivername, parsed.drivername)
    if driver not in _ASYNC_DRIVERS.values():
        raise ValueError(
            f"database_url: unsupported database {parsed.drivername!r} "
            "(use sqlite:///path or postgresql://...)"
        )
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def is_sqlite(url: str) -> bool:
    """Whether ``url`` points at SQLite."""
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL (None for in-memory)."""
    database = make_url(url).database
    return Path(database) if database and database != ":memory:" else None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (every worker) proceed while one writer commits; NORMAL sync is
    # durable against a process crash, which is the failure that matters here.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def create_engine(url: str, pool: DatabasePool | None = None) -> AsyncEngine:
    """An async engine for ``url`` (PostgreSQL: with ``pool``'s connections); creates the
    SQLite file's folder if needed."""
    if is_sqlite(url):
        path = sqlite_path(url)
        if path is not None:
            # The file holds key hashes, sealed credentials and spend: owner only.
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not path.exists():
                path.touch(mode=0o600)
        engine = create_async_engine(async_url(url))
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(async_url(url), **engine_options(pool or DatabasePool()))


def sessions(engine: AsyncEngine) -> async_sessionmaker[Any]:
    """A session factory that keeps loaded objects usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)
