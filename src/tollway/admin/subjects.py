"""``/api/v1/subjects``: a data subject's calls, found by key metadata (``{"user":
"u-42"}``), exported or erased for a GDPR request. Admin only, and each request is
written to the audit chain.

The audit entry names the subject by a keyed hash of its metadata (HMAC with the audit
key), never in the clear: the chain cannot be edited, and must not keep the identifier
an erasure removed. Whoever knows the metadata can recompute the hash to find the entry.
An erasure deletes the calls' rows and bodies in batches, and removes the subject's
fields from the metadata sets the spend rollups keep (``store/spend_metadata.py``): the
rollups keep their totals, so spend reports and budgets do not change, but no longer
name the subject. An erasure cut short (a restart) deleted what it reached; repeating it
finishes it and is audited.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from tollway.admin.deps import Caller, Context, require_role
from tollway.admin.requests import MAX_CURSOR_CHARS, RequestDetail, check_cursor, entry
from tollway.admin.schemas import Body, errors
from tollway.audit.chain import append
from tollway.bounds import MAX_METADATA_FIELDS, MAX_METADATA_KEY, MAX_METADATA_TEXT
from tollway.store import requests as request_store
from tollway.store import spend_metadata

router = APIRouter(
    prefix="/subjects", tags=["subjects"], dependencies=[Depends(require_role("admin"))]
)
ERASE_BATCH = 1000

SubjectMetadata = Annotated[
    dict[
        Annotated[str, Field(min_length=1, max_length=MAX_METADATA_KEY)],
        Annotated[str, Field(max_length=MAX_METADATA_TEXT)],
    ],
    Field(
        min_length=1,
        max_length=MAX_METADATA_FIELDS,
        description="Key metadata fields and values, all of which a call must carry "
        "(compared as text, as the request log's metadata filters are).",
    ),
]


class Subject(Body):
    """Whose calls: ``{"metadata": {"user": "u-42"}}``."""

    metadata: SubjectMetadata


class SubjectExport(Subject):
    """``POST /api/v1/subjects/export``: one page of the subject's calls."""

    limit: int = Field(100, ge=1, le=1000)
    cursor: str | None = Field(None, max_length=MAX_CURSOR_CHARS)


class SubjectCalls(BaseModel):
    """A page of a subject's calls with their bodies; ``next_cursor`` for the next."""

    subject: str  # the keyed hash the audit entry names
    data: list[RequestDetail]
    next_cursor: str | None


class Erasure(BaseModel):
    """What an erasure deleted: calls, their bodies, and the rollups' metadata sets the
    subject's fields were removed from."""

    subject: str
    requests: int
    bodies: int
    metadata_sets: int


def subject_hash(key: bytes, metadata: dict[str, str]) -> str:
    """The subject as the audit chain names it: a keyed hash of its metadata."""
    canonical = orjson.dumps(metadata, option=orjson.OPT_SORT_KEYS)
    return hmac.new(key, b"subject:" + canonical, hashlib.sha256).hexdigest()[:40]


@router.post("/export", response_model=SubjectCalls, responses=errors(400))
async def export_subject(body: SubjectExport, ctx: Context, caller: Caller) -> SubjectCalls:
    """A page of the subject's calls, newest first, with captured bodies."""
    check_cursor(body.cursor)
    subject = subject_hash(ctx.server_keys.audit, body.metadata)
    await ctx.recorder.flush()
    async with ctx.db.transaction() as session:
        where = request_store.RequestFilter(metadata=body.metadata)
        rows, following = await request_store.page(
            session, where, body.limit, body.cursor, with_bodies=True
        )
        await append(
            session,
            ctx.server_keys.audit,
            actor=caller.actor,
            action="subject.exported",
            target_type="subject",
            target_id=subject,
            details={"fields": sorted(body.metadata), "requests": len(rows)},
        )
    return SubjectCalls(
        subject=subject,
        data=[RequestDetail(**entry(row)) for row in rows],
        next_cursor=following,
    )


@router.post("/erase", response_model=Erasure, responses=errors(400))
async def erase_subject(body: Subject, ctx: Context, caller: Caller) -> Erasure:
    """Delete every call of the subject (rows and captured bodies), in batches."""
    subject = subject_hash(ctx.server_keys.audit, body.metadata)
    await ctx.recorder.flush()  # calls still on their way to the table are erased too
    requests = bodies = metadata_sets = 0
    while True:
        async with ctx.db.transaction() as session:
            gone, gone_bodies = await request_store.erase_batch(session, body.metadata, ERASE_BATCH)
            requests, bodies = requests + gone, bodies + gone_bodies
            if gone < ERASE_BATCH:
                # The last batch commits with the rollups' metadata and the audit entry.
                metadata_sets = await spend_metadata.forget(session, body.metadata)
                await append(
                    session,
                    ctx.server_keys.audit,
                    actor=caller.actor,
                    action="subject.erased",
                    target_type="subject",
                    target_id=subject,
                    details={
                        "fields": sorted(body.metadata),
                        "requests": requests,
                        "bodies": bodies,
                        "metadata_sets": metadata_sets,
                    },
                )
                break
    return Erasure(subject=subject, requests=requests, bodies=bodies, metadata_sets=metadata_sets)
