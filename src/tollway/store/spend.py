"""Spend report queries: totals per group over any time range, exactly, without reading
a month of calls: the range is cut into running totals, rollup cells and, for the parts
of an hour at its ends, spend rows (``spend_plan.py``), and each part is summed per group.

A group by a metadata field reads the field from each metadata set the cells and the
running totals point at (``spend_metadata.py``), and from the rows' own metadata, in
the query, the same way on every database (as Postgres' ``->>`` gives it).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Select, String, case, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tollway.store import running, spend_metadata
from tollway.store.rollups import DAY, instant
from tollway.store.spend_plan import Cells, Part, Rows, plan
from tollway.store.tables import SpendMetadata, SpendRecord, SpendRollup

GROUPS = ("key", "project", "model", "provider", "day", "endpoint")
# What a report sums, in this order, from the rows, the cells and the running totals.
TOTALS = running.SUMS
_PLANS = 3  # attempts at a report while the running totals' horizon moves back
_DIMENSION = {
    "key": "key_id",
    "project": "project_id",
    "model": "model",
    "provider": "provider",
    "endpoint": "endpoint",
}


def _count(value: Any) -> Any:
    """A sum of counts (calls, tokens: far from 64 bits) as an integer: Postgres sums
    BIGINTs as NUMERIC, which the driver turns into Decimals, a few microseconds each.
    Money stays NUMERIC: a lifetime of pico-dollars may pass 64 bits."""
    return cast(func.sum(value), BigInteger)


def _row_sums() -> tuple[Any, ...]:
    return (
        func.count(),
        _count(SpendRecord.input_tokens),
        _count(SpendRecord.output_tokens),
        _count(SpendRecord.cache_read_tokens),
        _count(SpendRecord.cache_write_tokens),
        func.sum(SpendRecord.cost_pico),
        _count(case((SpendRecord.priced.is_(False), 1), else_=0)),
        _count(case((SpendRecord.estimated.is_(True), 1), else_=0)),
    )


def _unordered(column: Any) -> Any:
    """A column to group by as an expression of the same value. SQLite otherwise walks
    an index on the column (the key and project ones) value by value to save a sort,
    which on a range of time costs a seek per key (20 ms instead of 6 for an hour of
    a thousand keys); Postgres aggregates by hash either way."""
    return column + "" if isinstance(column.type, String) else column + 0


def _row_group(group_by: str, dialect: str) -> Any:
    if group_by == "day":
        if dialect == "postgresql":
            return func.to_char(func.timezone("UTC", SpendRecord.ts), "YYYY-MM-DD")
        return func.strftime("%Y-%m-%d", SpendRecord.ts)
    if group_by in _DIMENSION:
        return _unordered(getattr(SpendRecord, _DIMENSION[group_by]))
    return spend_metadata.field(SpendRecord.metadata_, group_by.removeprefix("metadata."), dialect)


def _rows_query(
    part: Rows, group_by: str | None, dialect: str, filters: dict[str, str]
) -> Select[Any]:
    conditions: list[ColumnElement[bool]] = [
        SpendRecord.ts >= part.since,
        SpendRecord.ts < part.until,
    ]
    for column, value in filters.items():
        conditions.append(getattr(SpendRecord, column) == value)
    if group_by is None:
        return select(*_row_sums()).where(*conditions)
    group = _row_group(group_by, dialect)
    return select(group, *_row_sums()).where(*conditions).group_by(group)


def _cells_query(
    part: Cells, group_by: str | None, dialect: str, filters: dict[str, str]
) -> Select[Any]:
    conditions: list[ColumnElement[bool]] = [SpendRollup.span == part.span]
    if part.low is not None:
        conditions.append(SpendRollup.bucket >= part.low)
    if part.high is not None:
        conditions.append(SpendRollup.bucket < part.high)
    for column, value in filters.items():
        conditions.append(getattr(SpendRollup, column) == value)
    sums = [
        func.sum(SpendRollup.cost_pico)
        if name == "cost_pico"
        else _count(getattr(SpendRollup, name))
        for name in TOTALS
    ]
    if group_by is None:
        return select(*sums).where(*conditions)
    if group_by == "day":
        group = SpendRollup.bucket // DAY
    elif group_by in _DIMENSION:
        group = _unordered(getattr(SpendRollup, _DIMENSION[group_by]))
    else:
        # The field of each cell's metadata set.
        name = group_by.removeprefix("metadata.")
        group = spend_metadata.field(SpendMetadata.metadata_, name, dialect)
        return (
            select(group, *sums)
            .select_from(SpendRollup)
            .outerjoin(SpendMetadata, SpendMetadata.id == SpendRollup.metadata_id)
            .where(*conditions)
            .group_by(group)
        )
    return select(group, *sums).where(*conditions).group_by(group)


def _group_name(value: Any, group_by: str | None, from_cells: bool) -> Any:
    if group_by == "day" and from_cells:
        return instant(int(value) * DAY).strftime("%Y-%m-%d")
    if from_cells and value == "":
        return None  # stored for "none" in a cell's key
    return value


def _add(into: dict[Any, list[int]], groups: list[tuple[Any, list[int]]]) -> None:
    for name, values in groups:
        was = into.get(name)
        into[name] = values if was is None else [a + b for a, b in zip(was, values, strict=True)]


async def _running_groups(
    session: AsyncSession, part: running.Span, group_by: str | None
) -> list[tuple[Any, list[int]]]:
    """Each group's totals over a part read from the running totals."""
    if group_by == "day":
        groups: dict[Any, list[int]] = {}
        steps = await running.steps(session, part)
        previous = [0] * len(TOTALS)
        for hour, sums in steps:
            if part.low is None or hour >= part.low:
                day = instant(hour).strftime("%Y-%m-%d")
                total = groups.setdefault(day, [0] * len(TOTALS))
                for index, (now, then) in enumerate(zip(sums, previous, strict=True)):
                    total[index] += now - then
            previous = sums
        return list(groups.items())
    if group_by is None:
        return [(None, sums) for _, sums in await running.totals(session, running.TOTAL, part)]
    if group_by.startswith("metadata."):
        name = group_by.removeprefix("metadata.")
        dialect = session.get_bind().dialect.name
        return await running.totals_by_field(session, part, name, dialect)
    found = await running.totals(session, group_by, part)
    return [(value or None, sums) for value, sums in found]  # '' stands for none


