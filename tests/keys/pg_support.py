"""A database of its own on the shared PostgreSQL (127.0.0.1:5432) for a test module.

Without a reachable Postgres the tests that need it skip, saying why, except under
``CI=true``, where they fail: CI must not pass by skipping.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg
import pytest

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
ADMIN_DATABASE = "test"


def unavailable(reason: str) -> None:
    """Skip (or, under CI, fail) for want of Postgres."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: Postgres tests must run, not skip)")
    pytest.skip(reason)


async def _admin(statement: str) -> None:
    conn = await asyncpg.connect(database=ADMIN_DATABASE, timeout=5, **PG)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def _query(database: str, sql: str, *args: Any) -> list[Any]:
    conn = await asyncpg.connect(database=database, timeout=5, **PG)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


def query(database: str, sql: str, *args: Any) -> list[Any]:
    """Rows of ``sql`` in ``database`` (a fresh connection each time)."""
    return asyncio.run(_query(database, sql, *args))


def url(database: str) -> str:
    """The database URL Tollway takes."""
    return f"postgresql://postgres@127.0.0.1:5432/{database}"


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new, uniquely named database, dropped afterwards."""
    name = f"tollway_test_{secrets.token_hex(6)}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        unavailable(f"PostgreSQL at 127.0.0.1:5432 (database 'test') is unreachable: {exc!r}")
    try:
        yield name
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
