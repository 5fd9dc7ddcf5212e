"""Migration 0007 (kill switches, project and key policies) on SQLite and Postgres: up
from 0006 with rows in place, down again, and up once more; rows written before it load
on the hot path with no policy set."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pg_support import fresh_database
from pg_support import url as pg_url
from sqlalchemy import inspect, text

from alembic_steps import migrate
from tollway.auth.directory import KeyDirectory, ProjectPolicy
from tollway.auth.secrets import ServerKeys
from tollway.settings import Settings
from tollway.store.db import Database
from tollway.store.epoch import Epochs
from tollway.store.ids import new_virtual_key

SECRET = "migration-test-secret-" + "s" * 20
PROJECT_COLUMNS = {"models", "guards", "cors_origins", "cache"}


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'tollway.db'}"
    else:
        with fresh_database() as name:
            yield pg_url(name)


async def columns(db: Database, table: str) -> set[str]:
    """The columns ``table`` has now."""
    async with db.engine.connect() as connection:
        found = await connection.run_sync(lambda c: inspect(c).get_columns(table))
    return {column["name"] for column in found}


async def tables(db: Database) -> set[str]:
    """The tables the database has now."""
    async with db.engine.connect() as connection:
        return set(await connection.run_sync(lambda c: inspect(c).get_table_names()))


async def rows(db: Database, sql: str) -> list[Any]:
    """Rows of a query."""
    async with db.engine.connect() as connection:
        return list((await connection.execute(text(sql))).all())


async def seed(db: Database, keys: ServerKeys) -> str:
    """A project and a key written at 0006; returns the key's secret."""
    secret, now = new_virtual_key(), datetime.now(UTC)
    async with db.engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO projects (id, name, active, metadata, created_at, updated_at) "
                "VALUES ('proj_old', 'old', true, '{}', :now, :now)"
            ),
            {"now": now},
        )
        await connection.execute(
            text(
                "INSERT INTO keys (id, name, key_hash, key_prefix, project_id, active, models, "
                "request_count, metadata, expiry_audited, created_by, created_at, updated_at) "
                "VALUES ('key_old', 'old', :hash, 'sk-tw-old', 'proj_old', true, "
                """'["gpt-*"]', 0, '{}', false, 'master', :now, :now)"""
            ),
            {"hash": keys.hash_key(secret), "now": now},
        )
    return secret


async def test_0007_up_down_up_with_rows(database_url: str, tmp_path: Path) -> None:
    keys = ServerKeys.from_settings(Settings(data_dir=tmp_path, secret_key=SECRET))
    db = Database(database_url)
    try:
        await migrate(db, "0006")
        secret = await seed(db, keys)

        await migrate(db, "0007")
        assert await columns(db, "projects") >= PROJECT_COLUMNS
        assert "guards" in await columns(db, "keys")
        assert "switches" in await tables(db)
        assert await rows(db, "SELECT name, value FROM epochs ORDER BY name") == [
            ("keys", 0),
            ("switches", 0),
        ]
        assert await db.epoch.current() == Epochs(keys=0, switches=0)

        # A key written before the migration loads with no policy and its own scope
        # (through the newest schema, which is what the hot path reads).
        await migrate(db, "head")
        directory = KeyDirectory(db, keys, "sk-tw-master-unused")
        entry = (await directory.authenticate({"x-api-key": secret})).key
        assert entry is not None and entry.id == "key_old"
        assert entry.project_policy == ProjectPolicy()
        assert dict(entry.guards) == {}
        assert entry.allows("gpt-4o") and not entry.allows("claude-x")

        await migrate(db, "0006", down=True)
        assert not PROJECT_COLUMNS & await columns(db, "projects")
        assert "guards" not in await columns(db, "keys")
        assert "switches" not in await tables(db)
        assert await rows(db, "SELECT name FROM epochs") == [("keys",)]
        assert await rows(db, "SELECT id FROM keys") == [("key_old",)]
        assert await rows(db, "SELECT id FROM projects ORDER BY id") == [
            ("proj_default",),
            ("proj_old",),
        ]

        await migrate(db, "0007")
        assert await db.epoch.current() == Epochs(keys=0, switches=0)
    finally:
        await db.aclose()
