"""The management application (FastAPI): everything that is not a proxy endpoint."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import fastapi.routing
import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy import text
from starlette.exceptions import HTTPException

from tollway import __version__
from tollway.admin.deps import GUARD_MARK, AdminContext
from tollway.admin.schemas import errors
from tollway.dialects.render import render_error
from tollway.errors import BadRequest, InternalError, MethodNotAllowed, NotFound, TollwayError
from tollway.settings import Dialect

log = logging.getLogger("tollway.admin")
API_PREFIX = "/api/v1"
# Served without credentials on purpose: the API's description holds no data.
_PUBLIC = frozenset({f"{API_PREFIX}/openapi.json"})
_READY_TIMEOUT = 3.0


def _field(problem: Any) -> str:
    if problem.get("type") == "json_invalid":
        return "body"  # the location is a byte offset, not a field
    # A validator may point below its field (metadata does: ``metadata.<key>``).
    within = (problem.get("ctx") or {}).get("within", ())
    location = (*problem.get("loc", ()), *within)
    parts = [str(part) for part in location if part not in ("body", "query", "path")]
    return ".".join(parts) or "body"


def _problem(problem: Any) -> str:
    text = str(problem.get("msg", "")).removeprefix("Value error, ")
    return f"{_field(problem)}: {text}"


def _routes(app: FastAPI) -> list[Any]:
    """Every route with its full path and dependencies. Newer FastAPI keeps included
    routers whole in ``app.routes`` and lists their routes through route contexts."""
    contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    return list(contexts(app.routes)) if contexts is not None else list(app.routes)


def _allowed_methods(app: FastAPI, path: str) -> set[str]:
    """Every method some route serves at ``path`` (the router names only the first
    route's in its 405, though several routes share a path)."""
    methods: set[str] = set()
    for route in _routes(app):
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(path):
            methods |= getattr(route, "methods", None) or set()
    return methods


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(TollwayError)
    async def tollway_error(_: Request, error: TollwayError) -> JSONResponse:
        return JSONResponse(error_body(error), status_code=error.status, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        problems = error.errors()
        first = problems[0] if problems else {"loc": ("body",), "msg": "invalid request"}
        field = _field(first)
        message = "; ".join(_problem(p) for p in problems[:5])
        wrapped = BadRequest(f"Invalid request: {message}", param=field)
        return JSONResponse(error_body(wrapped), status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, error: Exception) -> JSONResponse:
        # Rendered here (the server would answer plain text); the traceback is logged
        # once at the ASGI edge, which the exception reaches after this response.
        wrapped = InternalError("The gateway failed unexpectedly; the details are in its log.")
        return JSONResponse(error_body(wrapped), status_code=500)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        wrapped: TollwayError
        if error.status_code == 404:
            wrapped = NotFound(f"Unknown route: {request.method} {request.url.path}.")
        elif error.status_code == 405:
            wrapped = MethodNotAllowed(f"{request.method} is not allowed here.")
        else:
            wrapped = BadRequest(str(error.detail))
            wrapped.status = error.status_code
        headers = dict(error.headers or {})
        allowed = (
            _allowed_methods(app, request.scope["path"]) if error.status_code == 405 else set()
        )
        if allowed:
            headers["Allow"] = ", ".join(sorted(allowed))
        return JSONResponse(error_body(wrapped), status_code=wrapped.status, headers=headers)


def _utf8(text: str) -> str:
    # Field names and messages can echo client text; lone surrogates cannot be encoded.
    return text.encode("utf-8", "replace").decode()


def error_body(error: TollwayError) -> object:
    """The management API's error shape (the OpenAI one, for one convention)."""
    error.message = _utf8(error.message)
    error.param = _utf8(error.param) if error.param is not None else None
    return orjson.loads(render_error(Dialect.OPENAI, error))


async def _database_answers(ctx: AdminContext) -> bool:
    try:
        async with asyncio.timeout(_READY_TIMEOUT), ctx.db.reader() as session:
            await session.execute(text("SELECT 1"))
    except Exception:  # the edge: any database failure means "not ready"
        log.warning("readiness check failed: database", exc_info=True)
        return False
    return True


async def _redis_answers(ctx: AdminContext) -> bool:
    try:
        async with asyncio.timeout(_READY_TIMEOUT):
            await ctx.redis.ping()
    except Exception:  # the edge: any Redis failure means "not ready"
        log.warning("readiness check failed: redis", exc_info=True)
        return False
    return True


def ensure_guarded(app: FastAPI) -> None:
    """Refuse to start if any management route lacks an admin guard (fail closed)."""
    for route in _routes(app):
        if not isinstance(getattr(route, "original_route", route), APIRoute):
            continue
        if not route.path.startswith(API_PREFIX) or route.path in _PUBLIC:
            continue
        guarded = any(getattr(dep.call, GUARD_MARK, False) for dep in route.dependant.dependencies)
        if not guarded:
            raise RuntimeError(f"management route {route.path} has no admin guard")


def _only_api_routes(router: APIRouter) -> None:
    """Refuse a router with anything but API routes (a plain route, a mounted app, a
    WebSocket): only API routes carry the dependencies ``ensure_guarded`` checks."""
    for route in router.routes:
        if not isinstance(route, APIRoute):
            path = getattr(route, "path", "?")
            raise RuntimeError(
                f"management router route {path} is not an API route; only guarded API "
                "routes may be added to the management API"
            )


def build_admin_app(ctx: AdminContext, routers: Sequence[APIRouter]) -> FastAPI:
    """The FastAPI app behind the gateway's proxy routes: ``routers`` (plugins, built-in
    or not, under /api/v1), health checks; it refuses to build if a route is unguarded."""
    app = FastAPI(
        title="Tollway management API",
        version=__version__,
        docs_url="/api/docs",
        openapi_url=f"{API_PREFIX}/openapi.json",
        redoc_url=None,
    )
    app.state.admin = ctx
    _install_error_handlers(app)

    api = APIRouter(prefix=API_PREFIX, responses=errors(400, 401, 403, 422))
    for router in routers:
        _only_api_routes(router)
        api.include_router(router)
    app.include_router(api)

    @app.get("/health/live", tags=["health"])
    async def live() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    unready = {"description": "A dependency (database, Redis) does not answer"}

    @app.get("/health/ready", tags=["health"], responses={503: unready})
    async def ready() -> JSONResponse:
        """The gateway can serve traffic: its database (and Redis, when configured)
        answer; the body says which one does not."""
        checks = {"database": _database_answers(ctx)}
        if ctx.redis is not None:
            checks["redis"] = _redis_answers(ctx)
        results = dict(zip(checks, await asyncio.gather(*checks.values()), strict=True))
        status = "ok" if all(results.values()) else "unavailable"
        body = {"status": status, **{k: "ok" if v else "down" for k, v in results.items()}}
        return JSONResponse(body, status_code=200 if status == "ok" else 503)

    ensure_guarded(app)
    return app
