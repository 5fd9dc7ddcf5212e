"""``/api/v1/audit``: read and verify the hash-chained audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from tollway.admin.deps import Context, require_role
from tollway.admin.fields import Instant
from tollway.admin.schemas import AuditEntryPublic, AuditVerification
from tollway.admin.views import audit_public
from tollway.audit.chain import filtered, verify
from tollway.bounds import SAFE_INT

router = APIRouter(prefix="/audit", tags=["audit"], dependencies=[Depends(require_role("admin"))])


@router.get("", response_model=list[AuditEntryPublic])
async def list_audit(
    ctx: Context,
    actor: Annotated[str | None, Query()] = None,
    action: Annotated[str | None, Query()] = None,
    target: Annotated[str | None, Query(description="Target id (key or project).")] = None,
    since: Annotated[Instant | None, Query(alias="from")] = None,
    until: Annotated[Instant | None, Query(alias="to")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=SAFE_INT)] = 0,
) -> list[AuditEntryPublic]:
    """Entries, newest first."""
    query = filtered(actor=actor, action=action, target=target, since=since, until=until)
    async with ctx.db.reader() as session:
        rows = (await session.scalars(query.limit(limit).offset(offset))).all()
    return [audit_public(entry) for entry in rows]


@router.get("/verify", response_model=AuditVerification)
async def verify_audit(ctx: Context) -> AuditVerification:
    """Recompute the whole chain; says where it breaks, if it does."""
    async with ctx.db.reader() as session:
        result = await verify(session, ctx.server_keys.audit)
    return AuditVerification(**result.as_dict())
