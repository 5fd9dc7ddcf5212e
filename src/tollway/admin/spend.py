"""``/api/v1/spend``: totals of requests, tokens and cost, grouped and filtered."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel

from tollway.admin.deps import Context, require_role
from tollway.admin.fields import Instant
from tollway.admin.views import money, project_filter
from tollway.errors import BadRequest
from tollway.store import spend as spend_store

router = APIRouter(prefix="/spend", tags=["spend"], dependencies=[Depends(require_role("viewer"))])
# Metadata fields are grouped by through a JSON path: plain identifiers need no quoting.
_GROUP = re.compile(rf"^({'|'.join(spend_store.GROUPS)}|metadata\.[A-Za-z_][A-Za-z0-9_]*)$")


class SpendTotals(BaseModel):
    """Requests, tokens and cost of a set of calls."""

    requests: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: Decimal
    unpriced_requests: int
    estimated_requests: int


class SpendGroup(SpendTotals):
    """Totals of one group."""

    group: str | None


class SpendReport(BaseModel):
    """``GET /api/v1/spend``."""

    group_by: str | None
    groups: list[SpendGroup]
    totals: SpendTotals


def _money_fields(row: dict[str, Any]) -> dict[str, Any]:
    """Money as the response model writes it: a string without trailing zeros."""
    return {**row, "cost_usd": str(money(row["cost_usd"]))}


@router.get("", response_model=SpendReport)
async def spend_report(
    ctx: Context,
    group_by: Annotated[
        str | None,
        Query(
            description="key, project, model, provider, day, endpoint or metadata.<field>",
            json_schema_extra={"pattern": _GROUP.pattern},
        ),
    ] = None,
    since: Annotated[Instant | None, Query(alias="from")] = None,
    until: Annotated[Instant | None, Query(alias="to")] = None,
    key: Annotated[str | None, Query(description="Key id.")] = None,
    project: Annotated[str | None, Query(min_length=1, description="Project id or name.")] = None,
) -> Response:
    """Spend totals, most expensive group first."""
    if group_by is not None and not _GROUP.fullmatch(group_by):
        raise BadRequest(
            f"group_by must be one of {', '.join(spend_store.GROUPS)} or metadata.<field>.",
            param="group_by",
        )
    if since is not None and until is not None and since >= until:
        raise BadRequest("'from' must be before 'to'.", param="from")
    await ctx.recorder.flush()
    async with ctx.db.reader() as session:
        project_id = await project_filter(session, project)
        groups, totals = await spend_store.report(
            session,
            group_by=group_by,
            since=since,
            until=until,
            key_id=key,
            project_id=project_id,
        )
    # Written directly (the shape is SpendReport's, money as the rest of the API writes
    # it): validating and encoding a thousand groups through the response model took
    # longer than the report itself.
    body = {
        "group_by": group_by,
        "groups": [_money_fields(row) for row in groups],
        "totals": _money_fields(totals),
    }
    return Response(orjson.dumps(body), media_type="application/json")


class QuarantinedRecord(BaseModel):
    """A spend record the database refused, kept whole with the reason."""

    id: int
    request_id: str | None
    created_at: datetime
    reason: str
    record: str  # the record as JSON text


class QuarantineListing(BaseModel):
    """``GET /api/v1/spend/quarantine``."""

    total: int
    file_entries: int  # records in the data dir's quarantine file (the table refused them)
    data: list[QuarantinedRecord]


@router.get("/quarantine", response_model=QuarantineListing)
async def quarantine(
    ctx: Context,
    limit: Annotated[int, Query(ge=1, le=1000, description="Newest first.")] = 100,
) -> QuarantineListing:
    """Spend records the database refused (never lost: kept here with the reason)."""
    total, entries = await ctx.recorder.quarantine.list(limit)
    return QuarantineListing(
        total=total,
        file_entries=ctx.recorder.quarantine.file_entries(),
        data=[QuarantinedRecord(**entry) for entry in entries],
    )
