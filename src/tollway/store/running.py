"""Running totals: for every value of every grouping (each key, project, model,
provider, endpoint and metadata set, and all calls together), the totals of its calls
from the beginning up to the end of each hour it had calls in.

A report over [lo, hi) (whole hours) is then, for each value, its running total at
``hi`` minus the one at ``lo``: two rows per value, however long the range, where the
hourly and daily cells need one per hour or day. That is what keeps a month-wide
breakdown of a million calls by key at a couple of thousand row reads.

They are built from the hourly rollup cells by ``compact`` (a background task, never the
request path nor the spend writer), hour by hour up to a horizon: before the horizon
they are complete. A spend record written into an hour that compaction may already have
passed (a long call, a journal replayed after a crash) moves the horizon back in the
same transaction (``lower_horizon``); the running totals from there on are rebuilt by
the next compaction and not read until then. Reports read running totals before the
horizon and cells after it (``spend_plan.py``), so they are exact at every moment.

On Postgres, a writer with such a record takes the horizon row's lock, and compaction
holds it for its whole transaction: a record is either seen by a compaction or moves
the horizon back after it. Compactions on several processes take turns the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    String,
    and_,
    cast,
    delete,
    func,
    insert,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from tollway.store import spend_metadata
from tollway.store.rollups import HOUR, bucket
from tollway.store.tables import SpendRollup, SpendRunning, SpendRunningHead, SpendRunningState

SUMS = (
    "requests",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_pico",
    "unpriced_requests",
    "estimated_requests",
)
TOTAL = "total"  # the grouping of all calls together (its one value is '')
PROJECTIONS = (TOTAL, "key", "project", "model", "provider", "endpoint", "metadata")
# Compaction passes an hour this long after it ended: the clocks of the hosts may differ
# by less than this. Calls are recorded at their start, so an hour is still written to
# after it ends; a record that comes after compaction passed its hour moves the horizon
# back (``late_bucket``), and the next compaction does that hour again.
MARGIN = timedelta(minutes=5)
# Hours compacted per transaction: short write locks, also when catching up.
STEP_HOURS = 6
_STATE_ID = 1
_LOWER = (
    "UPDATE spend_running_state SET horizon = CASE WHEN horizon > :b THEN :b "
    "ELSE horizon END WHERE id = 1"
)


_COLUMNS = {"key": "key_id", "project": "project_id"}


def _value(projection: str) -> ColumnElement[Any]:
    """The cell column holding a grouping's value, as text."""
    if projection == TOTAL:
        return literal("")
    if projection == "metadata":
        return cast(SpendRollup.metadata_id, String)
    column: ColumnElement[Any] = getattr(SpendRollup, _COLUMNS.get(projection, projection))
    return column


def late_bucket(rows: list[dict[str, Any]], now: datetime) -> int | None:
    """The earliest hour of ``rows`` that compaction may already have passed (any before
    the current one: on a host whose clock is ahead by less than MARGIN, compaction has
    not passed the current one), if any."""
    if not rows:
        return None
    earliest = min(bucket(row["ts"], HOUR) for row in rows)
    return earliest if earliest < bucket(now, HOUR) else None


def lower_horizon_sqlite(conn: Any, late: int) -> None:
    """Move the horizon back to ``late`` (stdlib SQLite connection, its transaction)."""
    conn.execute(_LOWER, {"b": late})


async def lower_horizon(session: AsyncSession, late: int) -> None:
    """Move the horizon back to ``late``, in the session's transaction (on Postgres this
    waits for a compaction in progress, which then cannot miss the record)."""
    await session.execute(text(_LOWER), {"b": late})


async def horizon(session: AsyncSession) -> int:
    """Where the running totals end (UNIX seconds, an hour)."""
    found = await session.scalar(
        select(SpendRunningState.horizon).where(SpendRunningState.id == _STATE_ID)
    )
    return int(found or 0)


async def compact(session: AsyncSession, now: datetime) -> bool:
    """Extend the running totals by up to STEP_HOURS hours, in the session's transaction;
    False when they are as far as they go."""
    # The write comes first: it takes the horizon row (Postgres) or the database's write
    # lock (SQLite) before anything is read.
    await session.execute(
        update(SpendRunningState)
        .where(SpendRunningState.id == _STATE_ID)
        .values(horizon=SpendRunningState.horizon)
    )
    start = await horizon(session)
    target = bucket(now - MARGIN, HOUR)
    if start >= target:
        return False
    await _forget_from(session, start)
    first = await session.scalar(
        select(func.min(SpendRollup.bucket)).where(
            SpendRollup.span == HOUR, SpendRollup.bucket >= start, SpendRollup.bucket < target
        )
    )
    end = target if first is None else min(target, int(first) + STEP_HOURS * HOUR)
    if first is not None:
        for projection in PROJECTIONS:
            await _extend(session, projection, int(first), end)
    await session.execute(
        update(SpendRunningState).where(SpendRunningState.id == _STATE_ID).values(horizon=end)
    )
    return end < target


