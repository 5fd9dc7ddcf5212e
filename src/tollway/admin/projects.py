"""``/api/v1/projects``: groups of keys with shared limits and credentials."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tollway.admin.deps import (
    Caller,
    Configured,
    Context,
    check_guard_settings,
    check_model_scope,
    require_role,
)
from tollway.admin.schemas import (
    ProjectCreate,
    ProjectPublic,
    ProjectUpdate,
    RevokeResult,
    errors,
)
from tollway.admin.views import project_public, spend_summary
from tollway.audit.chain import append
from tollway.errors import BadRequest, NotFound
from tollway.events.admin import EventLog
from tollway.store import projects as project_store
from tollway.store.tables import Project

router = APIRouter(
    prefix="/projects", tags=["projects"], dependencies=[Depends(require_role("operator"))]
)


def _check_credentials(body: ProjectCreate | ProjectUpdate, known: frozenset[str]) -> None:
    for name in body.credentials or {}:
        if name not in known:
            listed = ", ".join(sorted(known)) or "none configured"
            raise BadRequest(
                f"credentials: unknown provider '{name}' (configured: {listed}).",
                param=f"credentials.{name}",
            )


async def _project(session: AsyncSession, ref: str) -> Project:
    project = await project_store.find(session, ref)
    if project is None:
        raise NotFound(f"No project '{ref}'.")
    return project


def _changes(body: ProjectCreate | ProjectUpdate, mode: str = "python") -> dict[str, Any]:
    """The fields sent; a cache or capture setting whole, with its defaults (TTL, size)
    when they were not sent."""
    changes = body.model_dump(mode=mode, exclude_unset=True)
    if body.cache is not None:
        changes["cache"] = body.cache.model_dump(mode=mode)
    if body.capture is not None:
        changes["capture"] = body.capture.model_dump(mode=mode)
    return changes


def _audited(body: ProjectCreate | ProjectUpdate) -> dict[str, object]:
    # Credential values never reach the audit trail; which providers changed does.
    details = _changes(body, "json")
    details.pop("credentials", None)
    if body.credentials is not None:
        details["credential_providers"] = sorted(body.credentials)
    return details


@router.post("", status_code=201, response_model=ProjectPublic)
async def create_project(
    body: ProjectCreate,
    ctx: Context,
    caller: Caller,
    settings: Configured,
    request: Request,
) -> ProjectPublic:
    """Create a project."""
    _check_credentials(body, ctx.provider_names)
    check_model_scope(body.models, settings)
    check_guard_settings(request, body.guards)
    taken = BadRequest(f"A project named '{body.name}' already exists.", param="name")
    async with ctx.db.transaction() as session:
        if await project_store.by_name(session, body.name) is not None:
            raise taken
        try:
            project = await project_store.create(
                session, ctx.server_keys, body.name, body.model_dump(exclude={"name"})
            )
        except IntegrityError:
            # A concurrent request took the name between the check above and this insert
            # (the name is the table's only unique column besides the random id).
            raise taken from None
        await append(
            session,
            ctx.server_keys.audit,
            actor=caller.actor,
            action="project.created",
            target_type="project",
            target_id=project.id,
            details=_audited(body),
        )
        return project_public(project, ctx.server_keys)


@router.get("", response_model=list[ProjectPublic])
async def list_projects(
    ctx: Context, active: Annotated[bool | None, Query()] = None
) -> list[ProjectPublic]:
    """Projects, oldest first."""
    async with ctx.db.reader() as session:
        rows = await project_store.listing(session, active)
    return [project_public(project, ctx.server_keys) for project in rows]


@router.get("/{project_ref}", response_model=ProjectPublic, responses=errors(404))
async def show_project(project_ref: str, ctx: Context) -> ProjectPublic:
    """One project, by id or name."""
    await ctx.recorder.flush()
    async with ctx.db.reader() as session:
        project = await _project(session, project_ref)
        public = project_public(project, ctx.server_keys)
        public.spend_usd = await spend_summary(
            session, project.budget_period, project_id=project.id
        )
    return public


@router.patch("/{project_ref}", response_model=ProjectPublic, responses=errors(404))
async def update_project(
    project_ref: str,
    body: ProjectUpdate,
    ctx: Context,
    caller: Caller,
    settings: Configured,
    request: Request,
) -> ProjectPublic:
    """Change limits, policies (models, guards, CORS origins, cache), metadata,
    credentials, or (de)activate: a deactivated project's keys stop working on the next
    request, and every change applies to its keys' next request."""
    _check_credentials(body, ctx.provider_names)
    check_model_scope(body.models, settings)
    check_guard_settings(request, body.guards)
    async with ctx.db.transaction() as session:
        project = await _project(session, project_ref)
        await project_store.apply_update(session, ctx.server_keys, project, _changes(body))
        await append(
            session,
            ctx.server_keys.audit,
            actor=caller.actor,
            action="project.updated",
            target_type="project",
            target_id=project.id,
            details=_audited(body),
        )
        return project_public(project, ctx.server_keys)


@router.post("/{project_ref}/revoke-keys", response_model=RevokeResult, responses=errors(404))
async def revoke_project_keys(
    project_ref: str, ctx: Context, caller: Caller, events: EventLog
) -> RevokeResult:
    """Revoke every key of a project at once."""
    async with ctx.db.transaction() as session:
        project = await _project(session, project_ref)
        revoked = await project_store.revoke_keys(session, project.id)
        count = len(revoked)
        await append(
            session,
            ctx.server_keys.audit,
            actor=caller.actor,
            action="project.keys_revoked",
            target_type="project",
            target_id=project.id,
            details={"revoked": count},
        )
    for key_id, name in revoked:  # committed: now they may be told
        events.key_revoked(key_id, name, project.id, caller.actor, via="project")
    return RevokeResult(project_id=project.id, revoked=count)
