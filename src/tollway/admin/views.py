"""Rows to public schemas, and the lookups the management routers share."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tollway.admin.schemas import (
    AdminKeyPublic,
    AuditEntryPublic,
    CachePublic,
    CapturePublic,
    KeyPublic,
    ProjectPublic,
    SpendSummary,
)
from tollway.auth.secrets import ServerKeys
from tollway.errors import BadRequest
from tollway.metering.budget import period_start
from tollway.store import keys as key_store
from tollway.store import projects as project_store
from tollway.store import spend as spend_store
from tollway.store.ids import as_utc
from tollway.store.tables import AdminKey, AuditEntry, Project, VirtualKey


def money(value: Decimal | None) -> Decimal | None:
    """A stored amount without the column's trailing zeros (10, not 10.0000000000)."""
    if value is None:
        return None
    return Decimal(format(value.normalize(), "f"))


async def spend_summary(
    session: AsyncSession,
    period: str | None,
    *,
    key_id: str | None = None,
    project_id: str | None = None,
) -> SpendSummary:
    """Current-period and lifetime spend of a key or project."""
    lifetime = await spend_store.total_cost(session, key_id=key_id, project_id=project_id)
    start = period_start(period, datetime.now(UTC)) if period else None
    current = (
        await spend_store.total_cost(session, key_id=key_id, project_id=project_id, since=start)
        if start is not None
        else lifetime
    )
    return SpendSummary(
        current_period=money(current) or Decimal(0),
        period=period,
        period_start=start,
        lifetime=money(lifetime) or Decimal(0),
    )


async def project_filter(session: AsyncSession, project: str | None) -> str | None:
    """The id of the project a ``project`` query parameter names (id or name), if any."""
    if project is None:
        return None
    found = await project_store.find(session, project)
    if found is None:
        raise BadRequest(f"Unknown project '{project}'.", param="project")
    return found.id


def _limits_and_times(row: VirtualKey | Project) -> dict[str, Any]:
    """The fields keys and projects show alike: limits, metadata and timestamps."""
    return {
        "max_budget_usd": money(row.max_budget_usd),
        "budget_period": row.budget_period,
        "rpm": row.rpm,
        "tpm": row.tpm,
        "max_parallel": row.max_parallel,
        "metadata": row.metadata_ or {},
        "created_at": as_utc(row.created_at),
        "updated_at": as_utc(row.updated_at),
    }


def key_public(key: VirtualKey, project_active: bool = True) -> KeyPublic:
    """A key's public fields."""
    return KeyPublic(
        id=key.id,
        name=key.name,
        key_prefix=key.key_prefix,
        project_id=key.project_id,
        status=key_store.status(key, project_active),
        active=key.active,
        revoked_at=as_utc(key.revoked_at),
        expires_at=as_utc(key.expires_at),
        models=key.models,
        guards=key.guards or {},
        max_requests=key.max_requests,
        request_count=key.request_count,
        created_by=key.created_by,
        **_limits_and_times(key),
    )


def project_public(project: Project, server_keys: ServerKeys) -> ProjectPublic:
    """A project's public fields: which providers have credentials, not the values."""
    return ProjectPublic(
        id=project.id,
        name=project.name,
        active=project.active,
        models=project.models,
        guards=project.guards or {},
        cors_origins=project.cors_origins or [],
        cache=CachePublic(**project.cache) if project.cache else None,
        capture=CapturePublic(**project.capture) if project.capture else None,
        credential_providers=sorted(project_store.open_credentials(server_keys, project)),
        **_limits_and_times(project),
    )


def admin_key_public(key: AdminKey) -> AdminKeyPublic:
    """An admin key's public fields."""
    return AdminKeyPublic(
        id=key.id,
        name=key.name,
        key_prefix=key.key_prefix,
        role=key.role,
        active=key.active,
        created_at=as_utc(key.created_at),
    )


def audit_public(entry: AuditEntry) -> AuditEntryPublic:
    """An audit entry's public fields."""
    return AuditEntryPublic(
        seq=entry.seq,
        ts=as_utc(entry.ts),
        actor=entry.actor,
        action=entry.action,
        target_type=entry.target_type,
        target_id=entry.target_id,
        details=entry.details or {},
        hash=entry.hash,
    )
