"""The management application (FastAPI): everything that is not a proxy endpoint."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy import text
from starlette.exceptions import HTTPException

from tollway import __version__
from tollway.admin import admin_keys, audit, keys, projects, providers, spend
from tollway.admin.deps import GUARD_MARK, AdminContext
from tollway.dialects.render import render_error
from tollway.errors import BadRequest, MethodNotAllowed, NotFound, TollwayError
from tollway.settings import Dialect

log = logging.getLogger("tollway.admin")
API_PREFIX = "/api/v1"
# Served without credentials on purpose: the API's description holds no data.
_PUBLIC = frozenset({f"{API_PREFIX}/openapi.json"})


def _field(location: tuple[object, ...], kind: str = "") -> str:
    if kind == "json_invalid":
        return "body"  # the location is a byte offset, not a field
    parts = [str(part) for part in location if part not in ("body", "query", "path")]
    return ".".join(parts) or "body"


def _problem(problem: Any) -> str:
    text = str(problem.get("msg", "")).removeprefix("Value error, ")
    return f"{_field(tuple(problem.get('loc', ())), problem.get('type', ''))}: {text}"


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(TollwayError)
    async def tollway_error(_: Request, error: TollwayError) -> JSONResponse:
        return JSONResponse(error_body(error), status_code=error.status, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        problems = error.errors()
        first = problems[0] if problems else {"loc": ("body",), "msg": "invalid request"}
        field = _field(tuple(first.get("loc", ())), str(first.get("type", "")))
        message = "; ".join(_problem(p) for p in problems[:5])
        wrapped = BadRequest(f"Invalid request: {message}", param=field)
        return JSONResponse(error_body(wrapped), status_code=422)

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
        return JSONResponse(
            error_body(wrapped), status_code=wrapped.status, headers=dict(error.headers or {})
        )


def error_body(error: TollwayError) -> object:
    """The management API's error shape (the OpenAI one, for one convention)."""
    return orjson.loads(render_error(Dialect.OPENAI, error))


def ensure_guarded(app: FastAPI) -> None:
    """Refuse to start if any management route lacks an admin guard (fail closed)."""
    for route in app.routes:
        if not isinstance(route, APIRoute) or not route.path.startswith(API_PREFIX):
            continue
        if route.path in _PUBLIC:
            continue
        guarded = any(getattr(dep.call, GUARD_MARK, False) for dep in route.dependant.dependencies)
        if not guarded:
            raise RuntimeError(f"management route {route.path} has no admin guard")


def build_admin_app(ctx: AdminContext) -> FastAPI:
    """The FastAPI app behind the gateway's proxy routes."""
    app = FastAPI(
        title="Tollway management API",
        version=__version__,
        docs_url="/api/docs",
        openapi_url=f"{API_PREFIX}/openapi.json",
        redoc_url=None,
    )
    app.state.admin = ctx
    _install_error_handlers(app)

    api = APIRouter(prefix=API_PREFIX)
    for module in (keys, projects, spend, providers, audit, admin_keys):
        api.include_router(module.router)
    app.include_router(api)

    @app.get("/health/live", tags=["health"])
    async def live() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/health/ready", tags=["health"])
    async def ready() -> JSONResponse:
        """The gateway can serve traffic: its database answers."""
        try:
            async with ctx.db.reader() as session:
                await session.execute(text("SELECT 1"))
        except Exception:  # the edge: any database failure means "not ready"
            log.warning("readiness check failed", exc_info=True)
            return JSONResponse({"status": "unavailable", "database": "down"}, status_code=503)
        return JSONResponse({"status": "ok", "database": "ok"})

    ensure_guarded(app)
    return app
