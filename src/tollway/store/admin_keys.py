"""Admin key queries."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tollway.store.tables import AdminKey


async def by_hash(session: AsyncSession, key_hash: str) -> AdminKey | None:
    """An active admin key by stored hash."""
    return (
        await session.scalars(
            select(AdminKey).where(AdminKey.key_hash == key_hash, AdminKey.active.is_(True))
        )
    ).first()


async def listing(session: AsyncSession) -> list[AdminKey]:
    """Every admin key, oldest first."""
    return list((await session.scalars(select(AdminKey).order_by(AdminKey.created_at))).all())
