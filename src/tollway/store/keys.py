"""Virtual key queries."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tollway.store.epoch import bump
from tollway.store.ids import as_utc, display_prefix, new_id, new_virtual_key, utcnow
from tollway.store.tables import Project, VirtualKey

KEY_FIELDS = (
    "max_budget_usd",
    "budget_period",
    "rpm",
    "tpm",
    "max_parallel",
    "max_requests",
    "models",
    "guards",
)


def status(key: VirtualKey, project_active: bool = True, now: datetime | None = None) -> str:
    """``active``, ``inactive`` (the key or its project is switched off), ``revoked`` or
    ``expired``."""
    if key.revoked_at is not None:
        return "revoked"
    expires = as_utc(key.expires_at)
    if expires is not None and expires <= (now or utcnow()):
        return "expired"
    return "active" if key.active and project_active else "inactive"


async def create(
    session: AsyncSession,
    hash_key: Any,
    *,
    name: str,
    project: Project,
    ttl_seconds: int | None,
    expires_at: datetime | None,
    fields: dict[str, Any],
    created_by: str,
) -> tuple[VirtualKey, str]:
    """Mint a key; returns the row and the secret (which is never stored)."""
    secret = new_virtual_key()
    now = utcnow()
    if ttl_seconds is not None:
        expires_at = now + timedelta(seconds=ttl_seconds)
    key = VirtualKey(
        id=new_id("key"),
        name=name,
        key_hash=hash_key(secret),
        key_prefix=display_prefix(secret),
        project_id=project.id,
        active=True,
        expires_at=expires_at,
        request_count=0,
        metadata_=fields.get("metadata") or {},
        expiry_audited=False,
        created_by=created_by,
        created_at=now,
        updated_at=now,
        **{field: fields.get(field) for field in KEY_FIELDS},
    )
    session.add(key)
    await session.flush()
    await bump(session)
    return key, secret


def filtered(
    *,
    project_id: str | None,
    active: bool | None,
    metadata: dict[str, str],
    limit: int,
    offset: int,
    dialect: str,
) -> Select[VirtualKey, bool]:
    """Keys matching the filters with their project's active flag, newest first."""
    query = (
        select(VirtualKey, Project.active)
        .join(Project, Project.id == VirtualKey.project_id)
        .order_by(VirtualKey.created_at.desc(), VirtualKey.id)
    )
    if project_id is not None:
        query = query.where(VirtualKey.project_id == project_id)
    if active is True:
        query = query.where(
            VirtualKey.active.is_(True),
            VirtualKey.revoked_at.is_(None),
            Project.active.is_(True),
            (VirtualKey.expires_at.is_(None)) | (VirtualKey.expires_at > utcnow()),
        )
    elif active is False:
        query = query.where(
            (VirtualKey.active.is_(False))
            | (VirtualKey.revoked_at.is_not(None))
            | (VirtualKey.expires_at <= utcnow())
            | (Project.active.is_(False))
        )
    for field, value in metadata.items():
        query = query.where(metadata_matches(VirtualKey.metadata_, field, value, dialect))
    return query.limit(limit).offset(offset)


def metadata_matches(column: Any, field: str, value: str, dialect: str) -> Any:
    """``metadata.<field> == value`` as text, on every database alike. SQLite's JSON
    functions return booleans as 1/0 and numbers as numbers, so those are compared by
    JSON type there (Postgres' ``->>`` already gives ``true`` and ``42``); and SQLite's
    JSON paths cannot name every field (a ``"`` in a name has no escape), so the field
    is found among the object's entries instead."""
    if dialect != "sqlite":
        return column[field].as_string() == value
    entry = func.json_each(column).table_valued("key", "value", "type")
    same = [entry.c.value == value]
    if value in ("true", "false"):
        same.append(entry.c.type == value)
    try:
        number = float(value)
    except ValueError:
        number = None
    if number is not None:
        same.append(and_(entry.c.type.in_(("integer", "real")), entry.c.value == number))
    return exists(select(1).select_from(entry).where(entry.c.key == field, or_(*same)))


async def get(session: AsyncSession, key_id: str) -> VirtualKey | None:
    """A key by id."""
    return await session.get(VirtualKey, key_id)


async def apply_update(session: AsyncSession, key: VirtualKey, changes: dict[str, Any]) -> None:
    """Apply a partial update; invalidates cached verifications everywhere."""
    for field in (*KEY_FIELDS, "name"):
        if field in changes:
            setattr(key, field, changes[field])
    if "metadata" in changes:
        key.metadata_ = changes["metadata"] or {}
    if changes.get("active") is not None:
        key.active = changes["active"]
    key.updated_at = utcnow()
    await bump(session)


async def revoke(session: AsyncSession, key: VirtualKey) -> bool:
    """Revoke a key (the row stays for history); False if it already was."""
    if key.revoked_at is not None:
        return False
    key.revoked_at = key.updated_at = utcnow()
    key.active = False
    await bump(session)
    return True


async def by_hash(session: AsyncSession, key_hash: str) -> tuple[VirtualKey, Project] | None:
    """A key and its project by stored hash (the hot path's cache-miss query)."""
    row = (
        await session.execute(
            select(VirtualKey, Project)
            .join(Project, Project.id == VirtualKey.project_id)
            .where(VirtualKey.key_hash == key_hash)
        )
    ).first()
    return (row[0], row[1]) if row else None


async def take_request(session: AsyncSession, key_id: str) -> bool:
    """Count one request against ``max_requests`` atomically; False when none are left."""
    result = await session.execute(
        update(VirtualKey)
        .where(
            VirtualKey.id == key_id,
            (VirtualKey.max_requests.is_(None))
            | (VirtualKey.request_count < VirtualKey.max_requests),
        )
        .values(request_count=VirtualKey.request_count + 1)
    )
    return bool(getattr(result, "rowcount", 0))


async def mark_expiry_audited(session: AsyncSession, key_id: str) -> bool:
    """Claim the one 'expired on use' audit entry for a key; False if already written."""
    result = await session.execute(
        update(VirtualKey)
        .where(VirtualKey.id == key_id, VirtualKey.expiry_audited.is_(False))
        .values(expiry_audited=True)
    )
    return bool(getattr(result, "rowcount", 0))