async def _part_groups(
    session: AsyncSession, part: Part, group_by: str | None, filters: dict[str, str]
) -> list[tuple[Any, list[int]]]:
    """Each group's totals over one part, with its sign (a metadata field's value as the
    database gives it, ``spend_metadata.field_value`` makes it text)."""
    if isinstance(part, running.Span):
        return await _running_groups(session, part, group_by)
    from_cells = isinstance(part, Cells)
    dialect = session.get_bind().dialect.name
    if isinstance(part, Cells):
        query = _cells_query(part, group_by, dialect, filters)
    else:
        query = _rows_query(part, group_by, dialect, filters)
    groups: list[tuple[Any, list[int]]] = []
    for row in (await session.execute(query)).all():
        values = row[1:] if group_by is not None else row
        if group_by is None and not values[0]:
            continue  # no rows: every SUM is NULL
        name = _group_name(row[0], group_by, from_cells) if group_by is not None else None
        sums = [int(value or 0) for value in values]
        if isinstance(part, Rows) and part.sign != 1:
            sums = [part.sign * value for value in sums]
        groups.append((name, sums))
    return groups


async def _sums(
    session: AsyncSession,
    group_by: str | None,
    since: datetime | None,
    until: datetime | None,
    filters: dict[str, str],
) -> dict[Any, list[int]]:
    """Each group's TOTALS over [since, until)."""
    for attempt in range(_PLANS):
        # Reports of one key or project read its cells (and so does a last attempt).
        use_running = not filters and attempt < _PLANS - 1
        horizon = await running.horizon(session) if use_running else None
        try:
            found: dict[Any, list[int]] = {}
            for part in plan(since, until, horizon):
                groups = await _part_groups(session, part, group_by, filters)
                if group_by is not None and group_by.startswith("metadata."):
                    groups = [(spend_metadata.field_value(name), sums) for name, sums in groups]
                _add(found, groups)
        except running.Moved:
            continue  # a late record moved the running totals' horizon back meanwhile
        # A group whose calls were all in subtracted rows had none in the range.
        return {name: sums for name, sums in found.items() if any(sums)}
    raise AssertionError("unreachable: the last plan reads no running totals")


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
