"""Spend report queries: totals per group over any time range, answered from the
rollups (``rollups.py``) wherever whole hours and days allow, exactly.

A range is cut into what each source can answer (``cover``): whole days from the daily
cells, whole hours at the ends from the hourly cells, and the parts of an hour at the
very ends from the spend rows themselves. A 30-day report so reads about 30 days of
cells instead of every call. Groups by a metadata field read the rows (the cells do not
carry metadata), and so do those ends: a range whose ends fall inside an hour whose rows
retention already deleted counts only the whole hours there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Select, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tollway.store.rollups import DAY, HOUR, bucket, instant
from tollway.store.tables import SpendRecord, SpendRollup

GROUPS = ("key", "project", "model", "provider", "day", "endpoint")
# What a report sums, in this order, from the rows and from the cells alike.
TOTALS = (
    "requests",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_pico",
    "unpriced_requests",
    "estimated_requests",
)
_DIMENSION = {
    "key": "key_id",
    "project": "project_id",
    "model": "model",
    "provider": "provider",
    "endpoint": "endpoint",
}


@dataclass(frozen=True, slots=True)
class Rows:
    """A part of a range read from the spend rows: [since, until)."""

    since: datetime | None
    until: datetime | None


@dataclass(frozen=True, slots=True)
class Cells:
    """A part of a range read from the cells of one span: buckets in [low, high)."""

    span: int
    low: int | None
    high: int | None


def _up(ts: datetime, span: int) -> int:
    start = bucket(ts, span)
    return start if instant(start) == ts else start + span


def cover(since: datetime | None, until: datetime | None) -> list[Rows | Cells]:
    """The parts that together make [since, until) exactly, each once (None: open)."""
    low = _up(since, HOUR) if since is not None else None
    high = bucket(until, HOUR) if until is not None else None
    if low is not None and high is not None and low >= high:
        return [Rows(since, until)]  # within an hour, or across one boundary only
    parts: list[Rows | Cells] = []
    if since is not None and low is not None and instant(low) != since:
        parts.append(Rows(since, instant(low)))
    if until is not None and high is not None and instant(high) != until:
        parts.append(Rows(instant(high), until))
    day_low = -(-low // DAY) * DAY if low is not None else None
    day_high = high // DAY * DAY if high is not None else None
    if day_low is not None and day_high is not None and day_low >= day_high:
        parts.append(Cells(HOUR, low, high))
        return parts
    if low is not None and day_low != low:
        parts.append(Cells(HOUR, low, day_low))
    parts.append(Cells(DAY, day_low, day_high))
    if high is not None and day_high != high:
        parts.append(Cells(HOUR, day_high, high))
    return parts


def _row_sums() -> tuple[Any, ...]:
    return (
        func.count(),
        func.sum(SpendRecord.input_tokens),
        func.sum(SpendRecord.output_tokens),
        func.sum(SpendRecord.cache_read_tokens),
        func.sum(SpendRecord.cache_write_tokens),
        func.sum(SpendRecord.cost_pico),
        func.sum(case((SpendRecord.priced.is_(False), 1), else_=0)),
        func.sum(case((SpendRecord.estimated.is_(True), 1), else_=0)),
    )


def _row_group(group_by: str, dialect: str) -> Any:
    if group_by == "day":
        if dialect == "postgresql":
            return func.to_char(func.timezone("UTC", SpendRecord.ts), "YYYY-MM-DD")
        return func.strftime("%Y-%m-%d", SpendRecord.ts)
    if group_by in _DIMENSION:
        return getattr(SpendRecord, _DIMENSION[group_by])
    return SpendRecord.metadata_[group_by.removeprefix("metadata.")].as_string()


def _rows_query(
    part: Rows, group_by: str | None, dialect: str, filters: dict[str, str]
) -> Select[Any]:
    conditions: list[ColumnElement[bool]] = []
    if part.since is not None:
        conditions.append(SpendRecord.ts >= part.since)
    if part.until is not None:
        conditions.append(SpendRecord.ts < part.until)
    for column, value in filters.items():
        conditions.append(getattr(SpendRecord, column) == value)
    if group_by is None:
        return select(*_row_sums()).where(*conditions)
    group = _row_group(group_by, dialect)
    return select(group, *_row_sums()).where(*conditions).group_by(group)


def _cells_query(part: Cells, group_by: str | None, filters: dict[str, str]) -> Select[Any]:
    conditions: list[ColumnElement[bool]] = [SpendRollup.span == part.span]
    if part.low is not None:
        conditions.append(SpendRollup.bucket >= part.low)
    if part.high is not None:
        conditions.append(SpendRollup.bucket < part.high)
    for column, value in filters.items():
        conditions.append(getattr(SpendRollup, column) == value)
    sums = [func.sum(getattr(SpendRollup, name)) for name in TOTALS]
    if group_by is None:
        return select(*sums).where(*conditions)
    group = (
        SpendRollup.bucket // DAY
        if group_by == "day"
        else getattr(SpendRollup, _DIMENSION[group_by])
    )
    return select(group, *sums).where(*conditions).group_by(group)


def _group_name(value: Any, group_by: str | None, from_cells: bool) -> Any:
    if group_by == "day" and from_cells:
        return instant(int(value) * DAY).strftime("%Y-%m-%d")
    if from_cells and value == "":
        return None  # stored for "none" in a cell's key
    return value


async def _sums(
    session: AsyncSession,
    group_by: str | None,
    since: datetime | None,
    until: datetime | None,
    filters: dict[str, str],
) -> dict[Any, list[int]]:
    """Each group's TOTALS over [since, until)."""
    dialect = session.get_bind().dialect.name
    metadata = group_by is not None and group_by.startswith("metadata.")
    parts = [Rows(since, until)] if metadata else cover(since, until)
    found: dict[Any, list[int]] = {}
    for part in parts:
        from_cells = isinstance(part, Cells)
        if isinstance(part, Cells):
            query = _cells_query(part, group_by, filters)
        else:
            query = _rows_query(part, group_by, dialect, filters)
        for row in (await session.execute(query)).all():
            values = row[1:] if group_by is not None else row
            if group_by is None and not values[0]:
                continue  # no rows: every SUM is NULL
            name = _group_name(row[0], group_by, from_cells) if group_by is not None else None
            total = found.setdefault(name, [0] * len(TOTALS))
            for index, value in enumerate(values):
                total[index] += int(value or 0)
    return found


