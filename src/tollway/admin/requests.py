"""``/api/v1/requests``: the request log, one entry per call, newest first; one call
with its captured bodies."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from tollway.admin.deps import Context, require_role
from tollway.admin.fields import Instant
from tollway.admin.schemas import errors
from tollway.admin.views import money, project_filter
from tollway.bounds import MAX_METADATA_FIELDS
from tollway.errors import BadRequest, NotFound
from tollway.store import requests as request_store

router = APIRouter(
    prefix="/requests", tags=["requests"], dependencies=[Depends(require_role("viewer"))]
)
MAX_CURSOR_CHARS = 200


class AttemptEntry(BaseModel):
    """One upstream try of a call, in the order they ran."""

    provider: str | None
    model: str | None  # the upstream model id
    outcome: str | None  # "ok", or the error code that ended the try (upstream_timeout, ...)
    status: int | None  # the upstream's HTTP status, when it answered
    latency_ms: float | None


class RequestEntry(BaseModel):
    """One call: who, what, where it went, how it went, what it used and cost."""

    id: str  # the call's x-request-id
    created_at: datetime
    key_id: str | None
    project_id: str | None
    endpoint: str
    model: str | None
    provider: str | None
    upstream_model: str | None
    deployment: str | None  # provider/upstream model, as kill switches name it
    status: int
    error: str | None
    latency_ms: float
    ttft_ms: float | None
    stream: bool
    cached: bool
    attempts: int
    # Each try (failed ones first, then the one that answered); empty for calls that
    # made none, and for calls recorded before the gateway kept them.
    attempt_log: list[AttemptEntry]
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost_usd: Decimal
    priced: bool
    estimated: bool
    flags: list[str]
    guards: list[dict[str, Any]]
    metadata: dict[str, Any]
    user_agent: str | None


class CapturedBodies(BaseModel):
    """What the client sent and received, cut to the project's ``capture.max_bytes``,
    secrets redacted; ``*_bytes`` are the sizes before the cut."""

    request: str | None
    response: str | None
    request_bytes: int
    response_bytes: int


class RequestDetail(RequestEntry):
    """One call with its captured bodies (null when its project did not capture)."""

    bodies: CapturedBodies | None


class RequestPage(BaseModel):
    """``GET /api/v1/requests``: pass ``next_cursor`` as ``cursor`` for the next page
    (null: this is the last one)."""

    data: list[RequestEntry]
    next_cursor: str | None


def metadata_filters(request: Request) -> dict[str, str]:
    """``metadata.<field>=<value>`` query parameters, bounded like a key's metadata."""
    metadata = {
        name.removeprefix("metadata."): value
        for name, value in request.query_params.items()
        if name.startswith("metadata.") and len(name) > len("metadata.")
    }
    if len(metadata) > MAX_METADATA_FIELDS:
        raise BadRequest(f"At most {MAX_METADATA_FIELDS} metadata filters.", param="metadata")
    return metadata


def check_cursor(cursor: str | None) -> None:
    """A 400 for a cursor this API did not make."""
    if cursor is None:
        return
    try:
        request_store.decode_cursor(cursor)
    except request_store.BadCursor:
        raise BadRequest("cursor: pass a next_cursor this API returned.", param="cursor") from None


def entry(row: dict[str, Any]) -> dict[str, Any]:
    """A stored entry as shown: money without trailing zeros."""
    return {**row, "cost_usd": money(row["cost_usd"])}


@router.get("", response_model=RequestPage, responses=errors(400))
async def list_requests(
    request: Request,
    ctx: Context,
    key: Annotated[str | None, Query(max_length=40, description="Key id.")] = None,
    project: Annotated[str | None, Query(min_length=1, description="Project id or name.")] = None,
    model: Annotated[str | None, Query(max_length=200, description="Model asked for.")] = None,
    provider: Annotated[str | None, Query(max_length=80)] = None,
    status: Annotated[
        str | None,
        Query(pattern=request_store.STATUS.pattern, description="A status (429) or class (5xx)."),
    ] = None,
    since: Annotated[Instant | None, Query(alias="from")] = None,
    until: Annotated[Instant | None, Query(alias="to")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=MAX_CURSOR_CHARS)] = None,
) -> RequestPage:
    """Calls, newest first; filter metadata with ``metadata.<field>=<value>``."""
    if since is not None and until is not None and since >= until:
        raise BadRequest("'from' must be before 'to'.", param="from")
    check_cursor(cursor)
    await ctx.recorder.flush()
    async with ctx.db.reader() as session:
        where = request_store.RequestFilter(
            key_id=key,
            project_id=await project_filter(session, project),
            model=model,
            provider=provider,
            status=status,
            since=since,
            until=until,
            metadata=metadata_filters(request),
        )
        rows, following = await request_store.page(session, where, limit, cursor)
    return RequestPage(data=[RequestEntry(**entry(row)) for row in rows], next_cursor=following)


@router.get("/{request_id}", response_model=RequestDetail, responses=errors(404))
async def show_request(request_id: str, ctx: Context) -> RequestDetail:
    """One call, by its ``x-request-id``, with its captured bodies."""
    await ctx.recorder.flush()
    async with ctx.db.reader() as session:
        row = await request_store.one(session, request_id[:80])
    if row is None:
        raise NotFound(f"No request '{request_id[:80]}' in the request log.")
    return RequestDetail(**entry(row))
