"""``/ui/session``: sign in with the master key or an admin key, read the session (and
its CSRF token), sign out. The UI's pages call these; they are not part of /api/v1."""

from __future__ import annotations

import hmac
from datetime import datetime

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tollway.admin.deps import AdminContext, Context
from tollway.auth.secrets import ServerKeys
from tollway.errors import BadRequest, Forbidden, Unauthorized, UnsupportedMediaType
from tollway.store import admin_keys
from tollway.store.ids import ADMIN_KEY_PREFIX
from tollway.ui import sessions
from tollway.ui.secure import SecuredRoute, clear_session_cookie, set_session_cookie
from tollway.ui.sessions import SignedIn
from tollway.ui.state import Ui

router = APIRouter(prefix="/ui", include_in_schema=False, route_class=SecuredRoute)
_CROSS_SITE = frozenset({"cross-site", "same-site"})


class SignInBody(BaseModel):
    """``POST /ui/session``."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1, max_length=512)


class SessionPublic(BaseModel):
    """A session as its page sees it (never its token)."""

    id: str
    kind: str
    actor: str
    role: str
    expires_at: datetime
    csrf_token: str
    public_url: str | None
    oidc: bool


def session_json(signed_in: SignedIn, keys: ServerKeys, public_url: str | None) -> bytes:
    """The body of ``GET /ui/session``."""
    public = SessionPublic(
        id=signed_in.id,
        kind=signed_in.kind,
        actor=signed_in.actor,
        role=signed_in.role,
        expires_at=signed_in.expires_at,
        csrf_token=sessions.csrf_token(keys, signed_in.token),
        public_url=public_url,
        oidc=signed_in.kind == "oidc",
    )
    return orjson.dumps(public.model_dump(mode="json"))


async def current(request: Request, ctx: AdminContext) -> SignedIn | None:
    """The live session the request's cookie opens, if any."""
    token = sessions.presented_token(request)
    if token is None:
        return None
    return await sessions.find(ctx.db, ctx.server_keys, ctx.master_key, token)


def _from_this_site(request: Request) -> None:
    """Refuse a sign-in another site's page could make in the browser (login CSRF): it
    must be JSON, which a cross-site form cannot send without a CORS preflight (which
    the gateway never grants), and the browser must not call it cross-site."""
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media != "application/json":
        raise UnsupportedMediaType('Sign in with a JSON body: {"key": "..."}.')
    if request.headers.get("sec-fetch-site", "").lower() in _CROSS_SITE:
        raise Forbidden("Sign in from the gateway's own /ui page.")


async def _identify(key: str, ctx: AdminContext) -> tuple[str, str, str, str | None]:
    """(kind, actor, role, admin key id) of the master key or an active admin key; a 401
    for anything else."""
    if hmac.compare_digest(key.encode(), ctx.master_key):
        return "master", "master", "admin", None
    if key.startswith(ADMIN_KEY_PREFIX):
        hashed = ctx.server_keys.hash_key(key)
        async with ctx.db.reader() as session:
            found = await admin_keys.by_hash(session, hashed)
        if found is not None and hmac.compare_digest(found.key_hash, hashed):
            return "admin_key", f"admin_key:{found.id}", found.role, found.id
    raise Unauthorized("That is not the master key or an active admin key.")


@router.post("/session", status_code=201)
async def sign_in(request: Request, ctx: Context, ui: Ui) -> Response:
    """Exchange the master key or an admin key for a session cookie."""
    _from_this_site(request)
    try:
        body = SignInBody.model_validate(orjson.loads(await request.body()))
    except (orjson.JSONDecodeError, ValidationError):
        raise BadRequest('Give the key as {"key": "..."}.', param="key") from None
    kind, actor, role, admin_key_id = await _identify(body.key.strip(), ctx)
    signed_in = await sessions.start(
        ctx.db,
        ctx.server_keys,
        kind=kind,
        actor=actor,
        role=role,
        ttl_seconds=ui.config.session_ttl,
        admin_key_id=admin_key_id,
        master_hash=ctx.server_keys.hash_key(body.key.strip()) if kind == "master" else None,
        user_agent=request.headers.get("user-agent"),
    )
    response = Response(
        session_json(signed_in, ctx.server_keys, ui.public_url),
        status_code=201,
        media_type="application/json",
    )
    set_session_cookie(response, request, ui.config, signed_in.token, ui.config.session_ttl)
    return response


@router.get("/session")
async def show_session(request: Request, ctx: Context, ui: Ui) -> Response:
    """The signed-in session, with the CSRF token its page sends on writes; a 401 when
    there is none."""
    signed_in = await current(request, ctx)
    if signed_in is None:
        raise Unauthorized("Not signed in, or the session ended: sign in at /ui/login.")
    body = session_json(signed_in, ctx.server_keys, ui.public_url)
    return Response(body, media_type="application/json")


@router.delete("/session", status_code=204)
async def sign_out(request: Request, ctx: Context, ui: Ui) -> Response:
    """End the session (it stops working everywhere at once) and drop the cookie."""
    signed_in = await current(request, ctx)
    if signed_in is not None:
        sessions.check_csrf(request, ctx.server_keys, signed_in)
        await sessions.end(ctx.db, ctx.server_keys, signed_in)
    response = Response(status_code=204)
    clear_session_cookie(response, request, ui.config)
    return response


@router.get("/sign-in-options")
async def sign_in_options(ui: Ui) -> JSONResponse:
    """How one may sign in: a key always; OIDC when configured (its button's label)."""
    oidc = {"label": ui.config.oidc.label} if ui.config.oidc is not None else None
    return JSONResponse({"oidc": oidc})