def _public(sums: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = dict(zip(TOTALS, sums, strict=True))
    out["cost_usd"] = from_pico(out.pop("cost_pico"))
    return out


def _filters(key_id: str | None, project_id: str | None) -> dict[str, str]:
    filters = {}
    if key_id is not None:
        filters["key_id"] = key_id
    if project_id is not None:
        filters["project_id"] = project_id
    return filters


async def report(
    session: AsyncSession,
    *,
    group_by: str | None,
    since: datetime | None = None,
    until: datetime | None = None,
    key_id: str | None = None,
    project_id: str | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Totals per group (most expensive first) and overall totals."""
    found = await _sums(session, group_by, since, until, _filters(key_id, project_id))
    overall = [0] * len(TOTALS)
    for sums in found.values():
        for index, value in enumerate(sums):
            overall[index] += value
    if group_by is None:
        return [], _public(overall)
    cost = TOTALS.index("cost_pico")
    ordered = sorted(
        found.items(), key=lambda item: (-item[1][cost], item[0] is None, str(item[0]))
    )
    return [{"group": name, **_public(sums)} for name, sums in ordered], _public(overall)


async def recorded_pico(
    session: AsyncSession,
    *,
    key_id: str | None = None,
    project_id: str | None = None,
    since: datetime | None = None,
) -> int:
    """Recorded cost of a key or project since a time, in pico-dollars (from the cells:
    retention deleting old rows never changes it)."""
    found = await _sums(session, None, since, None, _filters(key_id, project_id))
    return sum(sums[TOTALS.index("cost_pico")] for sums in found.values())


async def total_cost(
    session: AsyncSession,
    *,
    key_id: str | None = None,
    project_id: str | None = None,
    since: datetime | None = None,
) -> Decimal:
    """Recorded cost of a key or project (since a time)."""
    pico = await recorded_pico(session, key_id=key_id, project_id=project_id, since=since)
    return from_pico(pico)


PICO = Decimal(10) ** 12


def to_pico(amount: Decimal) -> int:
    """USD to integer pico-dollars (exact for every price in the database)."""
    return int((amount * PICO).to_integral_value())


def from_pico(value: int) -> Decimal:
    """Integer pico-dollars to USD."""
    return Decimal(value) / PICO
