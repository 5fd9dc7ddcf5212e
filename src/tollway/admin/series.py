"""``/api/v1/series``: requests, errors, tokens and cost per hour or per day, for charts
(the admin UI's overview); read from the spend rollups, so exact and cheap."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from tollway.admin.deps import Context, require_role
from tollway.admin.fields import Instant
from tollway.admin.views import money, project_filter
from tollway.errors import BadRequest
from tollway.store import series as series_store
from tollway.store.ids import utcnow
from tollway.store.rollups import DAY, HOUR, bucket

router = APIRouter(prefix="/series", tags=["spend"], dependencies=[Depends(require_role("viewer"))])
MAX_POINTS = 2000
_SPANS = {"hour": HOUR, "day": DAY}


class SeriesPoint(BaseModel):
    """The calls of one hour or one UTC day."""

    start: datetime
    requests: int
    error_requests: int  # answered with a status of 400 or more
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: Decimal
    unpriced_requests: int


class Series(BaseModel):
    """``GET /api/v1/series``: only buckets with calls are listed."""

    span: Literal["hour", "day"]
    start: datetime
    end: datetime
    points: list[SeriesPoint]


@router.get("", response_model=Series)
async def spend_series(
    ctx: Context,
    span: Annotated[Literal["hour", "day"], Query(description="Bucket size (days in UTC).")] = (
        "hour"
    ),
    since: Annotated[Instant | None, Query(alias="from", description="Default: a day ago.")] = None,
    until: Annotated[Instant | None, Query(alias="to", description="Default: now.")] = None,
    key: Annotated[str | None, Query(max_length=40, description="Key id.")] = None,
    project: Annotated[str | None, Query(min_length=1, description="Project id or name.")] = None,
) -> Series:
    """Totals per bucket over the whole hours (or days) that [from, to) touches, oldest
    first."""
    seconds = _SPANS[span]
    end = until or utcnow()
    start = since or end - timedelta(days=1)
    if start >= end:
        raise BadRequest("'from' must be before 'to'.", param="from")
    low, high = bucket(start, seconds), bucket(end - timedelta(microseconds=1), seconds) + seconds
    if (high - low) // seconds > MAX_POINTS:
        raise BadRequest(
            f"At most {MAX_POINTS} {span}s at once: shorten the range or use a longer span.",
            param="from",
        )
    await ctx.recorder.flush()
    async with ctx.db.reader() as session:
        project_id = await project_filter(session, project)
        points = await series_store.series(
            session, span=seconds, low=low, high=high, key_id=key, project_id=project_id
        )
    return Series(
        span=span,
        start=start,
        end=end,
        points=[SeriesPoint(**{**p, "cost_usd": money(p["cost_usd"])}) for p in points],
    )
