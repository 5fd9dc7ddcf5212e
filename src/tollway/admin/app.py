"""The management application (FastAPI): everything that is not a proxy endpoint."""

from __future__ import annotations

from fastapi import FastAPI

from tollway import __version__


def build_admin_app() -> FastAPI:
    """The FastAPI app behind the gateway's proxy routes."""
    app = FastAPI(
        title="Tollway management API",
        version=__version__,
        docs_url="/api/docs",
        openapi_url="/api/v1/openapi.json",
        redoc_url=None,
    )

    @app.get("/health/live", tags=["health"])
    async def live() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/health/ready", tags=["health"])
    async def ready() -> dict[str, str]:
        """The gateway can serve traffic."""
        return {"status": "ok"}

    return app
