"""Moving a test database to one revision through Alembic, as ``tollway migrate`` does."""

from __future__ import annotations

from typing import Any

from alembic import command
from alembic.config import Config

from tollway.store.db import Database


async def migrate(db: Database, revision: str, down: bool = False) -> None:
    """Upgrade (or downgrade) to ``revision``."""

    def run(connection: Any) -> None:
        config = Config()
        config.set_main_option("script_location", "tollway.store:migrations")
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)

    async with db.engine.begin() as connection:
        await connection.run_sync(run)
