"""Spend records as database rows: fitted to their columns, inserted in batches.

A journal record is JSON; a row must fit the ``spend`` table. Text is cut to its column
width with NULs removed (Postgres refuses them), metadata that will not serialize is
dropped, and a record whose numbers cannot fit (an integer past 64 bits) is refused here
with ``RecordRejected`` before any database sees it. Every other refusal comes from the
database itself, and ``rejected_by_database`` tells it apart from an outage: a rejected
record is quarantined, an outage is waited out.
"""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, cast

import orjson
from sqlalchemy import Table
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite

from tollway.bounds import INT64_MAX, MAX_ATTEMPTS
from tollway.metering import spend_effects
from tollway.store.db import Database
from tollway.store.spend import to_pico
from tollway.store.tables import SpendRecord

# Text columns and their widths (tables.SpendRecord).
_TEXT = {
    "request_id": 40,
    "key_id": 40,
    "project_id": 40,
    "endpoint": 40,
    "model": 200,
    "provider": 80,
    "upstream_model": 200,
    "error": 80,
    "flags": 80,
    "user_agent": 300,
}
_COUNTS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "status",
    "attempts",
)
COLUMNS = (
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
    "flags",
    "guards",
    "user_agent",
    "attempt_log",
)
_JSON = ("metadata", "guards", "attempt_log")
# Rows per write transaction of a batch, and the pause between two (``insert_sqlite``).
CHUNK_ROWS = 64
CHUNK_PAUSE_SECONDS = 0.0005
_SQLITE_INSERT = (
    f"INSERT INTO spend ({', '.join(COLUMNS)}) "  # noqa: S608 (fixed column names)
    f"VALUES ({', '.join('?' * len(COLUMNS))}) ON CONFLICT (request_id) DO NOTHING"
)


class RecordRejected(Exception):
    """This record cannot be stored as it is (its reason is the message)."""


def _text(value: Any, width: int) -> str | None:
    if value is None:
        return None
    if type(value) is str and len(value) <= width and "\x00" not in value:
        return value  # the usual case, without a copy
    text = str(value).replace("\x00", "")
    return text[:width]


def to_row(record: dict[str, Any]) -> dict[str, Any]:
    """A journal record (JSON types) as column values that fit their columns."""
    row = {column: record.get(column) for column in COLUMNS if column in record}
    for column, width in _TEXT.items():
        if column in row:
            row[column] = _text(row[column], width)
    try:
        row["ts"] = datetime.fromisoformat(str(record["ts"]))
        cost = Decimal(str(record["cost_usd"]))
        row["cost_usd"], row["cost_pico"] = cost, to_pico(cost)
    except (KeyError, ValueError, InvalidOperation) as exc:
        raise RecordRejected(f"unreadable time or cost: {exc}") from None
    for column in (*_COUNTS, "cost_pico"):
        value = row.get(column)
        if value is not None and (not isinstance(value, int) or abs(value) > INT64_MAX):
            raise RecordRejected(f"{column} does not fit a 64-bit integer: {value!r}")
    metadata = row.get("metadata") or {}
    try:
        orjson.dumps(metadata)
    except (TypeError, orjson.JSONEncodeError):
        metadata = {}
    row["metadata"] = metadata if isinstance(metadata, dict) else {}
    row["guards"] = _guards(row.get("guards"))
    row["attempt_log"] = _attempt_log(row.get("attempt_log"))  # absent from older records
    row.setdefault("attempts", 1)
    row.setdefault("reasoning_tokens", 0)
    # Not a column: whether the key's request_count still has to count this call.
    row["count_request"] = record.get("count_request") is True
    return row


def _guards(value: Any) -> list[dict[str, Any]] | None:
    """Guard decisions as stored: a short list of small objects (the pipeline bounds
    them; a journal edited by hand or an older one is held to the same shape)."""
    if not isinstance(value, list) or not value:
        return None
    kept = []
    for item in value[:32]:
        if isinstance(item, dict):
            kinds, count, score = item.get("kinds"), item.get("count"), item.get("score")
            decision: dict[str, Any] = {
                "guard": _text(item.get("guard"), 40),
                "action": _text(item.get("action"), 10),
                "side": _text(item.get("side"), 10),
                "kinds": [_text(k, 40) for k in kinds[:16]] if isinstance(kinds, list) else [],
                "count": count if isinstance(count, int) and 0 <= count <= INT64_MAX else 0,
            }
            if isinstance(score, int | float) and not isinstance(score, bool):
                decision["score"] = float(score)
            kept.append(decision)
    return kept or None


def _attempt_log(value: Any) -> list[dict[str, Any]] | None:
    """A call's upstream tries as stored: at most ``MAX_ATTEMPTS`` (a call never makes
    more), text cut to the spend columns' widths, numbers kept only when plausible."""
    if not isinstance(value, list) or not value:
        return None
    kept = []
    for item in value[:MAX_ATTEMPTS]:
        if isinstance(item, dict):
            kept.append(
                {
                    "provider": _text(item.get("provider"), _TEXT["provider"]),
                    "model": _text(item.get("model"), _TEXT["upstream_model"]),
                    "outcome": _text(item.get("outcome"), _TEXT["error"]),
                    "status": _status(item.get("status")),
                    "latency_ms": _millis(item.get("latency_ms")),
                }
            )
    return kept or None


