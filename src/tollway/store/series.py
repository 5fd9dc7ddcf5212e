"""Spend over time: the rollup cells (``rollups.py``) of one span summed per bucket, for
charts. Exact, and cheap over any range: one row per hour or day."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tollway.store.rollups import instant
from tollway.store.spend import from_pico
from tollway.store.tables import SpendRollup

SUMS = (
    "requests",
    "error_requests",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_pico",
    "unpriced_requests",
)


async def series(
    session: AsyncSession,
    *,
    span: int,
    low: int,
    high: int,
    key_id: str | None = None,
    project_id: str | None = None,
) -> list[dict[str, Any]]:
    """The totals of each bucket of ``span`` seconds starting in [low, high) that has
    calls, oldest first."""
    conditions: list[ColumnElement[bool]] = [
        SpendRollup.span == span,
        SpendRollup.bucket >= low,
        SpendRollup.bucket < high,
    ]
    if key_id is not None:
        conditions.append(SpendRollup.key_id == key_id)
    if project_id is not None:
        conditions.append(SpendRollup.project_id == project_id)
    sums = [func.sum(getattr(SpendRollup, name)) for name in SUMS]
    query = (
        select(SpendRollup.bucket, *sums)
        .where(*conditions)
        .group_by(SpendRollup.bucket)
        .order_by(SpendRollup.bucket)
    )
    points = []
    for row in (await session.execute(query)).all():
        values = dict(zip(SUMS, (int(value or 0) for value in row[1:]), strict=True))
        cost = from_pico(values.pop("cost_pico"))
        points.append({"start": instant(int(row[0])), **values, "cost_usd": cost})
    return points
