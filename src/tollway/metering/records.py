"""Spend records: journaled on the request path, inserted into the database in batches.

``Recorder.record`` costs one local ``write``; a background task flushes batches every
``FLUSH_SECONDS`` (or sooner when many are waiting) with an idempotent insert, then
deletes the journal segments they came from. If the database is down, records wait in
memory and in the journal and the flush retries; nothing is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite

from tollway.metering.journal import Journal
from tollway.store.db import Database
from tollway.store.spend import to_pico
from tollway.store.tables import SpendRecord

log = logging.getLogger("tollway.metering")
FLUSH_SECONDS = 0.25
FLUSH_BATCH = 500
_RETRY_SECONDS = 1.0


def to_row(record: dict[str, Any]) -> dict[str, Any]:
    """A journal record (JSON types) as column values."""
    row = dict(record)
    row["ts"] = datetime.fromisoformat(str(record["ts"]))
    row["cost_usd"] = Decimal(str(record["cost_usd"]))
    row["cost_pico"] = to_pico(row["cost_usd"])
    row["metadata"] = row.get("metadata") or {}
    return row


class Recorder:
    """Durable, batched spend recording for one process."""

    def __init__(self, db: Database, data_dir: Path) -> None:
        self._db = db
        self._journal = Journal(data_dir)
        self._pending: list[dict[str, Any]] = []
        self._segments: list[Path] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        # One flush at a time: a reader's flush waits for the writer's batch in flight.
        self._flushing = asyncio.Lock()

    async def start(self) -> int:
        """Replay segments left by crashed processes, then start flushing; returns how many
        records were recovered."""
        recovered = 0
        for path, records in self._journal.orphans():
            if records:
                await self._insert(records)
                recovered += len(records)
            path.unlink(missing_ok=True)
        if recovered:
            log.warning("recovered spend records", extra={"fields": {"records": recovered}})
        self._task = asyncio.create_task(self._run(), name="tollway-spend-writer")
        return recovered

    def record(self, record: dict[str, Any]) -> None:
        """Journal one record now; it reaches the database shortly."""
        self._journal.append(record)
        self._pending.append(record)
        if len(self._pending) >= FLUSH_BATCH:
            self._wake.set()

    async def _run(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), FLUSH_SECONDS)
            self._wake.clear()
            if not await self.flush():
                await asyncio.sleep(_RETRY_SECONDS)

    async def flush(self) -> bool:
        """Insert everything pending (and wait for a batch already being inserted);
        False (records kept) if the database failed."""
        async with self._flushing:
            return await self._flush()

    async def _flush(self) -> bool:
        self._segments.extend(self._journal.rotate())
        if not self._pending:
            return True
        batch, self._pending = self._pending, []
        try:
            await self._insert(batch)
        except Exception:  # the edge: keep the records and retry; never lose one
            log.exception("spend flush failed; will retry", extra={"fields": {"n": len(batch)}})
            self._pending = batch + self._pending
            return False
        # Everything journaled before this flush is now committed.
        committed, self._segments = self._segments, []
        for path in committed:
            path.unlink(missing_ok=True)
        return True

    async def _insert(self, records: list[dict[str, Any]]) -> None:
        rows = [to_row(record) for record in records]
        # A Core insert of plain rows: the ORM's bulk path costs several times more CPU
        # on the event loop for the same statement.
        dialect = postgresql if self._db.engine.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(SpendRecord.__table__).on_conflict_do_nothing(
            index_elements=["request_id"]
        )
        async with self._db.transaction() as session:
            await session.execute(statement, rows)

    async def aclose(self) -> None:
        """Flush what is left and stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        self._segments.extend(self._journal.close())
        await self.flush()


def utc_iso(ts: float) -> str:
    """A UNIX time as an ISO string in UTC."""
    return datetime.fromtimestamp(ts, UTC).isoformat()