def _status(value: Any) -> int | None:
    """An HTTP status, or None."""
    if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 999:
        return value
    return None


def _millis(value: Any) -> float | None:
    """A finite, non-negative number of milliseconds, or None (NaN fails the range)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if 0 <= value <= INT64_MAX else None


_AT = {column: index for index, column in enumerate(COLUMNS)}
_FLAGS = ("priced", "estimated", "stream", "cached")


def to_sqlite(row: dict[str, Any]) -> tuple[Any, ...]:
    """Column values as SQLAlchemy stores them in SQLite: naive UTC timestamp text,
    decimal text, 0/1 booleans, JSON text."""
    get = row.get
    values = [get(column) for column in COLUMNS]
    ts: datetime = row["ts"].astimezone(UTC).replace(tzinfo=None)
    values[_AT["ts"]] = ts.isoformat(" ", "microseconds")
    values[_AT["cost_usd"]] = str(row["cost_usd"])
    for column in _JSON:
        value = get(column)
        values[_AT[column]] = orjson.dumps(value).decode() if value is not None else None
    for flag in _FLAGS:
        values[_AT[flag]] = 1 if get(flag) else 0
    return tuple(values)


def insert_sqlite(
    path: Path, rows: list[dict[str, Any]], bodies: list[dict[str, Any]] | None = None
) -> None:
    """A batch on a stdlib connection (run in a thread): the rows not stored yet, what
    they change (``spend_effects``), and captured bodies.

    The rows are converted before any lock is taken, then written ``CHUNK_ROWS`` at a
    time, each chunk in a transaction of its own with a pause after it: SQLite has one
    write lock per file, and a budget reservation waiting for it would otherwise wait
    out the whole batch (tens of milliseconds under load). Each chunk is idempotent on
    its own (a row already stored is skipped with its effects), so a batch cut between
    chunks by a crash is completed by the journal replay, never counted twice."""
    values = [to_sqlite(row) for row in rows]
    conn = sqlite3.connect(path, isolation_level=None, timeout=10.0)
    # As every other connection to the file (store/engine.py): durable against a process
    # crash, the failure the journal guards against too; FULL synced the WAL at every
    # commit, with the write lock held.
    conn.execute("PRAGMA synchronous=NORMAL")
    try:
        starts = range(0, len(rows), CHUNK_ROWS) if rows else range(1)
        for start in starts:
            if start:
                time.sleep(CHUNK_PAUSE_SECONDS)  # the lock is free: let a waiter in
            end = start + CHUNK_ROWS
            _insert_chunk(conn, rows[start:end], values[start:end], bodies if not start else [])
    finally:
        conn.close()


def _insert_chunk(
    conn: sqlite3.Connection,
    rows: list[dict[str, Any]],
    values: list[tuple[Any, ...]],
    bodies: list[dict[str, Any]] | None,
) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        seen = spend_effects.stored_ids_sqlite(conn, rows)
        fresh: list[dict[str, Any]] = []
        inserts: list[tuple[Any, ...]] = []
        for row, value in zip(rows, values, strict=True):
            if row["request_id"] not in seen:
                seen.add(row["request_id"])
                fresh.append(row)
                inserts.append(value)
        conn.executemany(_SQLITE_INSERT, inserts)
        spend_effects.apply_sqlite(conn, fresh, bodies or [])
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


async def insert_rows(
    db: Database, rows: list[dict[str, Any]], bodies: list[dict[str, Any]] | None = None
) -> None:
    """Insert rows idempotently (a request id is stored once), with what they change
    and captured bodies, in one transaction."""
    if db.sqlite_file is not None:
        import asyncio

        # The whole batch (row conversion, executemany, commit) runs in one call on a
        # thread with its own stdlib connection: through SQLAlchemy it cost ~30 us of
        # event-loop time per row, and the write lock was held across loop turns.
        await asyncio.to_thread(insert_sqlite, db.sqlite_file, rows, bodies)
        return
    table = cast(Table, SpendRecord.__table__)
    dialect = postgresql if db.engine.dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(table)
        .on_conflict_do_nothing(index_elements=["request_id"])
        .returning(table.c.request_id)
    )
    async with db.transaction() as session:
        stored: set[str] = set()
        if rows:
            values = [{k: v for k, v in row.items() if k != "count_request"} for row in rows]
            inserted = set((await session.execute(statement, values)).scalars())
            stored = {row["request_id"] for row in rows} - inserted
        fresh = spend_effects.first_of_each(rows, stored)
        await spend_effects.apply(session, fresh, bodies or [])


def rejected_by_database(exc: BaseException) -> bool:
    """Whether the database refused the data itself (quarantine it) rather than being
    unreachable, locked or failing (keep it and retry)."""
    if isinstance(exc, RecordRejected | OverflowError | ValueError | TypeError):
        return True
    if isinstance(exc, sqlite3.IntegrityError | sqlite3.DataError | sqlite3.InterfaceError):
        return True
    return isinstance(exc, sa_exc.DataError | sa_exc.IntegrityError)
