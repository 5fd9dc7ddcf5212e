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
import sqlite3
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import orjson
from sqlalchemy import Table
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


_COLUMNS = (
    "request_id",
    "ts",
    "key_id",
    "project_id",
    "endpoint",
    "model",
    "provider",
    "upstream_model",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
    "cost_pico",
    "priced",
    "estimated",
    "status",
    "latency_ms",
    "ttft_ms",
    "stream",
    "cached",
    "error",
    "attempts",
    "metadata",
)
_SQLITE_INSERT = (
    f"INSERT INTO spend ({', '.join(_COLUMNS)}) "  # noqa: S608 (fixed column names)
    f"VALUES ({', '.join('?' * len(_COLUMNS))}) ON CONFLICT (request_id) DO NOTHING"
)


def to_sqlite(row: dict[str, Any]) -> tuple[Any, ...]:
    """Column values as SQLAlchemy stores them in SQLite: naive UTC timestamp text,
    decimal text, 0/1 booleans, JSON text."""
    ts: datetime = row["ts"].astimezone(UTC)
    converted = dict(row)
    converted["ts"] = ts.strftime("%Y-%m-%d %H:%M:%S.%f")
    converted["cost_usd"] = str(row["cost_usd"])
    converted["metadata"] = orjson.dumps(row["metadata"]).decode()
    for flag in ("priced", "estimated", "stream", "cached"):
        converted[flag] = 1 if row.get(flag) else 0
    converted.setdefault("attempts", 1)
    converted.setdefault("reasoning_tokens", 0)
    return tuple(converted.get(column) for column in _COLUMNS)


def _insert_batch(path: Path, rows: list[dict[str, Any]]) -> None:
    values = [to_sqlite(row) for row in rows]
    conn = sqlite3.connect(path, isolation_level=None, timeout=10.0)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(_SQLITE_INSERT, values)
        conn.execute("COMMIT")
    finally:
        conn.close()


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
        if self._db.sqlite_file is not None:
            await self._insert_sqlite(rows)
            return
        table = cast(Table, SpendRecord.__table__)
        dialect = postgresql if self._db.engine.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(table).on_conflict_do_nothing(index_elements=["request_id"])
        async with self._db.transaction() as session:
            await session.execute(statement, rows)

    async def _insert_sqlite(self, rows: list[dict[str, Any]]) -> None:
        # The whole batch (row conversion, executemany, commit) runs in one call on a
        # thread with its own stdlib connection: through SQLAlchemy it cost ~30 us of
        # event-loop time per row, and the write lock was held across loop turns.
        # Values are written in the forms SQLAlchemy reads back (see to_sqlite).
        path = self._db.sqlite_file
        assert path is not None
        await asyncio.to_thread(_insert_batch, path, rows)

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
