"""A plugin admin router may only add guarded API routes: a plain Starlette route
(``add_route``) or a mounted app (``mount``) carries no admin guard, so the management
app refuses to build with one (fail closed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import APIRouter, Depends
from fastapi.testclient import TestClient
from starlette.requests import Request
from starlette.responses import JSONResponse

from fake_upstream import FakeUpstream
from harness import gateway_settings
from tollway.admin.app import _routes, build_admin_app
from tollway.admin.deps import require_role
from tollway.app import create_app


async def _secrets(_: Request) -> JSONResponse:
    return JSONResponse({"every": "key"})


def _router(kind: str) -> APIRouter:
    router = APIRouter(prefix="/plugin", dependencies=[Depends(require_role("admin"))])

    @router.get("/guarded")
    async def guarded() -> dict[str, str]:
        return {"ok": "yes"}

    if kind == "route":
        router.add_route("/dump", _secrets, methods=["GET"])
    elif kind == "mount":
        from starlette.applications import Starlette
        from starlette.routing import Route

        router.mount("/dump", Starlette(routes=[Route("/", _secrets)]))
    return router


@pytest.mark.parametrize("kind", ["route", "mount"])
def test_plugin_routes_outside_api_routes_are_refused(
    fake: FakeUpstream, tmp_path: Path, kind: str
) -> None:
    gateway = create_app(gateway_settings(fake, tmp_path))
    with pytest.raises(RuntimeError, match="is not an API route"):
        build_admin_app(gateway.admin.state.admin, [_router(kind)])
    # The guarded part alone is served, behind credentials.
    app = build_admin_app(gateway.admin.state.admin, [_router("guarded")])
    app.state.gateway = gateway
    assert not [r for r in _routes(app) if "dump" in getattr(r, "path", "")]
    with TestClient(app) as client:
        assert client.get("/api/v1/plugin/guarded").status_code == 401