async def _forget_from(session: AsyncSession, start: int) -> None:
    """Delete running totals at or after ``start`` (the horizon was moved back past them)
    and move their values' heads back to the last one left."""
    stale = list(
        (
            await session.execute(
                select(SpendRunningHead.projection, SpendRunningHead.value).where(
                    SpendRunningHead.projection.in_(PROJECTIONS),  # the index's first column
                    SpendRunningHead.last_bucket >= start,
                )
            )
        ).all()
    )
    if not stale:
        return
    await session.execute(delete(SpendRunning).where(SpendRunning.bucket >= start))
    for projection, value in stale:
        where = and_(SpendRunningHead.projection == projection, SpendRunningHead.value == value)
        last = (
            await session.execute(
                select(SpendRunning.bucket, *_columns(SpendRunning))
                .where(SpendRunning.projection == projection, SpendRunning.value == value)
                .order_by(SpendRunning.bucket.desc())
                .limit(1)
            )
        ).first()
        if last is None:
            await session.execute(delete(SpendRunningHead).where(where))
        else:
            values = dict(zip(SUMS, (int(number) for number in last[1:]), strict=True))
            await session.execute(
                update(SpendRunningHead).where(where).values(last_bucket=int(last[0]), **values)
            )


def _columns(entity: Any) -> list[Any]:
    return [getattr(entity, name) for name in SUMS]


async def _extend(session: AsyncSession, projection: str, start: int, end: int) -> None:
    """The running totals of one grouping for the hours in [start, end): each value's
    total before ``start`` (its head) plus its cells so far; then its new head."""
    value = _value(projection).label("value")
    hourly = (
        select(
            value,
            SpendRollup.bucket.label("bucket"),
            *(func.sum(getattr(SpendRollup, name)).label(name) for name in SUMS),
        )
        .where(SpendRollup.span == HOUR, SpendRollup.bucket >= start, SpendRollup.bucket < end)
        .group_by(value, SpendRollup.bucket)
        .subquery("hourly")
    )
    head = aliased(SpendRunningHead, name="head")
    running = [
        (
            func.coalesce(getattr(head, name), 0)
            + func.sum(hourly.c[name]).over(partition_by=hourly.c.value, order_by=hourly.c.bucket)
        ).label(name)
        for name in SUMS
    ]
    query = (
        select(literal(projection), hourly.c.value, hourly.c.bucket, *running)
        .select_from(hourly)
        .outerjoin(head, and_(head.projection == projection, head.value == hourly.c.value))
    )
    await session.execute(
        insert(SpendRunning).from_select(["projection", "value", "bucket", *SUMS], query)
    )
    written = await session.execute(
        select(SpendRunning.value, SpendRunning.bucket, *_columns(SpendRunning))
        .where(
            SpendRunning.projection == projection,
            SpendRunning.bucket >= start,
            SpendRunning.bucket < end,
        )
        .order_by(SpendRunning.value, SpendRunning.bucket)
    )
    heads: dict[str, dict[str, Any]] = {}
    for row in written.all():
        heads[row[0]] = {
            "projection": projection,
            "value": row[0],
            "last_bucket": int(row[1]),
            **dict(zip(SUMS, (int(number) for number in row[2:]), strict=True)),
        }
    if heads:
        await _upsert_heads(session, list(heads.values()))


