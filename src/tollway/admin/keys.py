"""``/api/v1/keys``: mint, list, show, update and revoke virtual keys."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from tollway.admin.deps import (
    Caller,
    Configured,
    Context,
    check_guard_settings,
    check_model_scope,
    require_role,
)
from tollway.admin.fields import parse_ttl
from tollway.admin.schemas import (
    KeyCreate,
    KeyCreated,
    KeyPublic,
    KeyUpdate,
    errors,
)
from tollway.admin.views import key_public, project_filter, spend_summary
from tollway.audit.chain import append
from tollway.bounds import MAX_METADATA_FIELDS, SAFE_INT
from tollway.errors import BadRequest, NotFound
from tollway.events.admin import EventLog
from tollway.store import keys as key_store
from tollway.store import projects as project_store

router = APIRouter(prefix="/keys", tags=["keys"], dependencies=[Depends(require_role("operator"))])
DEFAULT_PROJECT = "default"


@router.post("", status_code=201, response_model=KeyCreated)
async def create_key(
    body: KeyCreate,
    ctx: Context,
    caller: Caller,
    settings: Configured,
    request: Request,
    events: EventLog,
) -> KeyCreated:
    """Mint a key. The secret is in this answer and nowhere else, ever."""
    if body.ttl is not None and body.expires_at is not None:
        raise BadRequest("Give either 'ttl' or 'expires_at', not both.", param="ttl")
    check_model_scope(body.models, settings)
    check_guard_settings(request, body.guards)
    fields = body.model_dump(exclude={"name", "project", "ttl", "expires_at"})
    async with ctx.db.transaction() as session:
        project = await project_store.find(session, body.project or DEFAULT_PROJECT)
        if project is None:
            raise BadRequest(f"Unknown project '{body.project}'.", param="project")
        if not project.active:
            raise BadRequest(f"The project '{project.name}' is deactivated.", param="project")
        key, secret = await key_store.create(
            session,
            ctx.server_keys.hash_key,
            name=body.name,
            project=project,
            ttl_seconds=parse_ttl(body.ttl) if body.ttl is not None else None,
            expires_at=body.expires_at,
            fields=fields,
            created_by=caller.actor,
        )
        public = key_public(key)
        await append(
            session,
            ctx.server_keys.audit,
            actor=caller.actor,
            action="key.created",
            target_type="key",
            target_id=key.id,
            details=public.model_dump(mode="json", include=_AUDITED),
        )
    events.key_created(public.model_dump(mode="json", exclude={"spend_usd"}), caller.actor)
    return KeyCreated(**public.model_dump(), key=secret)


_AUDITED = {
    "name",
    "project_id",
    "expires_at",
    "models",
    "max_budget_usd",
    "budget_period",
    "rpm",
    "tpm",
    "max_parallel",
    "max_requests",
    "metadata",
    "guards",
}


@router.get("", response_model=list[KeyPublic])
async def list_keys(
    request: Request,
    ctx: Context,
    project: Annotated[str | None, Query(min_length=1, description="Project id or name.")] = None,
    active: Annotated[bool | None, Query(description="Only usable (or unusable) keys.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=SAFE_INT)] = 0,
) -> list[KeyPublic]:
    """Keys, newest first. Filter metadata with ``metadata.<field>=<value>``."""
    metadata = {
        name.removeprefix("metadata."): value
        for name, value in request.query_params.items()
        if name.startswith("metadata.") and len(name) > len("metadata.")
    }
    if len(metadata) > MAX_METADATA_FIELDS:
        # No key has more fields; and each filter deepens the query (SQLite caps that).
        raise BadRequest(f"At most {MAX_METADATA_FIELDS} metadata filters.", param="metadata")
    async with ctx.db.reader() as session:
        project_id = await project_filter(session, project)
        query = key_store.filtered(
            project_id=project_id,
            active=active,
            metadata=metadata,
            limit=limit,
            offset=offset,
            dialect=session.get_bind().dialect.name,
        )
        rows: list[Any] = list((await session.execute(query)).all())
    return [key_public(key, bool(project_active)) for key, project_active in rows]


@router.get("/{key_id}", response_model=KeyPublic, responses=errors(404))
async def show_key(key_id: str, ctx: Context) -> KeyPublic:
    """One key."""
    await ctx.recorder.flush()
    async with ctx.db.reader() as session:
        key = await key_store.get(session, key_id)
        if key is None:
            raise NotFound(f"No key with id '{key_id}'.")
        project = await project_store.find(session, key.project_id)
        public = key_public(key, project.active if project else True)
        public.spend_usd = await spend_summary(session, key.budget_period, key_id=key.id)
    return public


@router.patch("/{key_id}", response_model=KeyPublic, responses=errors(404))
async def update_key(
    key_id: str,
    body: KeyUpdate,
    ctx: Context,
    caller: Caller,
    settings: Configured,
    request: Request,
) -> KeyPublic:
    """Change a key's name, models, limits, guards, metadata or active flag."""
    check_model_scope(body.models, settings)
    check_guard_settings(request, body.guards)
    changes = body.model_dump(exclude_unset=True)
    async with ctx.db.transaction() as session:
        key = await key_store.get(session, key_id)
        if key is None:
            raise NotFound(f"No key with id '{key_id}'.")
        if key.revoked_at is not None and changes.get("active"):
            raise BadRequest("A revoked key cannot be reactivated.", param="active")
        await key_store.apply_update(session, key, changes)
        await append(
            session,
            ctx.server_keys.audit,
            actor=caller.actor,
            action="key.updated",
            target_type="key",
            target_id=key.id,
            details={"changes": body.model_dump(mode="json", exclude_unset=True)},
        )
        return key_public(key)


@router.delete("/{key_id}", response_model=KeyPublic, responses=errors(404))
async def revoke_key(key_id: str, ctx: Context, caller: Caller, events: EventLog) -> KeyPublic:
    """Revoke a key at once, in every process; the row stays for history and spend."""
    async with ctx.db.transaction() as session:
        key = await key_store.get(session, key_id)
        if key is None:
            raise NotFound(f"No key with id '{key_id}'.")
        revoked = await key_store.revoke(session, key)
        if revoked:
            await append(
                session,
                ctx.server_keys.audit,
                actor=caller.actor,
                action="key.revoked",
                target_type="key",
                target_id=key.id,
                details={"name": key.name},
            )
        public = key_public(key)
    if revoked:  # committed: now it may be told
        events.key_revoked(key.id, key.name, key.project_id, caller.actor)
    return public
