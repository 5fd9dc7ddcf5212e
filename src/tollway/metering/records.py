"""Spend records: journaled on the request path, inserted into the database in batches.

``Recorder.intend`` journals that a call was admitted; ``Recorder.record`` journals its
spend record when it ends. Both cost one memory copy. A background task flushes batches
every ``FLUSH_SECONDS`` (or sooner when many are waiting) with an idempotent insert, then
deletes the journal segments they came from; intents of calls still running are carried
into the next segment, so a ``kill -9`` always leaves, for every admitted call, either
its record or its intent.

Nothing stops the writer:
- the database is down: records wait in memory and in the journal, and the flush retries;
- the database refuses a record: the batch is retried row by row and the refused row goes
  to the quarantine (``quarantine.py``); the rest is written;
- a dead process's segments (found at start and every ``RECOVER_SECONDS``) are replayed:
  its records are inserted, and each intent without a record becomes a record flagged
  ``crash_recovered``, costed at least at what the call had reserved. Replay failing only
  means trying again later; it never fails startup.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from tollway.metering.journal import Journal, Orphan, close_segments
from tollway.metering.quarantine import Quarantine
from tollway.metering.spend_effects import BODIES, body_row
from tollway.metering.spend_rows import RecordRejected, insert_rows, rejected_by_database, to_row
from tollway.store.db import Database

log = logging.getLogger("tollway.metering")
FLUSH_SECONDS = 0.25
FLUSH_BATCH = 500
RECOVER_SECONDS = 30.0
_RETRY_SECONDS = 1.0
INTENT = "intent"
CRASH_FLAG = "crash_recovered"

# What a crashed call is charged: (cost, priced, input tokens) from its intent.
CrashCost = Callable[[dict[str, Any]], tuple[Decimal, bool, int]]
# Told which dead instances' records are now safe (to reclaim their budget holds).
Recovered = Callable[[str], Awaitable[None]]


class DatabaseDown(Exception):
    """The database could not take records now; they stay pending."""


def _no_cost(_intent: dict[str, Any]) -> tuple[Decimal, bool, int]:
    return Decimal(0), False, 0


class Recorder:
    """Durable, batched spend recording for one process."""

    def __init__(self, db: Database, data_dir: Path, instance: str | None = None) -> None:
        self._db = db
        self.failures = db.failures  # where the database's failures are reported
        self._journal = Journal(data_dir, instance)
        self.instance = self._journal.instance
        self.quarantine = Quarantine(db, data_dir)
        self._pending: list[dict[str, Any]] = []
        self._segments: list[Path] = []
        self._open: dict[str, dict[str, Any]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        # One flush at a time: a reader's flush waits for the writer's batch in flight.
        self._flushing = asyncio.Lock()
        self.crash_cost: CrashCost = _no_cost
        self.recovered: Recovered | None = None
        self.last_flush_error: str | None = None

    async def start(self) -> int:
        """Replay what dead processes left (never raising), then start flushing; returns
        how many records were recovered."""
        recovered = await self.recover()
        self._task = asyncio.create_task(self._run(), name="tollway-spend-writer")
        return recovered

    def intend(self, intent: dict[str, Any]) -> None:
        """Journal that a call was admitted (its record comes with ``record``)."""
        self._journal.append({**intent, "kind": INTENT})
        self._open[intent["request_id"]] = intent

    def record(self, record: dict[str, Any]) -> None:
        """Journal one record now; it reaches the database shortly."""
        self._journal.append(record)
        self._open.pop(record["request_id"], None)
        self._pending.append(record)
        if len(self._pending) >= FLUSH_BATCH:
            self._wake.set()

    def record_bodies(self, bodies: dict[str, Any]) -> None:
        """Journal a call's captured bodies (``capture.py``); stored with the next batch."""
        entry = {**bodies, "kind": BODIES}
        self._journal.append(entry)
        self._pending.append(entry)

    @property
    def pending(self) -> int:
        """Records journaled but not yet in the database."""
        return len(self._pending)

    async def _run(self) -> None:
        next_recovery = time.monotonic() + RECOVER_SECONDS
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), FLUSH_SECONDS)
            self._wake.clear()
            if not await self.flush():
                await asyncio.sleep(_RETRY_SECONDS)
            elif time.monotonic() >= next_recovery:
                next_recovery = time.monotonic() + RECOVER_SECONDS
                await self.recover()

    async def flush(self) -> bool:
        """Insert everything pending (and wait for a batch already being inserted);
        False (records kept) if the database is unavailable."""
        async with self._flushing:
            return await self._flush()

    async def _flush(self) -> bool:
        batch = await self._rotate()
        if not batch:
            return True
        try:
            await self._commit(batch)
        except DatabaseDown as exc:
            self.failures.report("database", "spend_flush")
            self._pending = batch + self._pending
            if self.last_flush_error != str(exc):
                log.warning("spend flush failed; will retry", extra={"fields": {"n": len(batch)}})
            self.last_flush_error = str(exc)
            return False
        self.last_flush_error = None
        # Everything journaled before this flush is now committed.
        committed, self._segments = self._segments, []
        for path in committed:
            path.unlink(missing_ok=True)
        return True

    async def _rotate(self) -> list[dict[str, Any]]:
        """Set aside the segments holding what is pending and take the pending records,
        carry the intents of calls still running into the next segment, and close the
        set-aside ones (deleted once committed). Creating and closing segment files run
        on a thread: a few system calls each, which every call in flight would otherwise
        wait for."""
        if not self._closing and not self._journal.has_spare:
            await asyncio.to_thread(self._journal.prepare_spare)
        full = self._journal.rotate()
        batch, self._pending = self._pending, []
        for intent in self._open.values():
            self._journal.append({**intent, "kind": INTENT})
        if full:
            self._segments.extend(await asyncio.to_thread(close_segments, full))
        return batch

    async def _commit(self, records: list[dict[str, Any]]) -> None:
        """Insert ``records``; a refused one is quarantined; DatabaseDown if the database
        is unavailable (nothing is quarantined then)."""
        # Off the event loop: a batch takes milliseconds to convert, which every call
        # in flight would otherwise wait out.
        pairs, bodies, refused = await asyncio.to_thread(_convert, records)
        for record, reason in refused:
            await self.quarantine.put(record, reason)
        if not pairs and not bodies:
            return
        try:
            await insert_rows(self._db, [row for row, _ in pairs], [row for row, _ in bodies])
            return
        except Exception as exc:  # the edge: classify, then keep or split
            if not rejected_by_database(exc):
                raise DatabaseDown(f"{type(exc).__name__}: {exc}") from exc
        for row, record in [*pairs, *bodies]:
            alone = ([], [row]) if record.get("kind") == BODIES else ([row], [])
            try:
                await insert_rows(self._db, *alone)
            except Exception as exc:  # the edge: one record at a time
                if not rejected_by_database(exc):
                    raise DatabaseDown(f"{type(exc).__name__}: {exc}") from exc
                await self.quarantine.put(record, f"{type(exc).__name__}: {exc}")

    async def recover(self) -> int:
        """Replay the segments of dead processes; returns the records recovered. A
        failure is logged and retried later, never raised."""
        recovered = 0
        try:
            for orphan in self._journal.orphans():
                records = self._replayed(orphan)
                try:
                    await self._commit(records)
                except DatabaseDown:
                    self.failures.report("database", "journal_replay")
                    log.warning(
                        "journal replay waits for the database",
                        extra={"fields": {"instance": orphan.instance}},
                    )
                    return recovered
                if self.recovered is not None:
                    await self.recovered(orphan.instance)
                Journal.forget(orphan)
                recovered += len(records)
        except Exception:  # the edge: replay is retried by the writer
            log.exception("journal replay failed; will retry")
        if recovered:
            log.warning("recovered spend records", extra={"fields": {"records": recovered}})
        return recovered

    def _replayed(self, orphan: Orphan) -> list[dict[str, Any]]:
        """The dead instance's records, plus a crash record for every call it admitted
        and never recorded."""
        finals: dict[str, dict[str, Any]] = {}
        intents: dict[str, dict[str, Any]] = {}
        bodies: list[dict[str, Any]] = []
        for record in orphan.records:
            request_id = str(record.get("request_id"))
            if record.get("kind") == INTENT:
                intents.setdefault(request_id, record)
            elif record.get("kind") == BODIES:
                bodies.append(record)
            else:
                finals[request_id] = record
        crashed = [self._crash_record(i) for rid, i in intents.items() if rid not in finals]
        return [*finals.values(), *crashed, *bodies]

    def _crash_record(self, intent: dict[str, Any]) -> dict[str, Any]:
        try:
            cost, priced, input_tokens = self.crash_cost(intent)
        except Exception:  # the edge: an unpriceable intent is still recorded
            log.exception("costing a crashed call failed")
            cost, priced, input_tokens = Decimal(0), False, 0
        return {
            "request_id": intent.get("request_id"),
            "ts": utc_iso(float(intent.get("started_at") or time.time())),
            "key_id": intent.get("key_id"),
            "project_id": intent.get("project_id"),
            "endpoint": intent.get("endpoint"),
            "model": intent.get("model"),
            "provider": None,
            "upstream_model": None,
            "status": 500,
            "error": "gateway_crashed",
            "latency_ms": 0.0,
            "ttft_ms": None,
            "stream": bool(intent.get("stream")),
            "cached": False,
            "attempts": 1,
            "metadata": intent.get("metadata") or {},
            "count_request": intent.get("count_request") is True,
            "user_agent": intent.get("user_agent"),
            "input_tokens": input_tokens,
            "output_tokens": 0,
            "cache_read_tokens": 0,
            "cache_write_tokens": 0,
            "reasoning_tokens": 0,
            "cost_usd": str(cost),
            "priced": priced,
            "estimated": True,
            "flags": CRASH_FLAG,
        }

    async def aclose(self) -> None:
        """Flush what is left and stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        self._segments.extend(self._journal.close())
        if await self.flush() and not self._open:
            self._journal.release()


Pairs = list[tuple[dict[str, Any], dict[str, Any]]]


def _convert(
    records: list[dict[str, Any]],
) -> tuple[Pairs, Pairs, list[tuple[dict[str, Any], str]]]:
    """Each record as the row it is stored as, paired with it: spend rows, body rows,
    and the records refused before the database saw them (with why)."""
    pairs: Pairs = []
    bodies: Pairs = []
    refused: list[tuple[dict[str, Any], str]] = []
    for record in records:
        try:
            if record.get("kind") == BODIES:
                bodies.append((body_row(record), record))
            else:
                pairs.append((to_row(record), record))
        except (RecordRejected, ValueError) as exc:
            refused.append((record, str(exc)))
    return pairs, bodies, refused


def utc_iso(ts: float) -> str:
    """A UNIX time as an ISO string in UTC."""
    return datetime.fromtimestamp(ts, UTC).isoformat()
