"""The background task that keeps the running totals of spend (``store/running.py``) up
to date: at start and every minute, it extends them hour by hour, a few hours per
transaction, up to the start of the current hour (five minutes after it began).

Every process runs it; compactions take turns on the horizon row (Postgres) or the
database's write lock (SQLite), and one that finds nothing to do returns at once. A
report never waits for it: what is not compacted yet is read from the rollup cells.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from tollway.store import running
from tollway.store.db import Database
from tollway.tasks import stop

log = logging.getLogger("tollway.compaction")
INTERVAL_SECONDS = 60.0


class Compaction:
    """Extends the running totals of spend in the background."""

    def __init__(self, db: Database, interval: float = INTERVAL_SECONDS) -> None:
        self._db = db
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Compact now and every ``interval`` seconds."""
        self._task = asyncio.create_task(self._run(), name="tollway-compaction")

    async def _run(self) -> None:
        while True:
            try:
                await self.catch_up()
            except Exception:  # the edge: a failed pass is retried at the next interval
                log.exception("compaction of running spend totals failed; will retry")
                self._db.failures.report("database", "compaction")
            await asyncio.sleep(self._interval)

    async def catch_up(self, now: datetime | None = None) -> None:
        """Compact until the running totals are as far as they go."""
        while True:
            async with self._db.transaction() as session:
                more = await running.compact(session, now or datetime.now(UTC))
            if not more:
                return
            await asyncio.sleep(0)  # let the request path in between transactions

    async def aclose(self) -> None:
        """Stop (a transaction in progress is rolled back)."""
        task, self._task = self._task, None
        await stop(task)
