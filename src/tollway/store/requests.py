"""Request log queries: one row per call (its spend row), newest first, with an opaque
cursor; one call with its captured bodies; the calls of a metadata subject, to export
or to erase them.

Pages are ordered by (time, row id), both descending, and the cursor is the last row's
pair: a page never repeats or skips a row, whatever is inserted meanwhile (a late
record lands at its own time, and a cursor is stable across requests and processes).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from tollway.store.ids import as_utc
from tollway.store.keys import metadata_matches
from tollway.store.spend import from_pico
from tollway.store.tables import RequestBody, SpendRecord

# ``status``: one code (429) or a class (4xx).
STATUS = re.compile(r"^([1-5][0-9][0-9]|[1-5]xx)$")


class BadCursor(ValueError):
    """The cursor was not made by this API."""


@dataclass(frozen=True, slots=True)
class RequestFilter:
    """What a listing is narrowed to; every field set must match."""

    key_id: str | None = None
    project_id: str | None = None
    model: str | None = None
    provider: str | None = None
    status: str | None = None  # matches STATUS
    since: datetime | None = None
    until: datetime | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    def conditions(self, dialect: str) -> list[ColumnElement[bool]]:
        """The filter as WHERE conditions on the spend table."""
        found: list[ColumnElement[bool]] = []
        for column in ("key_id", "project_id", "model", "provider"):
            value = getattr(self, column)
            if value is not None:
                found.append(getattr(SpendRecord, column) == value)
        if self.status is not None:
            if self.status.endswith("xx"):
                low = int(self.status[0]) * 100
                found.append(SpendRecord.status.between(low, low + 99))
            else:
                found.append(SpendRecord.status == int(self.status))
        if self.since is not None:
            found.append(SpendRecord.ts >= self.since)
        if self.until is not None:
            found.append(SpendRecord.ts < self.until)
        for name, value in self.metadata.items():
            found.append(metadata_matches(SpendRecord.metadata_, name, value, dialect))
        return found


def encode_cursor(ts: datetime, row_id: int) -> str:
    """An opaque cursor for the rows after (older than) this one."""
    moment = as_utc(ts)
    assert moment is not None
    text = f"{moment.astimezone(UTC).isoformat()}|{row_id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """The (time, row id) a cursor stands for; BadCursor when it is not one."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, _, row_id = text.partition("|")
        ts = datetime.fromisoformat(moment)
        number = int(row_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadCursor("not a cursor from this API") from None
    if ts.tzinfo is None or not 0 < number < 2**63:
        raise BadCursor("not a cursor from this API")
    return ts.astimezone(UTC), number


def public_row(row: SpendRecord) -> dict[str, Any]:
    """A spend row as a request-log entry."""
    deployment = f"{row.provider}/{row.upstream_model}" if row.provider else None
    return {
        "id": row.request_id,
        "created_at": as_utc(row.ts),
        "key_id": row.key_id,
        "project_id": row.project_id,
        "endpoint": row.endpoint,
        "model": row.model,
        "provider": row.provider,
        "upstream_model": row.upstream_model,
        "deployment": deployment,
        "status": row.status,
        "error": row.error,
        "latency_ms": row.latency_ms,
        "ttft_ms": row.ttft_ms,
        "stream": row.stream,
        "cached": row.cached,
        "attempts": row.attempts,
        "attempt_log": row.attempt_log or [],
        "input_tokens": row.input_tokens,
        "output_tokens": row.output_tokens,
        "cache_read_tokens": row.cache_read_tokens,
        "cache_write_tokens": row.cache_write_tokens,
        "reasoning_tokens": row.reasoning_tokens,
        "cost_usd": from_pico(row.cost_pico),
        "priced": row.priced,
        "estimated": row.estimated,
        "flags": row.flags.split(",") if row.flags else [],
        "guards": row.guards or [],
        "metadata": row.metadata_ or {},
        "user_agent": row.user_agent,
    }


def public_bodies(body: RequestBody | None) -> dict[str, Any] | None:
    """Captured bodies as shown with their call (None: nothing was captured)."""
    if body is None:
        return None
    return {
        "request": body.request_body,
        "response": body.response_body,
        "request_bytes": body.request_bytes,
        "response_bytes": body.response_bytes,
    }


async def page(
    session: AsyncSession,
    where: RequestFilter,
    limit: int,
    cursor: str | None = None,
    with_bodies: bool = False,
) -> tuple[list[dict[str, Any]], str | None]:
    """Up to ``limit`` entries, newest first, after ``cursor``; and the next cursor
    (None on the last page)."""
    query = select(SpendRecord).where(*where.conditions(session.get_bind().dialect.name))
    if cursor is not None:
        ts, row_id = decode_cursor(cursor)
        query = query.where(tuple_(SpendRecord.ts, SpendRecord.id) < tuple_(ts, row_id))
    query = query.order_by(SpendRecord.ts.desc(), SpendRecord.id.desc()).limit(limit + 1)
    rows = list((await session.scalars(query)).all())
    following = None
    if len(rows) > limit:
        rows = rows[:limit]
        following = encode_cursor(rows[-1].ts, rows[-1].id)
    entries = [public_row(row) for row in rows]
    if with_bodies and rows:
        bodies = await _bodies(session, [row.request_id for row in rows])
        for entry in entries:
            entry["bodies"] = public_bodies(bodies.get(entry["id"]))
    return entries, following


async def _bodies(session: AsyncSession, request_ids: list[str]) -> dict[str, RequestBody]:
    found = await session.scalars(
        select(RequestBody).where(RequestBody.request_id.in_(request_ids))
    )
    return {body.request_id: body for body in found}


async def one(session: AsyncSession, request_id: str) -> dict[str, Any] | None:
    """One call with its bodies, by request id."""
    row = (
        await session.scalars(select(SpendRecord).where(SpendRecord.request_id == request_id))
    ).first()
    if row is None:
        return None
    entry = public_row(row)
    entry["bodies"] = public_bodies(await session.get(RequestBody, request_id))
    return entry


async def erase_batch(
    session: AsyncSession, metadata: dict[str, str], limit: int
) -> tuple[int, int]:
    """Delete up to ``limit`` calls of a metadata subject and their bodies; returns how
    many of each went. The rollups keep their totals (``spend_metadata.forget`` removes
    the subject from their metadata)."""
    dialect = session.get_bind().dialect.name
    chosen = (
        select(SpendRecord.id)
        .where(*RequestFilter(metadata=metadata).conditions(dialect))
        .limit(limit)
    )
    ids = list((await session.scalars(chosen)).all())
    if not ids:
        return 0, 0
    gone = list(
        (
            await session.scalars(
                delete(SpendRecord).where(SpendRecord.id.in_(ids)).returning(SpendRecord.request_id)
            )
        ).all()
    )
    return len(gone), await delete_bodies(session, gone)


async def delete_bodies(session: AsyncSession, request_ids: list[str]) -> int:
    """Delete the bodies of these calls; returns how many there were."""
    if not request_ids:
        return 0
    result = await session.execute(
        delete(RequestBody)
        .where(RequestBody.request_id.in_(request_ids))
        .returning(RequestBody.request_id)
    )
    return len(result.all())