async def _upsert_heads(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = session.get_bind().dialect.name
    module: Any = postgresql if dialect == "postgresql" else sqlite
    statement = module.insert(SpendRunningHead.__table__)
    statement = statement.on_conflict_do_update(
        index_elements=["projection", "value"],
        set_={name: statement.excluded[name] for name in ("last_bucket", *SUMS)},
    )
    await session.execute(statement, rows)


@dataclass(frozen=True, slots=True)
class Span:
    """A part of a report read from the running totals: whole hours [low, high)."""

    low: int | None
    high: int


def _totals_sql(with_low: bool) -> str:
    """Each value's totals over [:low, :high) (or up to :high): first the hours each value
    is read at (an index seek each; none for the end when the value's head is before it,
    as for a report up to now), then those rows. Written as text: the statement is the
    same every time, and building it as expressions cost milliseconds per report."""
    at = (
        "(SELECT r.bucket FROM spend_running AS r WHERE r.projection = h.projection "
        "AND r.value = h.value AND r.bucket < {moment} ORDER BY r.bucket DESC LIMIT 1)"
    )
    sums = ", ".join(f"h.{name}" for name in SUMS)
    hours = (
        "SELECT h.value, h.last_bucket < :high AS from_head, "  # noqa: S608 (fixed names)
        f"CASE WHEN h.last_bucket < :high THEN NULL ELSE {at.format(moment=':high')} END "
        f"AS high_bucket, {at.format(moment=':low') + ' AS low_bucket, ' if with_low else ''}"
        f"{sums} FROM spend_running_heads AS h WHERE h.projection = :projection"
        f"{' AND h.last_bucket >= :low' if with_low else ''}"
    )
    later = "CASE WHEN b.from_head THEN b.{name} ELSE COALESCE(hi.{name}, 0) END"
    difference = later + (" - COALESCE(lo.{name}, 0)" if with_low else "")
    columns = ", ".join(f"{difference.format(name=name)} AS {name}" for name in SUMS)
    sql = (
        f"SELECT b.value, {columns} FROM ({hours}) AS b "  # noqa: S608 (fixed names)
        "LEFT JOIN spend_running AS hi ON hi.projection = :projection "
        "AND hi.value = b.value AND hi.bucket = b.high_bucket"
    )
    if with_low:
        sql += (
            " LEFT JOIN spend_running AS lo ON lo.projection = :projection "
            "AND lo.value = b.value AND lo.bucket = b.low_bucket"
        )
    return sql


_TOTALS = _totals_sql(with_low=False)
_TOTALS_SINCE = _totals_sql(with_low=True)


class Moved(Exception):
    """The horizon moved back since the report was planned (a late record, or a
    compaction rebuilding after one): plan again."""


def _at_horizon(sql: str) -> str:
    """``sql``'s rows, each led by the horizon read in the same statement, so both come
    from one snapshot (at least one row: the horizon alone when ``sql`` has none)."""
    return (
        "SELECT s.horizon, q.* FROM spend_running_state AS s "  # noqa: S608 (fixed names)
        f"LEFT JOIN ({sql}) AS q ON 1 = 1 WHERE s.id = 1"
    )


async def _read(session: AsyncSession, sql: str, params: dict[str, Any], high: int) -> list[Any]:
    """The rows of ``sql`` (Moved when the running totals no longer reach ``high``)."""
    rows = (await session.execute(text(_at_horizon(sql)), params)).all()
    if not rows or int(rows[0][0]) < high:
        raise Moved
    return [row[1:] for row in rows if any(value is not None for value in row[1:])]


def _found(rows: list[Any]) -> list[tuple[Any, list[int]]]:
    found = []
    for row in rows:
        sums = [int(value or 0) for value in row[1:]]
        if sums[0]:
            found.append((row[0], sums))
    return found


async def totals_by_field(
    session: AsyncSession, part: Span, field: str, dialect: str
) -> list[tuple[Any, list[int]]]:
    """The totals over the part per value of a metadata field: the running totals of
    each metadata set, summed per value of its field in the same query."""
    sql = _TOTALS if part.low is None else _TOTALS_SINCE
    value = spend_metadata.field_sql("m.metadata", dialect)
    # Counts as integers (Postgres sums BIGINTs as NUMERIC); money stays NUMERIC.
    sums = ", ".join(
        f"SUM(t.{column}) AS {column}"
        if column == "cost_pico"
        else f"CAST(SUM(t.{column}) AS BIGINT) AS {column}"
        for column in SUMS
    )
    query = (
        f"SELECT {value} AS field, {sums} FROM ({sql}) AS t "  # noqa: S608 (fixed names)
        "LEFT JOIN spend_metadata AS m ON m.id = CAST(t.value AS BIGINT) GROUP BY 1"
    )
    params: dict[str, Any] = {"projection": "metadata", "high": part.high}
    params |= spend_metadata.field_params(field)
    if part.low is not None:
        params["low"] = part.low
    return _found(await _read(session, query, params, part.high))


async def totals(session: AsyncSession, projection: str, part: Span) -> list[tuple[str, list[int]]]:
    """Each value's totals over the part (values without calls in it left out)."""
    params: dict[str, Any] = {"projection": projection, "high": part.high}
    if part.low is not None:
        params["low"] = part.low
    sql = _TOTALS if part.low is None else _TOTALS_SINCE
    return [
        (str(value), sums) for value, sums in _found(await _read(session, sql, params, part.high))
    ]


_STEPS = (
    f"SELECT bucket, {', '.join(SUMS)} FROM spend_running "  # noqa: S608 (fixed names)
    "WHERE projection = 'total' AND value = '' AND bucket < :high AND bucket >= COALESCE("
    "(SELECT bucket FROM spend_running WHERE projection = 'total' AND value = '' "
    "AND bucket < :low ORDER BY bucket DESC LIMIT 1), :low)"
)


async def steps(session: AsyncSession, part: Span) -> list[tuple[int, list[int]]]:
    """The running totals of all calls at each hour with calls in the part, and the one
    before it: (hour, totals through its end), oldest first."""
    low = part.low if part.low is not None else -1
    rows = await _read(session, _STEPS, {"low": low, "high": part.high}, part.high)
    return sorted((int(row[0]), [int(value) for value in row[1:]]) for row in rows)
