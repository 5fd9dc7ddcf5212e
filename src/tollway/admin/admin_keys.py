"""``/api/v1/admin-keys``: management keys with a role (admin only)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from tollway.admin.deps import Caller, Context, require_role
from tollway.admin.schemas import AdminKeyCreate, AdminKeyCreated, AdminKeyPublic, errors
from tollway.admin.views import admin_key_public
from tollway.audit.chain import append
from tollway.errors import NotFound
from tollway.store import admin_keys as admin_key_store
from tollway.store.ids import display_prefix, new_admin_key, new_id, utcnow
from tollway.store.tables import AdminKey

router = APIRouter(
    prefix="/admin-keys", tags=["admin keys"], dependencies=[Depends(require_role("admin"))]
)


@router.post("", status_code=201, response_model=AdminKeyCreated)
async def create_admin_key(body: AdminKeyCreate, ctx: Context, caller: Caller) -> AdminKeyCreated:
    """Mint an admin key; the secret is shown this once."""
    secret = new_admin_key()
    row = AdminKey(
        id=new_id("adm"),
        name=body.name,
        key_hash=ctx.server_keys.hash_key(secret),
        key_prefix=display_prefix(secret),
        role=body.role,
        active=True,
        created_at=utcnow(),
    )
    async with ctx.db.transaction() as session:
        session.add(row)
        await append(
            session,
            ctx.server_keys.audit,
            actor=caller.actor,
            action="admin_key.created",
            target_type="admin_key",
            target_id=row.id,
            details={"name": body.name, "role": body.role},
        )
    return AdminKeyCreated(**admin_key_public(row).model_dump(), key=secret)


@router.get("", response_model=list[AdminKeyPublic])
async def list_admin_keys(ctx: Context) -> list[AdminKeyPublic]:
    """Every admin key."""
    async with ctx.db.reader() as session:
        rows = await admin_key_store.listing(session)
    return [admin_key_public(row) for row in rows]


@router.delete("/{admin_key_id}", response_model=AdminKeyPublic, responses=errors(404))
async def revoke_admin_key(admin_key_id: str, ctx: Context, caller: Caller) -> AdminKeyPublic:
    """Deactivate an admin key."""
    async with ctx.db.transaction() as session:
        row = await session.get(AdminKey, admin_key_id)
        if row is None:
            raise NotFound(f"No admin key with id '{admin_key_id}'.")
        if not row.active:
            return admin_key_public(row)  # already revoked: nothing to record twice
        row.active = False
        await append(
            session,
            ctx.server_keys.audit,
            actor=caller.actor,
            action="admin_key.revoked",
            target_type="admin_key",
            target_id=row.id,
            details={"name": row.name},
        )
        return admin_key_public(row)
