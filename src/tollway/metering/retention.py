"""Retention: a background task deletes old request-log rows, spend detail and captured
bodies in short batches (``retention`` settings, ``config_retention.py``).

Budgets and reports never change when rows go: the spend rollups are kept, every ledger
seeds a budget period from them (``budget.spent_in_db``, ``SqliteLedger``), and a
report reads rows only for the part of an hour at each end of its range. So any
retention is safe for budgets, including lifetime ones.

A pass, every ``interval_seconds``, each step in transactions of ``batch`` rows:

    rows      older than both horizons (requests and spend), with their bodies
    no spend  calls that used no tokens and cost nothing, past the requests horizon
              (when spend detail is kept longer): rows are read in time order from
              where the last batch stopped, at most ``batch`` per step, and the ones
              without spend deleted, so a step never scans more than a batch
    bodies    captured bodies past their own horizon

Every worker runs the task; the deletes are idempotent. A record replayed from a dead
process's journal with an old time, behind the no-spend scan, waits for the next start.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, and_, delete, select, tuple_

from tollway.config_retention import RetentionConfig
from tollway.store.db import Database
from tollway.store.requests import delete_bodies
from tollway.store.tables import RequestBody, SpendRecord
from tollway.tasks import stop

log = logging.getLogger("tollway.retention")


@dataclass
class Swept:
    """What one pass deleted."""

    rows: int = 0
    no_spend_rows: int = 0
    bodies: int = 0


@dataclass(frozen=True, slots=True)
class Horizons:
    """Before these times, rows (all, or those without spend) and bodies go."""

    rows: datetime | None
    no_spend: datetime | None
    bodies: datetime | None


def horizons(config: RetentionConfig, now: datetime) -> Horizons:
    """The horizons ``config`` sets at ``now`` (None: keep)."""
    requests, spend = config.requests_days, config.spend_days
    rows = None if requests is None or spend is None else now - timedelta(max(requests, spend))
    no_spend = None
    if requests is not None and (spend is None or spend > requests):
        no_spend = now - timedelta(requests)
    bodies = now - timedelta(config.bodies_days) if config.bodies_days is not None else None
    return Horizons(rows, no_spend, bodies)


def _no_spend() -> ColumnElement[bool]:
    return and_(
        SpendRecord.cost_pico == 0,
        SpendRecord.input_tokens == 0,
        SpendRecord.output_tokens == 0,
        SpendRecord.cache_read_tokens == 0,
        SpendRecord.cache_write_tokens == 0,
    )


class Retention:
    """Deletes what the retention settings no longer keep, in the background."""

    def __init__(self, db: Database, config: RetentionConfig) -> None:
        self._db = db
        self._config = config
        self._batch = config.batch
        self._mark: tuple[datetime, int] | None = None  # where the no-spend scan is
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Run a pass now and every ``interval_seconds``."""
        self._task = asyncio.create_task(self._run(), name="tollway-retention")

    async def _run(self) -> None:
        while True:
            try:
                swept = await self.sweep()
                if swept.rows or swept.no_spend_rows or swept.bodies:
                    log.info("retention", extra={"fields": vars(swept)})
            except Exception:  # the edge: a failed pass is retried at the next interval
                log.exception("retention pass failed; will retry")
                self._db.failures.report("database", "retention")
            await asyncio.sleep(self._config.interval_seconds)

    async def sweep(self, now: datetime | None = None) -> Swept:
        """One pass: delete everything past its horizon at ``now``."""
        limits = horizons(self._config, now or datetime.now(UTC))
        swept = Swept()
        if limits.rows is not None:
            while (gone := await self._old_rows(limits.rows)) > 0:
                swept.rows += gone
                await asyncio.sleep(0)
        if limits.no_spend is not None:
            while True:
                scanned, gone = await self._no_spend_rows(limits.no_spend)
                swept.no_spend_rows += gone
                if scanned < self._batch:
                    break
                await asyncio.sleep(0)
        if limits.bodies is not None:
            while (gone := await self._old_bodies(limits.bodies)) > 0:
                swept.bodies += gone
                await asyncio.sleep(0)
        return swept

    async def _old_rows(self, before: datetime) -> int:
        """Delete one batch of rows older than ``before`` (and their bodies)."""
        oldest = (
            select(SpendRecord.id)
            .where(SpendRecord.ts < before)
            .order_by(SpendRecord.ts)
            .limit(self._batch)
        )
        async with self._db.transaction() as session:
            gone = list(
                (
                    await session.scalars(
                        delete(SpendRecord)
                        .where(SpendRecord.id.in_(oldest))
                        .returning(SpendRecord.request_id)
                    )
                ).all()
            )
            await delete_bodies(session, gone)
        return len(gone)

    async def _no_spend_rows(self, before: datetime) -> tuple[int, int]:
        """Read the next batch of rows older than ``before`` from the mark on, delete the
        ones without spend; returns (read, deleted)."""
        query = select(SpendRecord.ts, SpendRecord.id, SpendRecord.request_id, _no_spend())
        query = query.where(SpendRecord.ts < before)
        if self._mark is not None:
            query = query.where(tuple_(SpendRecord.ts, SpendRecord.id) > tuple_(*self._mark))
        query = query.order_by(SpendRecord.ts, SpendRecord.id).limit(self._batch)
        async with self._db.transaction() as session:
            rows = list((await session.execute(query)).all())
            doomed = [row for row in rows if row[3]]
            if doomed:
                await session.execute(
                    delete(SpendRecord).where(SpendRecord.id.in_([row[1] for row in doomed]))
                )
                await delete_bodies(session, [row[2] for row in doomed])
        if rows:
            self._mark = (rows[-1][0], rows[-1][1])
        return len(rows), len(doomed)

    async def _old_bodies(self, before: datetime) -> int:
        """Delete one batch of bodies older than ``before``."""
        oldest = (
            select(RequestBody.request_id)
            .where(RequestBody.ts < before)
            .order_by(RequestBody.ts)
            .limit(self._batch)
        )
        async with self._db.transaction() as session:
            result = await session.execute(
                delete(RequestBody)
                .where(RequestBody.request_id.in_(oldest))
                .returning(RequestBody.request_id)
            )
            return len(result.all())

    async def aclose(self) -> None:
        """Stop (a pass in progress is cut between transactions or rolled back)."""
        task, self._task = self._task, None
        await stop(task)
