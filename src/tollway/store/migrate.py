"""Apply Alembic migrations (on ``tollway serve`` start and by ``tollway migrate``).

A database already at ``HEAD_REVISION`` is recognised with one query, without loading
Alembic (about 10 MB a gateway process would otherwise carry for nothing).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from alembic.config import Config

# The newest migration in ``migrations/versions`` (a test keeps the two in step).
HEAD_REVISION = "0010"


class MigrationError(Exception):
    """The schema could not be brought up to date."""


def _config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "tollway.store:migrations")
    return config


def _upgrade(connection: Any) -> None:
    from alembic import command

    config = _config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _revision(connection: Any) -> str | None:
    from alembic.runtime.migration import MigrationContext

    revision: str | None = MigrationContext.configure(connection).get_current_revision()
    return revision


def head_revision() -> str | None:
    """The newest migration shipped with this version, as Alembic sees it."""
    from alembic.script import ScriptDirectory

    head: str | None = ScriptDirectory.from_config(_config()).get_current_head()
    return head


async def _current(engine: AsyncEngine) -> str | None:
    try:
        async with engine.connect() as connection:
            value = await connection.scalar(text("SELECT version_num FROM alembic_version"))
    except SQLAlchemyError:
        return None  # no schema yet
    return str(value) if value is not None else None


async def upgrade(engine: AsyncEngine) -> str | None:
    """Bring the database to the newest schema; returns the revision now applied."""
    try:
        if await _current(engine) == HEAD_REVISION:
            return HEAD_REVISION
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade)
        async with engine.connect() as connection:
            return await connection.run_sync(_revision)
    except Exception as exc:  # the edge: any driver or migration failure stops startup
        raise MigrationError(f"database migration failed: {type(exc).__name__}: {exc}") from exc
