"""Spend rollups: the totals of the spend rows per hour and per day, kept exactly.

Each batch of spend rows is inserted in one transaction with the rollup cells it changes
(``cells``, then an upsert adding them), so the totals and the rows never disagree, on
SQLite and Postgres alike. Money is integer pico-dollars, so the sums are exact. Every
row adds to two cells: its hour's and its day's (UTC), each per key, project, model,
provider, endpoint and metadata set (``spend_metadata.py``). Retention deletes old rows
and keeps their cells; a report over any range reads days, hours and, for the parts of
an hour at its ends, the rows (``spend.py``).

The cells are sorted before they are written, so that concurrent writers on Postgres
lock them in the same order and never deadlock on each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from tollway.store.tables import SpendRollup

HOUR = 3600
DAY = 86_400
SPANS = (HOUR, DAY)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# What a cell is keyed by besides its span and bucket; '' stands for none.
DIMENSIONS = ("key_id", "project_id", "model", "provider", "endpoint")
SUMS = (
    "requests",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_pico",
    "unpriced_requests",
    "estimated_requests",
    "error_requests",
)
KEY = ("span", "bucket", *DIMENSIONS, "metadata_id")
_SQLITE_UPSERT = (
    f"INSERT INTO spend_rollups ({', '.join((*KEY, *SUMS))}) "  # noqa: S608 (fixed names)
    f"VALUES ({', '.join('?' * (len(KEY) + len(SUMS)))}) "
    f"ON CONFLICT ({', '.join(KEY)}) DO UPDATE SET "
    + ", ".join(f"{name} = {name} + excluded.{name}" for name in SUMS)
)


def bucket(ts: datetime, span: int) -> int:
    """The start (UNIX seconds) of the hour or day holding ``ts`` (naive: UTC)."""
    since = (ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)) - EPOCH
    # Whole seconds, rounded down (also before 1970: ``days`` carries the sign).
    return (since.days * DAY + since.seconds) // span * span


def instant(seconds: int) -> datetime:
    """UNIX seconds as an aware UTC datetime."""
    return EPOCH + timedelta(seconds=seconds)


def _sums(row: dict[str, Any]) -> tuple[int, ...]:
    return (
        1,
        int(row.get("input_tokens") or 0),
        int(row.get("output_tokens") or 0),
        int(row.get("cache_read_tokens") or 0),
        int(row.get("cache_write_tokens") or 0),
        int(row.get("reasoning_tokens") or 0),
        int(row.get("cost_pico") or 0),
        0 if row.get("priced", True) else 1,
        1 if row.get("estimated") else 0,
        1 if int(row.get("status") or 0) >= 400 else 0,
    )


def _plus(cell: Sequence[int], sums: Sequence[int]) -> list[int]:
    return [a + b for a, b in zip(cell, sums, strict=True)]


def cells(rows: Sequence[dict[str, Any]], metadata_ids: Sequence[int]) -> list[dict[str, Any]]:
    """What ``rows`` (spend rows as ``spend_rows.to_row`` makes them, with the id of
    each one's metadata set) add to each cell, in key order."""
    # Summed per hour first (a batch's rows mostly share their hour and dimensions),
    # then each hour's sums added to the cell of every span holding it.
    hours: dict[tuple[Any, ...], list[int]] = {}
    for row, metadata_id in zip(rows, metadata_ids, strict=True):
        get = row.get
        key = (bucket(row["ts"], HOUR), *(get(name) or "" for name in DIMENSIONS), metadata_id)
        sums = _sums(row)
        cell = hours.get(key)
        hours[key] = list(sums) if cell is None else _plus(cell, sums)
    added: dict[tuple[Any, ...], list[int]] = {}
    for (hour, *rest), totals in hours.items():
        for span in SPANS:
            # Every span is a whole number of hours: its bucket holds the hour's.
            key = (span, hour // span * span, *rest)
            cell = added.get(key)
            added[key] = list(totals) if cell is None else _plus(cell, totals)
    return [
        {**dict(zip(KEY, key, strict=True)), **dict(zip(SUMS, sums, strict=True))}
        for key, sums in sorted(added.items())
    ]


def add_sqlite(conn: Any, rows: Sequence[dict[str, Any]], metadata_ids: Sequence[int]) -> None:
    """Add ``rows`` to their cells on a stdlib SQLite connection, in its transaction."""
    values = [tuple(cell[name] for name in (*KEY, *SUMS)) for cell in cells(rows, metadata_ids)]
    if values:
        conn.executemany(_SQLITE_UPSERT, values)


async def add(
    session: AsyncSession, rows: Sequence[dict[str, Any]], metadata_ids: Sequence[int]
) -> None:
    """Add ``rows`` to their cells, in the session's transaction."""
    values = cells(rows, metadata_ids)
    if not values:
        return
    table = cast(Table, SpendRollup.__table__)
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table)
    statement = statement.on_conflict_do_update(
        index_elements=list(KEY),
        set_={name: table.c[name] + statement.excluded[name] for name in SUMS},
    )
    await session.execute(statement, values)
