"""Apply Alembic migrations (on ``tollway serve`` start and by ``tollway migrate``)."""

from __future__ import annotations

from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine


class MigrationError(Exception):
    """The schema could not be brought up to date."""


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", "tollway.store:migrations")
    return config


def _upgrade(connection: Any) -> None:
    config = _config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _revision(connection: Any) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    """The newest migration shipped with this version."""
    return ScriptDirectory.from_config(_config()).get_current_head()


async def upgrade(engine: AsyncEngine) -> str | None:
    """Bring the database to the newest schema; returns the revision now applied."""
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade)
        async with engine.connect() as connection:
            return await connection.run_sync(_revision)
    except Exception as exc:  # the edge: any driver or migration failure stops startup
        raise MigrationError(f"database migration failed: {type(exc).__name__}: {exc}") from exc
