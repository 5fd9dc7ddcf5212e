"""Project queries."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tollway.auth.secrets import ServerKeys
from tollway.store.epoch import bump
from tollway.store.ids import new_id, utcnow
from tollway.store.tables import Project, VirtualKey

LIMIT_FIELDS = ("max_budget_usd", "budget_period", "rpm", "tpm", "max_parallel")
# Policies the proxy applies to the project's keys (JSON columns; null: not set).
POLICY_FIELDS = ("models", "guards", "cors_origins", "cache", "capture")


async def find(session: AsyncSession, ref: str) -> Project | None:
    """A project by id or by name."""
    return (
        await session.scalars(select(Project).where(or_(Project.id == ref, Project.name == ref)))
    ).first()


async def by_name(session: AsyncSession, name: str) -> Project | None:
    """A project by exact name."""
    return (await session.scalars(select(Project).where(Project.name == name))).first()


async def listing(session: AsyncSession, active: bool | None) -> list[Project]:
    """Projects, oldest first."""
    query = select(Project).order_by(Project.created_at, Project.id)
    if active is not None:
        query = query.where(Project.active == active)
    return list((await session.scalars(query)).all())


def seal_credentials(keys: ServerKeys, project_id: str, credentials: dict[str, str]) -> str:
    """Encrypt a project's provider credentials, bound to the project id."""
    return keys.seal(orjson.dumps(credentials), f"project:{project_id}")


def open_credentials(keys: ServerKeys, project: Project) -> dict[str, str]:
    """Decrypt a project's provider credentials."""
    if not project.credentials:
        return {}
    data = orjson.loads(keys.open(project.credentials, f"project:{project.id}"))
    return {str(k): str(v) for k, v in data.items()}


async def create(
    session: AsyncSession, keys: ServerKeys, name: str, fields: dict[str, Any]
) -> Project:
    """Insert a project."""
    now = utcnow()
    project = Project(
        id=new_id("proj"),
        name=name,
        active=True,
        metadata_=fields.get("metadata") or {},
        created_at=now,
        updated_at=now,
        **{field: fields.get(field) for field in (*LIMIT_FIELDS, *POLICY_FIELDS)},
    )
    credentials = fields.get("credentials")
    if credentials:
        project.credentials = seal_credentials(keys, project.id, credentials)
    session.add(project)
    await session.flush()
    if project.cors_origins:
        await bump(session)  # the proxy's set of allowed browser origins changed
    return project


async def apply_update(
    session: AsyncSession, keys: ServerKeys, project: Project, changes: dict[str, Any]
) -> None:
    """Apply a partial update; invalidates cached key verifications."""
    for field in (*LIMIT_FIELDS, *POLICY_FIELDS):
        if field in changes:
            setattr(project, field, changes[field])
    if "metadata" in changes:
        project.metadata_ = changes["metadata"] or {}
    if "active" in changes and changes["active"] is not None:
        project.active = changes["active"]
    if "credentials" in changes:
        creds = changes["credentials"]
        project.credentials = seal_credentials(keys, project.id, creds) if creds else None
    project.updated_at = utcnow()
    await bump(session)


async def revoke_keys(session: AsyncSession, project_id: str) -> list[tuple[str, str]]:
    """Revoke every live key of a project; returns their ids and names."""
    now = utcnow()
    result = await session.execute(
        update(VirtualKey)
        .where(VirtualKey.project_id == project_id, VirtualKey.revoked_at.is_(None))
        .values(revoked_at=now, active=False, updated_at=now)
        .returning(VirtualKey.id, VirtualKey.name)
    )
    revoked = [(key_id, name) for key_id, name in result.all()]
    await bump(session)
    return revoked
