"""Who may call the management API: the master key or an admin key with a role.

Fail closed: every route under ``/api/v1`` gets ``require_role(...)`` from its router,
and the app refuses to start if any ``/api/v1`` route lacks it (see ``app.py``).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from tollway.auth.credentials import presented_key
from tollway.auth.secrets import ServerKeys
from tollway.config import scope_groups
from tollway.errors import BadRequest, Forbidden, Unauthorized
from tollway.guards.runner import Guards
from tollway.metering.records import Recorder
from tollway.plugins.groups import PluginError
from tollway.settings import Settings
from tollway.store import admin_keys
from tollway.store.db import Database
from tollway.store.ids import ADMIN_KEY_PREFIX
from tollway.ui import sessions as ui_sessions

ROLE_RANK = {"viewer": 0, "operator": 1, "admin": 2}
GUARD_MARK = "tollway_admin_guard"


@dataclass(frozen=True)
class Admin:
    """An authenticated management caller."""

    actor: str
    role: str


@dataclass(frozen=True)
class AdminContext:
    """What management handlers need, hung on the app at creation."""

    db: Database
    server_keys: ServerKeys
    master_key: bytes
    recorder: Recorder
    provider_names: frozenset[str] = frozenset()
    redis: Any = None  # redis.asyncio.Redis when configured (checked for readiness)


def context(request: Request) -> AdminContext:
    """The app's management context."""
    ctx: AdminContext = request.app.state.admin
    return ctx


Context = Annotated[AdminContext, Depends(context)]


def configured(request: Request) -> Settings:
    """The settings the gateway runs with (providers, models, model groups)."""
    settings: Settings = request.app.state.gateway.settings
    return settings


Configured = Annotated[Settings, Depends(configured)]


def check_guard_settings(request: Request, guards: dict[str, Any] | None) -> None:
    """A 400 naming the guard when a setting cannot build it: an unknown (not installed)
    guard, an option it does not know or a bad value, an action it cannot take. Checked
    here so a bad setting never reaches a call."""
    checker: Guards = request.app.state.gateway.guards
    for name, setting in (guards or {}).items():
        try:
            checker.check(name, setting)
        except (ValueError, PluginError) as exc:
            raise BadRequest(f"guards.{name}: {exc}", param=f"guards.{name}") from None


def check_model_scope(scope: list[str] | None, settings: Settings, field: str = "models") -> None:
    """A 400 naming the first ``group:<name>`` in ``scope`` that no configured group has."""
    for name in scope_groups(scope):
        if name not in settings.model_groups:
            known = ", ".join(sorted(settings.model_groups)) or "none configured"
            raise BadRequest(
                f"{field}: unknown model group '{name}' (model_groups: {known}).", param=field
            )


async def authenticate(request: Request, ctx: AdminContext) -> Admin:
    """The caller, from the master key or an admin key; anything else is a 401."""
    headers = {k.lower(): v for k, v in request.headers.items()}
    key = presented_key(headers)
    if key is None:
        # No key: an admin UI session's cookie (its CSRF token checked on writes).
        signed_in = await ui_sessions.admitted(request, ctx.db, ctx.server_keys, ctx.master_key)
        if signed_in is not None:
            return Admin(actor=signed_in.actor, role=signed_in.role)
        raise Unauthorized(
            "The management API needs the master key or an admin key (or a /ui sign-in)."
        )
    if hmac.compare_digest(key.encode(), ctx.master_key):
        return Admin(actor="master", role="admin")
    if key.startswith(ADMIN_KEY_PREFIX):
        async with ctx.db.reader() as session:
            found = await admin_keys.by_hash(session, ctx.server_keys.hash_key(key))
        if found is not None and hmac.compare_digest(found.key_hash, ctx.server_keys.hash_key(key)):
            return Admin(actor=f"admin_key:{found.id}", role=found.role)
    raise Unauthorized("Not a valid master key or admin key for the management API.")


def check_url_text(request: Request) -> None:
    """Path and query values reach database queries, and Postgres refuses NUL in text:
    refuse it up front, on every database alike."""
    for name, value in (*request.path_params.items(), *request.query_params.multi_items()):
        if "\x00" in name or "\x00" in str(value):
            raise BadRequest(f"{name or 'query'}: must not contain NUL characters.", param=name)


def require_role(minimum: str, reads: str | None = None) -> Callable[..., Awaitable[Admin]]:
    """A dependency admitting callers whose role is at least ``minimum`` for changes and
    at least ``reads`` (default: ``viewer``, or ``admin`` for admin-only routers) for
    reads. Every management route has one (see ``app.ensure_guarded``), so it also
    checks the URL's text, once the caller is known."""
    read_role = reads or ("admin" if minimum == "admin" else "viewer")

    async def guard(request: Request, ctx: Context) -> Admin:
        admin = await authenticate(request, ctx)
        needed = read_role if request.method in ("GET", "HEAD") else minimum
        if ROLE_RANK[admin.role] < ROLE_RANK[needed]:
            raise Forbidden(f"This needs the '{needed}' role; the caller has '{admin.role}'.")
        check_url_text(request)
        request.state.admin = admin
        return admin

    setattr(guard, GUARD_MARK, True)
    return guard


def current_admin(request: Request) -> Admin:
    """The caller the router's guard admitted."""
    admin: Admin = request.state.admin
    return admin


Caller = Annotated[Admin, Depends(current_admin)]
