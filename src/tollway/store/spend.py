"""Spend report queries over the ``spend`` table (indexed by time, key, project, model)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tollway.store.tables import SpendRecord

GROUPS = ("key", "project", "model", "provider", "day", "endpoint")


def _group_column(group_by: str, dialect: str) -> Any:
    if group_by == "key":
        return SpendRecord.key_id
    if group_by == "project":
        return SpendRecord.project_id
    if group_by == "model":
        return SpendRecord.model
    if group_by == "provider":
        return SpendRecord.provider
    if group_by == "endpoint":
        return SpendRecord.endpoint
    if group_by == "day":
        if dialect == "postgresql":
            return func.to_char(func.timezone("UTC", SpendRecord.ts), "YYYY-MM-DD")
        return func.strftime("%Y-%m-%d", SpendRecord.ts)
    field = group_by.removeprefix("metadata.")
    return SpendRecord.metadata_[field].as_string()


def _filters(
    since: datetime | None,
    until: datetime | None,
    key_id: str | None,
    project_id: str | None,
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if since is not None:
        conditions.append(SpendRecord.ts >= since)
    if until is not None:
        conditions.append(SpendRecord.ts < until)
    if key_id is not None:
        conditions.append(SpendRecord.key_id == key_id)
    if project_id is not None:
        conditions.append(SpendRecord.project_id == project_id)
    return conditions


_TOTALS = (
    func.count().label("requests"),
    func.coalesce(func.sum(SpendRecord.input_tokens), 0).label("input_tokens"),
    func.coalesce(func.sum(SpendRecord.output_tokens), 0).label("output_tokens"),
    func.coalesce(func.sum(SpendRecord.cache_read_tokens), 0).label("cache_read_tokens"),
    func.coalesce(func.sum(SpendRecord.cache_write_tokens), 0).label("cache_write_tokens"),
    func.coalesce(func.sum(SpendRecord.cost_pico), 0).label("cost_usd"),
    func.coalesce(func.sum(case((SpendRecord.priced.is_(False), 1), else_=0)), 0).label(
        "unpriced_requests"
    ),
    func.coalesce(func.sum(case((SpendRecord.estimated.is_(True), 1), else_=0)), 0).label(
        "estimated_requests"
    ),
)


def _row(mapping: Any) -> dict[str, Any]:
    out = dict(mapping)
    out["cost_usd"] = from_pico(int(out["cost_usd"] or 0))
    for name in (
        "requests",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "unpriced_requests",
        "estimated_requests",
    ):
        out[name] = int(out[name] or 0)
    return out


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
    conditions = _filters(since, until, key_id, project_id)
    totals = (await session.execute(select(*_TOTALS).where(*conditions))).mappings().one()
    groups: list[dict[str, Any]] = []
    if group_by is not None:
        dialect = session.get_bind().dialect.name
        column = _group_column(group_by, dialect).label("group")
        query = (
            select(column, *_TOTALS)
            .where(*conditions)
            .group_by(column)
            .order_by(func.sum(SpendRecord.cost_pico).desc(), column)
        )
        groups = [_row(row) for row in (await session.execute(query)).mappings().all()]
    return groups, _row(totals)


async def total_cost(
    session: AsyncSession,
    *,
    key_id: str | None = None,
    project_id: str | None = None,
    since: datetime | None = None,
) -> Decimal:
    """Recorded cost of a key or project (since a time)."""
    conditions = _filters(since, None, key_id, project_id)
    value = await session.scalar(
        select(func.coalesce(func.sum(SpendRecord.cost_pico), 0)).where(*conditions)
    )
    return from_pico(int(value or 0))


PICO = Decimal(10) ** 12


def to_pico(amount: Decimal) -> int:
    """USD to integer pico-dollars (exact for every price in the database)."""
    return int((amount * PICO).to_integral_value())


def from_pico(value: int) -> Decimal:
    """Integer pico-dollars to USD."""
    return Decimal(value) / PICO
